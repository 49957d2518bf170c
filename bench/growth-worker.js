/**
 * Loader of the `system-growth` scenario (bench/scenarios/system-growth.ts), in a worker thread so
 * the load has its own event loop. Plain CommonJS, loaded by path.
 *
 * `fill`: `total` 1 KB PUTs through the gateway as fast as the whole stack takes them: a closed loop of
 * `concurrency` keep-alive requests (each answer starts the next one), spread over the given tokens
 * (tenants of their own, so no tenant's rate limit is the bound), over an item space of `items` ids
 * (so the load both creates items and updates them). A 429/503 is retried after a short pause (the
 * write was not queued). No ack socket is opened for these principals: the acks are still appended to
 * the ack log (that is part of what accumulates) but nobody is pushed them. Returns the request ids of
 * the last writes of each token and its highest sequence number per shard, so the caller can wait until
 * the processors decided them and the projection consumer wrote them (a listing's consistentWith).
 */
'use strict';
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');

const d = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function put(url, token, body) {
  return new Promise((resolve) => {
    const req = http.request(url, {
      method: 'PUT', agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', () => resolve({ status: 0 }));
    });
    req.on('error', () => resolve({ status: 0 }));
    req.end(body);
  });
}

const body1k = (n) => {
  const doc = { n, title: `growth bench write ${n}`, tags: ['bench', 'growth'], body: '' };
  doc.body = 'g'.repeat(1024 - JSON.stringify(doc).length);
  return JSON.stringify(doc);
};

function get(url, token) {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'GET', agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function fill({ total, concurrency, items, maxLagS }) {
  const t0 = performance.now();
  let next = 0;
  let accepted = 0;
  let retried = 0;
  const statuses = {};
  const last = d.tokens.map(() => []);
  // Per token, the highest sequence number per shard among its 202s: the listing's consistentWith.
  const heads = d.tokens.map(() => ({}));
  // The projection consumer (DynamoDB) takes fewer writes/s than the gateway and the commit consumer:
  // the fill holds back while the first tenant's listing has not caught up with what it queued
  // `maxLagS` seconds ago (consistentWith; the read API waits up to 2 s, then answers 409), so the
  // fill goes at the rate the whole stack sustains and ends without a backlog.
  let paused = false;
  let pausedMs = 0;
  let done = false;
  const snapshots = [];
  const governor = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 1000));
      snapshots.push({ at: performance.now(), heads: { ...heads[0] } });
      const due = snapshots.filter((x) => performance.now() - x.at >= maxLagS * 1000);
      if (!due.length) continue;
      const probe = due[due.length - 1];
      snapshots.splice(0, snapshots.indexOf(probe));
      const consistentWith = Object.entries(probe.heads).map(([shard, seq]) => `${shard}:${seq}`).join(',');
      if (!consistentWith) continue;
      const status = await get(`${d.readUrl}/v1/collections/${d.collection}/items?limit=1&consistentWith=${encodeURIComponent(consistentWith)}`, d.tokens[0]);
      paused = status !== 200;
    }
  })();
  const progress = setInterval(() => {
    if (paused) pausedMs += 500;
    parentPort.postMessage({ type: 'progress', done: accepted, paused, elapsedS: (performance.now() - t0) / 1000 });
  }, 500);
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      if (paused) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const i = next++;
      const p = i % d.tokens.length;
      const body = body1k(i);
      for (;;) {
        const res = await put(`${d.gatewayUrl}/v1/collections/${d.collection}/items/g-${i % items}`, d.tokens[p], body);
        if (res.status === 202) {
          accepted++;
          const ack = JSON.parse(res.body.toString());
          const ids = last[p];
          ids.push(ack.requestId);
          const h = heads[p];
          if (h[ack.shardId] === undefined || BigInt(ack.sequenceNumber) > BigInt(h[ack.shardId])) h[ack.shardId] = ack.sequenceNumber;
          if (ids.length > 8) ids.shift();
          break;
        }
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status !== 429 && res.status !== 503 && res.status !== 0) throw new Error(`PUT answered ${res.status}: ${res.body}`);
        retried++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }));
  clearInterval(progress);
  done = true;
  await governor;
  return { accepted, retried, statuses, durationS: (performance.now() - t0) / 1000, last, heads, pausedS: pausedMs / 1000 };
}

parentPort.on('message', async (m) => {
  try {
    if (m.cmd === 'fill') parentPort.postMessage({ type: 'done', ...(await fill(m)) });
    else if (m.cmd === 'close') {
      agent.destroy();
      parentPort.postMessage({ type: 'done' });
    }
  } catch (err) {
    parentPort.postMessage({ type: 'error', message: err && err.stack ? err.stack : String(err) });
  }
});
