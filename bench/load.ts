/** Runs bench/load-worker.js in a worker thread and returns what it measured. */
import path from 'node:path';
import { Worker } from 'node:worker_threads';

export interface LoadOptions {
  mode: 'reads' | 'mixed';
  readUrl: string;
  /** Request paths the reads rotate through. */
  paths: string[];
  token?: string;
  connections: number;
  durationS: number;
  /** mixed: */
  gatewayUrl?: string;
  ackUrl?: string;
  writeIds?: string[];
  /** Reads per write. */
  ratio?: number;
  maxOutstanding?: number;
}

export interface LoadResult {
  durationS: number;
  /** ms since the worker started, one per successful read. */
  readTimes: number[];
  readLatencies: number[];
  readErrors: number;
  writesIssued?: number;
  writesUnfinished?: number;
  rejected?: number;
  writeErrors?: number;
  /** PUT -> 202 (the queued ack is appended before the 202). */
  queuedLatencies?: number[];
  /** PUT -> committed ack received on the WebSocket. */
  committedLatencies?: number[];
  committedTimes?: number[];
}

export function runLoad(opts: LoadOptions, onProgress: (elapsedS: number) => void): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'load-worker.js'), { workerData: opts });
    let settled = false;
    worker.on('message', (m: { type: string; elapsedS?: number; message?: string } & LoadResult) => {
      if (m.type === 'progress') onProgress(m.elapsedS!);
      else if (m.type === 'done') {
        settled = true;
        resolve(m);
        void worker.terminate();
      } else if (m.type === 'error') {
        settled = true;
        reject(new Error(`load worker: ${m.message}`));
        void worker.terminate();
      }
    });
    worker.on('error', (err) => {
      if (!settled) reject(err);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`load worker exited (${code}) before reporting`));
    });
  });
}
