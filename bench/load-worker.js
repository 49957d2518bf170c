/**
 * Load generator for bench scenarios, run in a worker thread so that the load has its own event
 * loop (and core) instead of competing with the services it measures. Plain CommonJS, loaded by
 * path from bench/load.ts.
 *
 * Reads: autocannon (closed loop, N connections), latency of every response recorded.
 * Writes (mode "mixed"): PUTs through the gateway paced at reads/ratio, each awaited until its
 * `committed` ack arrives on an ack WebSocket of the same principal.
 */
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const autocannon = require('autocannon');
const { WebSocket } = require('ws');

const d = workerData;
const now = () => performance.now();

function runReads(onResponse) {
  let i = 0;
  const opts = {
    url: d.readUrl,
    connections: d.connections,
    duration: d.durationS,
    headers: d.token ? { authorization: `Bearer ${d.token}` } : {},
    requests: [{ setupRequest: (req) => ({ ...req, path: d.paths[i++ % d.paths.length] }) }],
  };
  const instance = autocannon(opts);
  instance.on('response', (_client, status, _bytes, ms) => onResponse(status, ms));
  return new Promise((resolve, reject) => {
    instance.on('done', resolve);
    instance.on('error', reject);
  });
}

function openAcks() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${d.ackUrl}/v1/acks?access_token=${encodeURIComponent(d.token)}`);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function main() {
  const start = now();
  const readTimes = [];
  const readLatencies = [];
  let readErrors = 0;
  const progress = setInterval(() => parentPort.postMessage({ type: 'progress', elapsedS: (now() - start) / 1000 }), 500);

  let writer;
  if (d.mode === 'mixed') writer = await startWriter();
  const onRead = (status, ms) => {
    if (status >= 200 && status < 300) {
      readLatencies.push(ms);
      readTimes.push(now() - start);
    } else readErrors++;
    if (writer) writer.reads++;
  };
  await runReads(onRead);
  const readsEnd = now();
  const writes = writer ? await writer.stop() : undefined;
  clearInterval(progress);
  parentPort.postMessage({
    type: 'done',
    durationS: (readsEnd - start) / 1000,
    readTimes, readLatencies, readErrors,
    ...(writes ?? {}),
  });
}

async function startWriter() {
  const ws = await openAcks();
  const started = new Map(); // requestId -> t0 (ms since worker start)
  const early = new Map(); // committed acks that beat the 202 to us
  const queuedLatencies = [];
  const committedLatencies = [];
  const committedTimes = [];
  let issued = 0;
  let outstanding = 0;
  let rejected = 0;
  let writeErrors = 0;
  const t0 = now();
  const state = { reads: 0 };
  const finish = (requestId, at, stage) => {
    const s = started.get(requestId);
    if (s === undefined) return false;
    started.delete(requestId);
    outstanding--;
    if (stage === 'committed') {
      committedLatencies.push(at - s);
      committedTimes.push(at - t0);
    } else rejected++;
    return true;
  };
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.type !== 'ack' || m.stage === 'queued') return;
    if (!finish(m.requestId, now(), m.stage)) early.set(m.requestId, { at: now(), stage: m.stage });
  });
  const writeOne = async () => {
    const n = issued++;
    outstanding++;
    const begin = now();
    try {
      const res = await fetch(`${d.gatewayUrl}/v1/collections/bench/items/${d.writeIds[n % d.writeIds.length]}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ n, note: 'mixed benchmark write', at: Date.now() }),
      });
      const body = await res.json();
      if (res.status !== 202) throw new Error(`status ${res.status}`);
      queuedLatencies.push(now() - begin);
      started.set(body.requestId, begin);
      const e = early.get(body.requestId);
      if (e) {
        early.delete(body.requestId);
        finish(body.requestId, e.at, e.stage);
      }
    } catch {
      writeErrors++;
      outstanding--;
    }
  };
  let running = true;
  const tick = setInterval(() => {
    if (!running) return;
    while (issued < Math.floor(state.reads / d.ratio) && outstanding < d.maxOutstanding) void writeOne();
  }, 5);
  return Object.assign(state, {
    async stop() {
      running = false;
      clearInterval(tick);
      const deadline = now() + 15_000;
      while (outstanding > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 20));
      ws.close();
      return { writesIssued: issued, writesUnfinished: outstanding, rejected, writeErrors, queuedLatencies, committedLatencies, committedTimes };
    },
  });
}

main().catch((err) => {
  parentPort.postMessage({ type: 'error', message: err && err.stack ? err.stack : String(err) });
});
