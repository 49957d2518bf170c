/** The attachment worker on Lambda: SQS event source mapping with ReportBatchItemFailures. */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { composeWorker, WorkerConfig } from './composition';

const config = loadConfig(WorkerConfig);
const { worker } = composeWorker(config, createLogger(config.LOG_LEVEL, { service: 'attachment-worker' }));

export const handler = (event: SQSEvent): Promise<SQSBatchResponse> => worker.handle(event);
