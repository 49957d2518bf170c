/**
 * core/sigv4-post.ts signs Kinesis' `POST /` exactly as the SDK's signer (@smithy/signature-v4)
 * does: same headers, same Authorization, for static credentials, session tokens, providers,
 * non-ASCII bodies and a change of day (the cached signing key must follow it).
 */
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { NodeSha256 } from '../../core/kinesis-http';
import { SigV4Post } from '../../core/sigv4-post';

const base = (body: string) => ({
  host: 'kinesis.eu-west-1.amazonaws.com',
  'content-type': 'application/x-amz-json-1.1',
  'x-amz-target': 'Kinesis_20131202.PutRecords',
  'content-length': String(Buffer.byteLength(body)),
});

async function both(credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider, body: string, at: Date, ours = new SigV4Post(credentials, 'eu-west-1', 'kinesis')) {
  const sdk = new SignatureV4({ credentials, region: 'eu-west-1', service: 'kinesis', sha256: NodeSha256, uriEscapePath: true });
  const expected = await sdk.sign(
    { method: 'POST', protocol: 'https:', hostname: 'kinesis.eu-west-1.amazonaws.com', path: '/', query: {}, body, headers: base(body) },
    { signingDate: at },
  );
  return { expected: expected.headers, actual: await ours.sign(base(body), body, at) };
}

const at = new Date('2026-12-04T17:03:09.456Z');

test('the same headers and signature as the SDK signer, with static credentials', async () => {
  const { expected, actual } = await both({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }, '{"StreamName":"s","Records":[]}', at);
  expect(actual).toEqual(expected);
  expect(Object.keys(actual)).toEqual(Object.keys(expected));
  expect(actual.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261204\/eu-west-1\/kinesis\/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target, Signature=[0-9a-f]{64}$/);
});

test('a session token is sent and signed; a provider is asked on every call', async () => {
  let calls = 0;
  const provider: AwsCredentialIdentityProvider = async () => {
    calls++;
    return { accessKeyId: 'ASIA1', secretAccessKey: 'secret', sessionToken: `token-${calls}` };
  };
  const ours = new SigV4Post(provider, 'eu-west-1', 'kinesis');
  const first = await ours.sign(base('{}'), '{}', at);
  expect(first['x-amz-security-token']).toBe('token-1');
  const { expected, actual } = await both({ accessKeyId: 'ASIA1', secretAccessKey: 'secret', sessionToken: 'token-x' }, '{"a":"é ✓ \\n"}', at);
  expect(actual).toEqual(expected);
  expect(calls).toBe(1);
});

test('the signing key follows the day and the key pair', async () => {
  const ours = new SigV4Post({ accessKeyId: 'AKID', secretAccessKey: 's1' }, 'eu-west-1', 'kinesis');
  for (const when of [at, new Date('2026-12-05T00:00:00.000Z'), new Date('2026-12-04T23:59:59.999Z')]) {
    const { expected, actual } = await both({ accessKeyId: 'AKID', secretAccessKey: 's1' }, '{}', when, ours);
    expect(actual).toEqual(expected);
  }
  let secret = 's1';
  const rotating = new SigV4Post(async () => ({ accessKeyId: 'AKID', secretAccessKey: secret }), 'eu-west-1', 'kinesis');
  await rotating.sign(base('{}'), '{}', at);
  secret = 's2';
  const { expected } = await both({ accessKeyId: 'AKID', secretAccessKey: 's2' }, '{}', at);
  expect(await rotating.sign(base('{}'), '{}', at)).toEqual(expected);
});

test('unusable credentials are refused', async () => {
  await expect(new SigV4Post(async () => ({}) as AwsCredentialIdentity, 'eu-west-1', 'kinesis').sign(base('{}'), '{}', at)).rejects.toThrow(/credential/);
});
