/**
 * AWS SDK v3 clients. Against the local emulators they get an HTTP/1.1 handler (the emulators
 * refuse the SDK's HTTP/2 default for some services) and dummy credentials.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:http';

export interface AwsClientOptions {
  region: string;
  endpoint?: string | undefined;
}

// The SDK warns on every client creation that future releases need Node 22; it is pinned, so once is enough.
const originalEmit = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === 'string' ? warning : warning.message;
  if (text.includes('AWS SDK for JavaScript (v3)') || (warning as Error).name === 'NodeVersionSupportWarning') return;
  (originalEmit as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

function common(opts: AwsClientOptions) {
  if (!opts.endpoint) return { region: opts.region, maxAttempts: 3 };
  return {
    region: opts.region,
    endpoint: opts.endpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) }),
    maxAttempts: 3,
  };
}

export const createKinesis = (opts: AwsClientOptions) => new KinesisClient(common(opts));
export const createDynamo = (opts: AwsClientOptions) => new DynamoDBClient(common(opts));
export const createDocumentClient = (client: DynamoDBClient) =>
  DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
export const createSqs = (opts: AwsClientOptions) => new SQSClient(common(opts));
