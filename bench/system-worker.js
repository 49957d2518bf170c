/**
 * Load generator of the `system` scenario (bench/scenarios/system.ts), in a worker thread so the
 * load has its own event loop. Plain CommonJS, loaded by path.
 *
 * - `level`: open-loop PUTs (1 KB JSON, keep-alive) at a fixed rate, each timed from its
 *   *scheduled* send time (no coordinated omission: a slow answer does not delay the next
 *   write), with Zipf-distributed reads paced beside them; every write is followed on the ack
 *   WebSocket of its principal until its `queued` and its final ack (`committed`/`rejected`).
 * - `reads`: closed-loop Zipf reads on N keep-alive connections for a while (read capacity).
 */
'use strict';
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { WebSocket } = require('ws');

const d = workerData;
const now = () => performance.now();
const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

/** Zipf(s) over n ranks: a sampler returning 0..n-1 (rank 0 the hottest). */
function zipf(n, s) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  for (let k = 0; k < n; k++) cdf[k] /= sum;
  return () => {
    const u = Math.random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}
const readRank = zipf(d.readIds.length, 1.0);

function request(url, method, headers, body) {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', () => resolve({ status: 0 }));
    });
    req.on('error', () => resolve({ status: 0 }));
    if (body) req.end(body);
    else req.end();
  });
}

// One ack WebSocket per principal, open for the whole run.
const inflight = new Map(); // requestId -> write record
const early = new Map(); // requestId -> {queued?, final?, stage?} (acks that beat the 202)
let sockets = [];

function openAcks() {
  return Promise.all(
    d.tokens.map(
      (token) =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`${d.ackUrl}/v1/acks`, { headers: { authorization: `Bearer ${token}` } });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
          ws.on('message', (data) => {
            const t = now();
            const m = JSON.parse(data.toString());
            if (m.type !== 'ack') return;
            const w = inflight.get(m.requestId);
            if (!w) {
              const e = early.get(m.requestId) ?? {};
              if (m.stage === 'queued') e.queued = t;
              else {
                e.final = t;
                e.stage = m.stage;
              }
              early.set(m.requestId, e);
              return;
            }
            if (m.stage === 'queued') w.queued = t;
            else settle(w, t, m.stage);
          });
        }),
    ),
  );
}

let current; // the level being run
function settle(w, t, stage) {
  if (w.final !== undefined) return;
  w.final = t;
  w.stage = stage;
  inflight.delete(w.requestId);
  current.finals.push(t - w.sched);
  current.finalTimes.push(t - current.t0);
  if (w.queued !== undefined) current.queueds.push(w.queued - w.sched);
  if (stage !== 'committed') current.rejected++;
  current.open--;
}

const body1k = (n) => {
  const doc = { n, title: `system bench write ${n}`, tags: ['bench', 'system'], body: '' };
  doc.body = 'x'.repeat(1024 - JSON.stringify(doc).length);
  return JSON.stringify(doc);
};

async function level({ rate, durationS, readRate, graceMs }) {
  const L = (current = {
    t0: now(), issued: 0, accepted: 0, failed: 0, rejected: 0, open: 0,
    acceptLat: [], queueds: [], finals: [], finalTimes: [], reads: 0, readErrors: 0, readLat: [], readTimes: [],
    statuses: {},
  });
  const total = Math.round(rate * durationS);
  const totalReads = Math.round(readRate * durationS);
  let readsIssued = 0;
  const writeOne = async (i) => {
    const sched = L.t0 + (i * 1000) / rate;
    const p = i % d.tokens.length;
    const id = d.writeIds[Math.floor(Math.random() * d.writeIds.length)];
    const body = body1k(i);
    const res = await request(`${d.gatewayUrl}/v1/collections/${d.collection}/items/${id}`, 'PUT', {
      authorization: `Bearer ${d.tokens[p]}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body),
    }, body);
    const t = now();
    if (res.status !== 202) {
      L.failed++;
      L.statuses[res.status] = (L.statuses[res.status] ?? 0) + 1;
      return;
    }
    L.accepted++;
    L.acceptLat.push(t - sched);
    const requestId = JSON.parse(res.body.toString()).requestId;
    const w = { requestId, sched };
    L.open++;
    inflight.set(requestId, w);
    const e = early.get(requestId);
    if (e) {
      early.delete(requestId);
      if (e.queued !== undefined) w.queued = e.queued;
      if (e.final !== undefined) settle(w, e.final, e.stage);
    }
  };
  const readOne = async (i) => {
    const sched = L.t0 + (i * 1000) / readRate;
    const id = d.readIds[readRank()];
    const res = await request(`${d.readUrl}/v1/collections/${d.collection}/items/${id}`, 'GET', { authorization: `Bearer ${d.tokens[0]}` });
    const t = now();
    if (res.status === 200) {
      L.reads++;
      L.readLat.push(t - sched);
      L.readTimes.push(t - L.t0);
    } else L.readErrors++;
  };
  const progress = setInterval(() => parentPort.postMessage({ type: 'progress', elapsedS: (now() - L.t0) / 1000, open: L.open }), 500);
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const elapsed = now() - L.t0;
      const dueW = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (L.issued < dueW) void writeOne(L.issued++);
      const dueR = Math.min(totalReads, Math.floor((elapsed * readRate) / 1000) + 1);
      while (readsIssued < dueR) void readOne(readsIssued++);
      if (L.issued >= total && readsIssued >= totalReads) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  // Stragglers: every accepted write must get its final ack; wait a bounded time for them.
  const sentAt = now();
  while ((L.accepted + L.failed < L.issued || L.open > 0) && now() - sentAt < graceMs) await new Promise((r) => setTimeout(r, 20));
  clearInterval(progress);
  const lost = L.open + (L.issued - L.accepted - L.failed);
  for (const [id, w] of inflight) if (w.sched >= L.t0) inflight.delete(id);
  return {
    rate, durationS, readRate,
    issued: L.issued, accepted: L.accepted, failed: L.failed, statuses: L.statuses, rejected: L.rejected, lost,
    drainMs: now() - sentAt,
    acceptLat: L.acceptLat, queueds: L.queueds, finals: L.finals, finalTimes: L.finalTimes,
    reads: L.reads, readErrors: L.readErrors, readLat: L.readLat, readTimes: L.readTimes,
  };
}

async function reads({ url, connections, durationS, token }) {
  const lat = [];
  let errors = 0;
  const t0 = now();
  const end = t0 + durationS * 1000;
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const progress = setInterval(() => parentPort.postMessage({ type: 'progress', elapsedS: (now() - t0) / 1000 }), 500);
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (now() < end) {
        const s = now();
        const res = await request(`${url}/v1/collections/${d.collection}/items/${d.readIds[readRank()]}`, 'GET', headers);
        if (res.status === 200) lat.push(now() - s);
        else errors++;
      }
    }),
  );
  clearInterval(progress);
  return { durationS: (now() - t0) / 1000, count: lat.length, errors, lat };
}

parentPort.on('message', async (m) => {
  try {
    if (m.cmd === 'open') {
      sockets = await openAcks();
      parentPort.postMessage({ type: 'done' });
    } else if (m.cmd === 'level') parentPort.postMessage({ type: 'done', ...(await level(m)) });
    else if (m.cmd === 'reads') parentPort.postMessage({ type: 'done', ...(await reads(m)) });
    else if (m.cmd === 'close') {
      for (const ws of sockets) ws.close();
      agent.destroy();
      parentPort.postMessage({ type: 'done' });
    }
  } catch (err) {
    parentPort.postMessage({ type: 'error', message: err && err.stack ? err.stack : String(err) });
  }
});
