/**
 * Download URLs (gateway/download-urls.ts): the CloudFront adapter's URLs checked the way CloudFront
 * checks a canned-policy signed URL — the policy rebuilt from the URL (resource = the URL without the
 * signing parameters, DateLessThan = Expires), its signature verified with the public key that the
 * URL's Key-Pair-Id names (node:crypto), then the expiry. A wrong key, a changed URL or a late
 * request fails. And the gateway's config picks the adapter, refusing incomplete CloudFront settings.
 */
import { generateKeyPairSync, type KeyObject, verify } from 'node:crypto';
import { loadConfig } from '../../core/config';
import { ObjectKeys } from '../../core/attachments';
import { downloadUrl } from '../../gateway/attachments';
import { CloudFrontDownloadUrls, DownloadUrlEnv, downloadUrlSigner, S3DownloadUrls } from '../../gateway/download-urls';

const SIGNING_PARAMS = new Set(['Expires', 'Signature', 'Key-Pair-Id', 'Hash-Algorithm', 'Policy']);

type Verdict = { ok: true; resource: string; expires: number } | { ok: false; reason: string };

/** CloudFront's check of a canned-policy signed URL, with the public keys of the key group by id. */
function cloudFrontAccepts(url: string, keyGroup: Record<string, KeyObject>, nowMs: number): Verdict {
  const q = url.indexOf('?');
  if (q < 0) return { ok: false, reason: 'unsigned' };
  const pairs = url.slice(q + 1).split('&');
  const param = (name: string) => pairs.find((p) => p.startsWith(`${name}=`))?.slice(name.length + 1);
  if (param('Policy') !== undefined) return { ok: false, reason: 'custom policy (expected canned)' };
  const expires = Number(param('Expires'));
  const signature = param('Signature');
  const keyId = param('Key-Pair-Id');
  if (!Number.isInteger(expires) || !signature || !keyId) return { ok: false, reason: 'missing signing parameters' };
  const publicKey = keyGroup[keyId];
  if (!publicKey) return { ok: false, reason: `key ${keyId} is not in the key group` };
  const rest = pairs.filter((p) => !SIGNING_PARAMS.has(p.split('=')[0]!));
  const resource = url.slice(0, q) + (rest.length ? `?${rest.join('&')}` : '');
  const policy = JSON.stringify({ Statement: [{ Resource: resource, Condition: { DateLessThan: { 'AWS:EpochTime': expires } } }] });
  const sig = Buffer.from(signature.replace(/-/g, '+').replace(/_/g, '=').replace(/~/g, '/'), 'base64');
  const algorithm = param('Hash-Algorithm') === 'SHA256' ? 'sha256' : 'sha1';
  if (!verify(algorithm, Buffer.from(policy), publicKey, sig)) return { ok: false, reason: 'signature does not match' };
  if (Math.floor(nowMs / 1000) >= expires) return { ok: false, reason: 'expired' };
  return { ok: true, resource, expires };
}

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = rsa();
const otherKey = rsa();
const privatePem = signingKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const KEY_ID = 'K2JCJMDEHXQW5F';
const DOMAIN = 'd111111abcdef8.cloudfront.net';
const NOW = Date.parse('2026-12-04T09:00:00.250Z');
const key = ObjectKeys.object('t1', 'photos', 'item-1', 'a'.repeat(32));
const cdn = new CloudFrontDownloadUrls({ domain: DOMAIN, keyPairId: KEY_ID, privateKey: privatePem, now: () => NOW });
const request = { expiresInSeconds: 60, fileName: 'photo 1 (final).png', contentType: 'image/png' };

