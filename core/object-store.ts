/**
 * The object store (attachments' bytes): one port, and its S3 adapter (AWS S3, or fauxqs locally).
 */
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:http';

export interface PresignedUpload {
  url: string;
  method: 'PUT';
  /** Headers the upload must carry exactly as given: they are part of the signature. */
  headers: Record<string, string>;
}

export interface ObjectHead {
  size: number;
  etag: string;
  contentType: string | undefined;
  metadata: Record<string, string>;
  lastModified: Date | undefined;
}

export interface ObjectStore {
  readonly bucket: string;
  presignPut(key: string, opts: { contentType: string; contentLength: number; metadata: Record<string, string>; expiresInSeconds: number }): Promise<PresignedUpload>;
  presignGet(key: string, opts: { expiresInSeconds: number; fileName: string; contentType: string }): Promise<string>;
  head(key: string): Promise<ObjectHead | undefined>;
  /** The object's bytes, only if its ETag is still `etag` (undefined if it is gone or changed). */
  get(key: string, etag?: string): Promise<Buffer | undefined>;
  put(key: string, body: Buffer, contentType: string): Promise<void>;
  /** Server-side copy, only if the source's ETag is still `etag`. */
  copy(from: string, to: string, etag: string): Promise<void>;
  list(prefix: string): Promise<Array<{ key: string; size: number; etag: string }>>;
  delete(keys: string[]): Promise<void>;
}

export interface S3Options {
  region: string;
  bucket: string;
  /** Local emulator (fauxqs): path-style URLs and dummy credentials. */
  endpoint?: string | undefined;
  /** The address clients use for presigned URLs, if it differs from `endpoint` (e.g. a host name). */
  publicEndpoint?: string | undefined;
}

export function createS3(opts: { region: string; endpoint?: string | undefined }): S3Client {
  // Without WHEN_REQUIRED the SDK signs a CRC32 of the (empty) body into every presigned PUT, and
  // S3 would refuse the real upload as a checksum mismatch.
  const checksums = { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } as const;
  if (!opts.endpoint) return new S3Client({ region: opts.region, maxAttempts: 3, ...checksums });
  return new S3Client({
    ...checksums,
    region: opts.region,
    endpoint: opts.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) }),
    maxAttempts: 3,
  });
}

const isMissing = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
};
const isPrecondition = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'PreconditionFailed' || e?.$metadata?.httpStatusCode === 412;
};

export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  private readonly signer: S3Client;

  constructor(private readonly s3: S3Client, opts: S3Options) {
    this.bucket = opts.bucket;
    this.signer = opts.publicEndpoint ? createS3({ region: opts.region, endpoint: opts.publicEndpoint }) : s3;
  }

  async presignPut(key: string, o: { contentType: string; contentLength: number; metadata: Record<string, string>; expiresInSeconds: number }): Promise<PresignedUpload> {
    const metaHeaders = Object.fromEntries(Object.entries(o.metadata).map(([k, v]) => [`x-amz-meta-${k}`, v]));
    const cmd = new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentType: o.contentType, ContentLength: o.contentLength, Metadata: o.metadata });
    // Content-Type, Content-Length and the metadata are signed headers, not query parameters: S3
    // refuses an upload whose type, size or metadata differ from what the gateway allowed.
    const url = await getSignedUrl(this.signer, cmd, {
      expiresIn: o.expiresInSeconds,
      signableHeaders: new Set(['content-type', 'content-length']),
      unhoistableHeaders: new Set(Object.keys(metaHeaders)),
    });
    return { url, method: 'PUT', headers: { 'Content-Type': o.contentType, 'Content-Length': String(o.contentLength), ...metaHeaders } };
  }

  presignGet(key: string, o: { expiresInSeconds: number; fileName: string; contentType: string }): Promise<string> {
    const cmd = new GetObjectCommand({
      Bucket: this.bucket, Key: key,
      ResponseContentType: o.contentType,
      ResponseContentDisposition: `attachment; filename="${o.fileName.replace(/"/g, '')}"`,
    });
    return getSignedUrl(this.signer, cmd, { expiresIn: o.expiresInSeconds });
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const h = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: h.ContentLength ?? 0, etag: h.ETag ?? '', contentType: h.ContentType, metadata: h.Metadata ?? {}, lastModified: h.LastModified };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async get(key: string, etag?: string): Promise<Buffer | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(etag ? { IfMatch: etag } : {}) }));
      const bytes = await out.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (isMissing(err) || isPrecondition(err)) return undefined;
      throw err;
    }
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  async copy(from: string, to: string, etag: string): Promise<void> {
    await this.s3.send(new CopyObjectCommand({
      Bucket: this.bucket, Key: to, CopySource: `${this.bucket}/${encodeURI(from)}`, CopySourceIfMatch: etag, MetadataDirective: 'COPY',
    }));
  }

  async list(prefix: string): Promise<Array<{ key: string; size: number; etag: string }>> {
    const out: Array<{ key: string; size: number; etag: string }> = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0, etag: o.ETag ?? '' });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      if (chunk.length) await this.s3.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }));
    }
  }
}
