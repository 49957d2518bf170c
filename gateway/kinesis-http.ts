/**
 * PutRecords straight over HTTP(S): the JSON protocol request (`Kinesis_20131202.PutRecords`),
 * signed with the SDK's own SigV4 signer (@smithy/signature-v4) and the SDK client's credential
 * provider, sent on a keep-alive agent.
 *
 * Why not `KinesisClient.send`: on this project's machine the SDK v3 request path (middleware
 * stack, schema serde, endpoint rules, retry strategy, its HTTP handler) costs ≈ 1.2 ms more CPU
 * per call than this for the same request (1.8 vs 0.6 ms for one record against kinesalite), and
 * the gateway makes one call per batch. The batcher does its own retries, so nothing of the SDK's
 * retry strategy is lost. Everything else (creating streams, reading them, other services) stays
 * on the SDK.
 *
 * It answers the batcher's `send(PutRecordsCommand)` with the SDK's output shape, so the batcher
 * and the tests that wrap the SDK client to inject faults see one interface.
 */
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { PutRecordsCommand, type PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, SourceData } from '@smithy/types';
import type { KinesisSender } from './batching-stream';

const bytes = (d: SourceData): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** node:crypto behind the signer's hash interface (what @smithy/hash-node does). */
export class NodeSha256 {
  private readonly h;
  constructor(secret?: SourceData) {
    this.h = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256');
  }
  update(data: SourceData) {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset() {
    throw new Error('not used by the signer');
  }
}

export interface HttpKinesisOptions {
  /** e.g. `https://kinesis.eu-west-1.amazonaws.com`, or an emulator's `http://127.0.0.1:4567`. */
  endpoint: string;
  region: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Sockets kept open to the endpoint (one per call in flight). */
  maxSockets?: number;
}

/** A failed call (HTTP status ≥ 400): `name` is the service's error type, as the SDK names it. */
export class KinesisCallError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export class HttpKinesisSender implements KinesisSender {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly signer: SignatureV4;
  private readonly host: string;

  constructor(opts: HttpKinesisOptions) {
    this.url = new URL(opts.endpoint);
    const secure = this.url.protocol === 'https:';
    const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets ?? 16 };
    this.agent = secure ? new https.Agent(agentOpts) : new http.Agent(agentOpts);
    this.host = this.url.host;
    this.signer = new SignatureV4({
      credentials: opts.credentials, region: opts.region, service: 'kinesis', sha256: NodeSha256, uriEscapePath: true,
    });
  }

  async send(command: PutRecordsCommand, options: { abortSignal?: AbortSignal } = {}): Promise<PutRecordsCommandOutput> {
    if (!(command instanceof PutRecordsCommand)) throw new TypeError('HttpKinesisSender sends PutRecords only');
    const { StreamName, StreamARN, Records = [] } = command.input;
    // Built by hand: the records' bytes go in as base64 without an intermediate object tree.
    let body = StreamName !== undefined ? `{"StreamName":${JSON.stringify(StreamName)}` : `{"StreamARN":${JSON.stringify(StreamARN)}`;
    body += ',"Records":[';
    Records.forEach((r, i) => {
      const data = Buffer.isBuffer(r.Data) ? r.Data : Buffer.from(r.Data!);
      body += `${i ? ',' : ''}{"Data":"${data.toString('base64')}","PartitionKey":${JSON.stringify(r.PartitionKey)}${
        r.ExplicitHashKey !== undefined ? `,"ExplicitHashKey":${JSON.stringify(r.ExplicitHashKey)}` : ''}}`;
    });
    body += ']}';
    const signed = await this.signer.sign({
      method: 'POST', protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port ? Number(this.url.port) : undefined,
      path: '/', query: {}, body,
      headers: {
        host: this.host,
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'Kinesis_20131202.PutRecords',
        'content-length': String(Buffer.byteLength(body)),
      },
    });
    const { status, text } = await this.post(signed.headers, body, options.abortSignal);
    if (status >= 400) throw callError(status, text);
    const out = JSON.parse(text) as Omit<PutRecordsCommandOutput, '$metadata'>;
    return { ...out, $metadata: { httpStatusCode: status } };
  }

  private post(headers: Record<string, string>, body: string, signal?: AbortSignal): Promise<{ status: number; text: string }> {
    const lib = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        { agent: this.agent, protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port, method: 'POST', path: '/', headers, ...(signal ? { signal } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', (err: Error) => reject(err.name === 'AbortError' ? Object.assign(new Error('PutRecords call timed out'), { name: 'TimeoutError' }) : err));
      req.end(body);
    });
  }

  destroy() {
    this.agent.destroy();
  }
}

/** `{"__type":"...#ProvisionedThroughputExceededException","message":"..."}` → an error named by its type. */
function callError(status: number, text: string): KinesisCallError {
  let type = `HTTP${status}`;
  let message = text.slice(0, 200);
  try {
    const e = JSON.parse(text) as { __type?: string; message?: string; Message?: string };
    if (e.__type) type = e.__type.slice(e.__type.lastIndexOf('#') + 1);
    message = e.message ?? e.Message ?? message;
  } catch {
    // not JSON: keep the status and the start of the text
  }
  return new KinesisCallError(type, message, status);
}