describe('CloudFront signed download URLs', () => {
  test('are accepted with the key group\'s public key: this object on the distribution, its name and type, until 60 s from now', async () => {
    const url = await cdn.sign(key, request);
    const verdict = cloudFrontAccepts(url, { [KEY_ID]: signingKey.publicKey }, NOW);
    expect(verdict).toEqual({ ok: true, resource: expect.any(String), expires: Math.ceil(NOW / 1000) + 60 });
    const resource = new URL((verdict as { resource: string }).resource);
    expect(resource.protocol).toBe('https:');
    expect(resource.host).toBe(DOMAIN);
    expect(resource.pathname).toBe(`/${key}`);
    expect(Object.fromEntries(resource.searchParams)).toEqual({
      'response-content-disposition': 'attachment; filename="photo 1 (final).png"',
      'response-content-type': 'image/png',
    });
    // The space is %20, not '+': S3 reads a '+' in a query parameter as a plus sign.
    expect(url).not.toMatch(/response-content-disposition=[^&]*\+/);
    expect(new URL(url).searchParams.get('Hash-Algorithm')).toBe('SHA256');
  });

  test('are refused when checked with another key pair\'s public key', async () => {
    const url = await cdn.sign(key, request);
    expect(cloudFrontAccepts(url, { [KEY_ID]: otherKey.publicKey }, NOW)).toEqual({ ok: false, reason: 'signature does not match' });
  });

  test('are refused from their expiry on (and accepted the second before)', async () => {
    const url = await cdn.sign(key, request);
    const expires = Math.ceil(NOW / 1000) + 60;
    expect(cloudFrontAccepts(url, { [KEY_ID]: signingKey.publicKey }, expires * 1000 - 1000).ok).toBe(true);
    expect(cloudFrontAccepts(url, { [KEY_ID]: signingKey.publicKey }, expires * 1000)).toEqual({ ok: false, reason: 'expired' });
  });

  test('are refused when the URL is changed: another tenant\'s object, a later expiry, another file name', async () => {
    const url = await cdn.sign(key, request);
    const keys = { [KEY_ID]: signingKey.publicKey };
    expect(cloudFrontAccepts(url.replace('/objects/t1/', '/objects/t2/'), keys, NOW)).toEqual({ ok: false, reason: 'signature does not match' });
    const expires = Math.ceil(NOW / 1000) + 60;
    expect(cloudFrontAccepts(url.replace(`Expires=${expires}`, `Expires=${expires + 3600}`), keys, NOW)).toEqual({ ok: false, reason: 'signature does not match' });
    expect(cloudFrontAccepts(url.replace('photo%201', 'other%201'), keys, NOW)).toEqual({ ok: false, reason: 'signature does not match' });
    expect(cloudFrontAccepts(url, { OTHERKEYID: signingKey.publicKey }, NOW)).toEqual({ ok: false, reason: `key ${KEY_ID} is not in the key group` });
  });

  test('the GET route signs the attachment (or its thumbnail) of the caller\'s tenant, for ATTACHMENT_DOWNLOAD_URL_S', async () => {
    const attachmentId = 'b'.repeat(32);
    const doc = { id: 'item-1', version: 2, data: {}, attachments: [{ attachmentId, name: 'scan.jpg', contentType: 'image/jpeg', size: 10, sha256: '0'.repeat(64), thumbnail: { contentType: 'image/webp', width: 1, height: 1, size: 1 } }] };
    const settings = {
      items: { getItem: async (tenant: string) => (tenant === 't1' ? { json: JSON.stringify(doc) } : undefined) },
      downloads: cdn,
      downloadUrlSeconds: 30,
    };
    const thumb = await downloadUrl(settings, 't1', { collection: 'photos', id: 'item-1', attachmentId }, true);
    const verdict = cloudFrontAccepts(thumb, { [KEY_ID]: signingKey.publicKey }, NOW);
    expect(verdict).toMatchObject({ ok: true, expires: Math.ceil(NOW / 1000) + 30 });
    const resource = new URL((verdict as { resource: string }).resource);
    expect(resource.pathname).toBe(`/${ObjectKeys.thumbnail('t1', 'photos', 'item-1', attachmentId)}`);
    expect(resource.searchParams.get('response-content-type')).toBe('image/webp');
    await expect(downloadUrl(settings, 't2', { collection: 'photos', id: 'item-1', attachmentId }, false)).rejects.toThrow(/does not exist/);
  });
});

describe('the gateway\'s choice of download URLs (ATTACHMENT_DOWNLOADS)', () => {
  const presignGet = async (k: string) => `http://127.0.0.1:4566/bucket/${k}?X-Amz-Signature=local`;

  test('is S3 presigned URLs by default', () => {
    const signer = downloadUrlSigner(loadConfig(DownloadUrlEnv, {}), { presignGet });
    expect(signer).toBeInstanceOf(S3DownloadUrls);
  });

  test('is CloudFront signed URLs with the distribution\'s domain, key id and private key', async () => {
    const config = loadConfig(DownloadUrlEnv, {
      ATTACHMENT_DOWNLOADS: 'cloudfront', ATTACHMENT_CDN_DOMAIN: DOMAIN, ATTACHMENT_CDN_KEY_PAIR_ID: KEY_ID, ATTACHMENT_CDN_PRIVATE_KEY: privatePem,
    });
    const signer = downloadUrlSigner(config, { presignGet });
    expect(signer.kind).toBe('cloudfront');
    expect(cloudFrontAccepts(await signer.sign(key, request), { [KEY_ID]: signingKey.publicKey }, Date.now()).ok).toBe(true);
  });

  test('refuses CloudFront without its settings, or with a key that is not a PEM RSA private key', () => {
    expect(() => loadConfig(DownloadUrlEnv, { ATTACHMENT_DOWNLOADS: 'cloudfront' })).toThrow(
      /ATTACHMENT_CDN_DOMAIN is required when ATTACHMENT_DOWNLOADS=cloudfront[\s\S]*ATTACHMENT_CDN_KEY_PAIR_ID is required[\s\S]*ATTACHMENT_CDN_PRIVATE_KEY is required/,
    );
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    for (const bad of ['not a key', ec]) {
      expect(() => loadConfig(DownloadUrlEnv, {
        ATTACHMENT_DOWNLOADS: 'cloudfront', ATTACHMENT_CDN_DOMAIN: DOMAIN, ATTACHMENT_CDN_KEY_PAIR_ID: KEY_ID, ATTACHMENT_CDN_PRIVATE_KEY: bad,
      })).toThrow(/ATTACHMENT_CDN_PRIVATE_KEY: must be a PEM RSA private key/);
    }
    expect(() => loadConfig(DownloadUrlEnv, { ATTACHMENT_DOWNLOADS: 'cloudfront', ATTACHMENT_CDN_DOMAIN: 'https://x.example/', ATTACHMENT_CDN_KEY_PAIR_ID: KEY_ID, ATTACHMENT_CDN_PRIVATE_KEY: privatePem }))
      .toThrow(/ATTACHMENT_CDN_DOMAIN: must be a host name/);
  });
});
