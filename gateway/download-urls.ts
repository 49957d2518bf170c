/**
 * Download URLs (issue #16): where `GET .../attachments/{attachmentId}` redirects. One port, two
 * adapters, chosen by ATTACHMENT_DOWNLOADS:
 *  - `s3`: an S3 presigned GET (local stack, or a deployment without a CDN); the URL is the bucket's;
 *  - `cloudfront`: a CloudFront signed URL (canned policy: this one URL, until the expiry) on the
 *    attachments distribution, which reads the bucket through origin access control. The private
 *    key is the deployment's (Secrets Manager, injected as ATTACHMENT_CDN_PRIVATE_KEY); CloudFront
 *    checks the signature with the public key of its key group.
 * Both carry the file name and type as S3's `response-content-disposition` / `response-content-type`
 * overrides, so a download is saved under its name whichever adapter signed it (the distribution's
 * cache policy forwards those two parameters, and keys its cache on them).
 */
import { createPrivateKey } from 'node:crypto';
import { getSignedUrl } from '@aws-sdk/cloudfront-signer';
import { z } from 'zod';
import type { ObjectStore } from '../core/object-store';

export interface DownloadRequest {
  expiresInSeconds: number;
  /** Saved under this name (Content-Disposition: attachment). */
  fileName: string;
  contentType: string;
}

/** Signs a short-lived GET of one object key. */
export interface DownloadUrlSigner {
  readonly kind: 's3' | 'cloudfront';
  sign(key: string, request: DownloadRequest): Promise<string>;
}

/** `attachment; filename="…"`: quotes removed, so a name cannot end the parameter. */
export const contentDisposition = (fileName: string) => `attachment; filename="${fileName.replace(/"/g, '')}"`;

/** S3 presigned GETs through the object store (its public endpoint locally). */
export class S3DownloadUrls implements DownloadUrlSigner {
  readonly kind = 's3' as const;
  constructor(private readonly store: Pick<ObjectStore, 'presignGet'>) {}
  sign(key: string, r: DownloadRequest): Promise<string> {
    return this.store.presignGet(key, r);
  }
}

export interface CloudFrontSigning {
  /** The distribution's domain name (d111111abcdef8.cloudfront.net, or a custom one). */
  domain: string;
  /** The id of the CloudFront public key (in the distribution's trusted key group) that matches `privateKey`. */
  keyPairId: string;
  /** PEM (PKCS#1 or PKCS#8) RSA private key. */
  privateKey: string;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * CloudFront signed URLs with a canned policy. SHA-256 signatures (`Hash-Algorithm=SHA256`, which
 * CloudFront accepts since 2026-04); the key id and expiry are in the URL, as CloudFront wants them.
 */
export class CloudFrontDownloadUrls implements DownloadUrlSigner {
  readonly kind = 'cloudfront' as const;
  private readonly now: () => number;
  constructor(private readonly o: CloudFrontSigning) {
    this.now = o.now ?? Date.now;
  }

  async sign(key: string, r: DownloadRequest): Promise<string> {
    // Keys are tenant/collection/id/attachment ids ([A-Za-z0-9_.-]): each segment encoded all the same.
    const path = key.split('/').map(encodeURIComponent).join('/');
    const query = new URLSearchParams({ 'response-content-disposition': contentDisposition(r.fileName), 'response-content-type': r.contentType });
    // %20, not '+': S3 decodes '+' in a query parameter as a plus sign.
    const url = `https://${this.o.domain}/${path}?${query.toString().replace(/\+/g, '%20')}`;
    return getSignedUrl({
      url,
      keyPairId: this.o.keyPairId,
      privateKey: this.o.privateKey,
      // CloudFront compares whole seconds: a URL lives expiresInSeconds from now, rounded up.
      dateLessThan: new Date(Math.ceil(this.now() / 1000) * 1000 + r.expiresInSeconds * 1000),
      algorithm: 'SHA256',
    });
  }
}

const PEM_PRIVATE_KEY = /-----BEGIN (RSA )?PRIVATE KEY-----/;

/** The gateway's choice of download URLs (merged into its attachment settings). */
export const DownloadUrlEnv = z.object({
  /**
   * How GET .../attachments/{attachmentId} signs the URL it redirects to: `s3` = an S3 presigned URL
   * (local, no CDN); `cloudfront` = a CloudFront signed URL on ATTACHMENT_CDN_DOMAIN (the deployment).
   */
  ATTACHMENT_DOWNLOADS: z.enum(['s3', 'cloudfront']).default('s3'),
  /** `cloudfront` only: the attachments distribution's domain name (the deployment sets it). */
  ATTACHMENT_CDN_DOMAIN: z.string().regex(/^[a-z0-9.-]+$/i, 'must be a host name (no scheme, no path)').optional(),
  /** `cloudfront` only: the CloudFront public key id of the distribution's key group (the deployment sets it). */
  ATTACHMENT_CDN_KEY_PAIR_ID: z.string().min(1).optional(),
  /** `cloudfront` only: the PEM RSA private key of that public key (the deployment injects it from Secrets Manager). */
  ATTACHMENT_CDN_PRIVATE_KEY: z.string().optional(),
}).superRefine((v, ctx) => {
  if (v.ATTACHMENT_DOWNLOADS !== 'cloudfront') return;
  for (const k of ['ATTACHMENT_CDN_DOMAIN', 'ATTACHMENT_CDN_KEY_PAIR_ID', 'ATTACHMENT_CDN_PRIVATE_KEY'] as const) {
    if (!v[k]) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is required when ATTACHMENT_DOWNLOADS=cloudfront` });
  }
  if (v.ATTACHMENT_CDN_PRIVATE_KEY) {
    let ok = PEM_PRIVATE_KEY.test(v.ATTACHMENT_CDN_PRIVATE_KEY);
    try {
      ok &&= createPrivateKey(v.ATTACHMENT_CDN_PRIVATE_KEY).asymmetricKeyType === 'rsa';
    } catch {
      ok = false;
    }
    if (!ok) ctx.addIssue({ code: 'custom', path: ['ATTACHMENT_CDN_PRIVATE_KEY'], message: 'must be a PEM RSA private key' });
  }
});
export type DownloadUrlEnv = z.infer<typeof DownloadUrlEnv>;

/** The signer the config asks for (the config schema has checked the CloudFront settings are all there). */
export function downloadUrlSigner(config: DownloadUrlEnv, store: Pick<ObjectStore, 'presignGet'>): DownloadUrlSigner {
  if (config.ATTACHMENT_DOWNLOADS === 'cloudfront') {
    return new CloudFrontDownloadUrls({
      domain: config.ATTACHMENT_CDN_DOMAIN!, keyPairId: config.ATTACHMENT_CDN_KEY_PAIR_ID!, privateKey: config.ATTACHMENT_CDN_PRIVATE_KEY!,
    });
  }
  return new S3DownloadUrls(store);
}
