/**
 * What the attachment worker checks in an upload, as functions of the bytes and what the gateway
 * signed into the upload: size, sha256, the real content type (magic numbers), the limits. Returns
 * the metadata to commit, or the rejection code and message.
 */
import { type AttachmentMeta, type AttachmentRejectionCode, IMAGE_TYPES, sha256Hex, type Thumbnail } from '../core/attachments';

/** Recognises a content type by magic numbers (file-type); undefined when nothing matches. */
export type Sniffer = (bytes: Buffer) => Promise<string | undefined>;
/** A thumbnail of an image, or an error if the bytes do not decode as an image. */
export type Thumbnailer = (bytes: Buffer) => Promise<{ bytes: Buffer; meta: Thumbnail }>;

/** The fields the gateway signed into the upload (S3 user metadata). */
export interface Declared {
  principal: string;
  name: string;
  contentType: string;
  size: number;
  sha256?: string | undefined;
  expiresAt: number;
}

export type Verdict =
  | { ok: true; meta: AttachmentMeta; thumbnail?: Buffer }
  | { ok: false; code: AttachmentRejectionCode; message: string };

/** The checks that need no bytes (so a too-large or late upload is never downloaded). */
export function precheck(d: Declared, actual: { size: number; landedAt: number }, maxBytes: number): Verdict | undefined {
  if (actual.landedAt > d.expiresAt) {
    return refuse('upload_expired', `The upload landed at ${new Date(actual.landedAt).toISOString()}, after its URL expired at ${new Date(d.expiresAt).toISOString()}.`);
  }
  if (actual.size > maxBytes) return refuse('attachment_too_large', `The object has ${actual.size} bytes; the limit is ${maxBytes}.`);
  if (actual.size !== d.size) return refuse('attachment_size_mismatch', `The object has ${actual.size} bytes, not the ${d.size} declared.`);
  return undefined;
}

export async function inspect(attachmentId: string, d: Declared, bytes: Buffer, sniff: Sniffer, thumbnail: Thumbnailer): Promise<Verdict> {
  if (bytes.length !== d.size) return refuse('attachment_size_mismatch', `The object has ${bytes.length} bytes, not the ${d.size} declared.`);
  const sha256 = sha256Hex(bytes);
  if (d.sha256 && d.sha256 !== sha256) return refuse('attachment_sha256_mismatch', `The object's sha256 is ${sha256}, not the ${d.sha256} declared.`);
  const actualType = await sniff(bytes);
  if (actualType !== d.contentType) {
    return refuse('attachment_type_mismatch', `The bytes are ${actualType ?? 'of no recognised type'}, not ${d.contentType} as declared.`);
  }
  const meta: AttachmentMeta = { attachmentId, name: d.name, contentType: d.contentType, size: bytes.length, sha256 };
  if (!IMAGE_TYPES.has(d.contentType)) return { ok: true, meta };
  try {
    const t = await thumbnail(bytes);
    return { ok: true, meta: { ...meta, thumbnail: t.meta }, thumbnail: t.bytes };
  } catch (err) {
    return refuse('attachment_type_mismatch', `The ${d.contentType} does not decode as an image (${(err as Error).message}).`);
  }
}

const refuse = (code: AttachmentRejectionCode, message: string): Verdict => ({ ok: false, code, message });

/** The signed metadata as S3 gives it back (lower-case keys), or undefined if any field is missing. */
export function declaredOf(metadata: Record<string, string>): Declared | undefined {
  const size = Number(metadata.size);
  const expiresAt = Date.parse(metadata.expires ?? '');
  if (!metadata.principal || !metadata.name || !metadata.contenttype || !Number.isInteger(size) || Number.isNaN(expiresAt)) return undefined;
  return { principal: metadata.principal, name: metadata.name, contentType: metadata.contenttype, size, sha256: metadata.sha256, expiresAt };
}

/** file-type (ESM only) through Node's require(esm), loaded on first use. */
export const fileTypeSniffer: Sniffer = async (bytes) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ft = require('file-type') as typeof import('file-type');
  return (await ft.fileTypeFromBuffer(bytes))?.mime;
};

/** A WebP thumbnail within 256×256 (sharp; the first frame of an animation). */
export const sharpThumbnailer: Thumbnailer = async (bytes) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  // CommonJS at run time (the function itself); the package's top-level types describe its ESM default export.
  const sharp = require('sharp') as typeof import('sharp').default;
  const { data, info } = await sharp(bytes, { limitInputPixels: 50_000_000 })
    .rotate()
    .resize(256, 256, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 75 })
    .toBuffer({ resolveWithObject: true });
  return { bytes: data, meta: { contentType: 'image/webp', width: info.width, height: info.height, size: data.length } };
};
