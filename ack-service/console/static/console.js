// Ackstream operator console: polls /console/api/snapshot once a second and follows the
// operator's own acks on the ack WebSocket. Plain browser JavaScript, no build step, no CDN.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const NA = 'n/a';
  let token = '';
  let pollTimer;
  let ackSocket;
  let lastCursor;
  const writes = new Map(); // requestId -> { row, sentAt }
  const early = new Map(); // acks that arrived before the POST answered
  const rateHistory = []; // [queued/s, committed/s]

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return NA;
    if (digits === undefined) digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
    return Number(v).toFixed(digits);
  }
  function setText(id, text) {
    const el = $(id);
    el.textContent = text;
    el.classList.toggle('na', text === NA);
  }
  function latencyTable(id, lat) {
    const el = $(id);
    el.replaceChildren();
    for (const k of ['p50', 'p95', 'p99', 'max']) {
      if (k === 'max' && lat && lat.max === undefined) continue;
      const tr = document.createElement('tr');
      const a = document.createElement('td');
      const b = document.createElement('td');
      a.textContent = k;
      b.textContent = lat ? `${fmt(lat[k])} ms` : NA;
      b.className = lat ? '' : 'na';
      tr.append(a, b);
      el.append(tr);
    }
  }

  function readToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem('ackstream-console-token', decodeURIComponent(m[1]));
      // Keep the token out of the address bar and the history.
      window.history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem('ackstream-console-token') || '';
  }

  function showLogin(message) {
    $('board').hidden = true;
    $('login').hidden = false;
    setText('status', message || 'sign in with an operator token');
    clearTimeout(pollTimer);
    if (ackSocket) ackSocket.close();
  }

  function start(t) {
    token = t;
    $('login').hidden = true;
    $('board').hidden = false;
    poll();
    openAcks();
  }

  async function poll() {
    clearTimeout(pollTimer);
    try {
      const res = await fetch('/console/api/snapshot', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) {
        const p = await res.json().catch(() => ({}));
        sessionStorage.removeItem('ackstream-console-token');
        showLogin(`${res.status}: ${p.detail || 'not allowed'}`);
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      render(await res.json());
      setText('status', `live · ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      setText('status', `snapshot failed: ${err.message}; retrying`);
    }
    pollTimer = setTimeout(poll, 1000);
  }

  function render(s) {
    setText('writes', fmt(s.writesPerS));
    setText('acks-queued', fmt(s.acksPerS.queued));
    setText('acks-committed', fmt(s.acksPerS.committed));
    setText('acks-rejected', fmt(s.acksPerS.rejected));
    setText('acks-pushed', fmt(s.acksPerS.pushed));
    setText('ack-totals', `${s.ackTotals.queued} queued · ${s.ackTotals.committed} committed · ${s.ackTotals.rejected} rejected`);
    latencyTable('lat-queued', s.queuedLatencyMs);
    latencyTable('lat-committed', s.committedLatencyMs);
    setText('sockets', fmt(s.openWebSockets.value, 0));
    $('sockets-source').textContent = s.openWebSockets.source;
    setText('dlq', fmt(s.dlqDepth, 0));
    setText('hit', s.readHitRatio === null ? NA : `${fmt(s.readHitRatio * 100, 1)} %`);
    setText('records', fmt(s.processorRecordsPerS));

    const body = $('shards').tBodies[0];
    body.replaceChildren();
    if (!s.shardLag.length) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = 3;
      td.textContent = NA;
      td.className = 'na';
    }
    for (const l of s.shardLag) {
      const tr = body.insertRow();
      tr.insertCell().textContent = l.shard;
      tr.insertCell().textContent = fmt(l.millisBehind, 0);
      tr.insertCell().textContent = fmt(l.iteratorAgeMs, 0);
    }

    const replay = $('replay');
    replay.replaceChildren();
    if (!s.replay.length) {
      replay.textContent = 'no replay running (n/a)';
      replay.className = 'na';
    } else {
      replay.className = '';
      for (const r of s.replay) {
        const div = document.createElement('div');
        const labels = Object.entries(r.labels).filter(([k]) => k !== 'service').map(([k, v]) => `${k}=${v}`).join(' ');
        div.textContent = `${r.name}${labels ? ` {${labels}}` : ''}: ${fmt(r.value)}`;
        replay.append(div);
      }
    }

    const sources = $('sources');
    sources.replaceChildren();
    for (const src of s.sources) {
      const li = document.createElement('li');
      li.textContent = `${src.url}: ${src.ok ? 'ok' : `n/a (${src.error})`}`;
      li.className = src.ok ? 'ok' : 'na';
      sources.append(li);
    }

    rateHistory.push([s.acksPerS.queued, s.acksPerS.committed]);
    if (rateHistory.length > 120) rateHistory.shift();
    spark();
  }

  function spark() {
    const svg = $('spark');
    const max = Math.max(1, ...rateHistory.flat());
    const line = (i, color) => {
      const pts = rateHistory.map((h, x) => `${(x / 119) * 600},${80 - (h[i] / max) * 76 - 2}`).join(' ');
      return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`;
    };
    svg.innerHTML = `${line(0, '#ff7f0e')}${line(1, '#1f77b4')}`;
    $('spark-legend').textContent = `scale 0–${fmt(max)}/s · queued (orange) · committed (blue)`;
  }

  function openAcks() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const after = lastCursor !== undefined ? `&after=${lastCursor}` : '';
    const ws = new WebSocket(`${proto}://${location.host}/v1/acks?access_token=${encodeURIComponent(token)}${after}`);
    ackSocket = ws;
    ws.onopen = () => setText('ack-socket', 'ack socket: open');
    ws.onclose = (e) => {
      setText('ack-socket', `ack socket: closed (${e.code}${e.reason ? ` ${e.reason}` : ''}); reconnecting`);
      if (ackSocket === ws && !$('board').hidden) setTimeout(openAcks, 2000);
    };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type !== 'ack') return;
      lastCursor = m.cursor;
      const w = writes.get(m.requestId);
      if (w) markAck(w, m, performance.now());
      else early.set(m.requestId, [...(early.get(m.requestId) || []), [m, performance.now()]]);
    };
  }

  function markAck(w, ack, at) {
    const cell = ack.stage === 'queued' ? w.row.cells[3] : w.row.cells[4];
    cell.textContent = `${ack.stage}${ack.version ? ` v${ack.version}` : ''} +${Math.round(at - w.sentAt)} ms`;
    cell.className = ack.stage === 'rejected' ? 'bad' : 'ok';
    cell.dataset.stage = ack.stage;
  }

  async function testWrite() {
    const sentAt = performance.now();
    const row = $('writes-log').tBodies[0].insertRow(0);
    for (let i = 0; i < 5; i++) row.insertCell().textContent = '…';
    try {
      const res = await fetch('/console/api/test-write', { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      const r = await res.json();
      row.cells[0].textContent = r.id || NA;
      row.cells[2].textContent = r.gatewayStatus === null ? `unreachable: ${r.error}` : String(r.gatewayStatus || res.status);
      const requestId = r.body && r.body.requestId;
      row.cells[1].textContent = requestId || (r.body && r.body.detail) || NA;
      if (!requestId) {
        row.cells[2].className = 'bad';
        return;
      }
      const w = { row, sentAt };
      writes.set(requestId, w);
      row.dataset.requestId = requestId;
      for (const [ack, at] of early.get(requestId) || []) markAck(w, ack, at);
      early.delete(requestId);
    } catch (err) {
      row.cells[2].textContent = `failed: ${err.message}`;
      row.cells[2].className = 'bad';
    }
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token-input').value.trim();
    if (!t) return;
    sessionStorage.setItem('ackstream-console-token', t);
    start(t);
  });
  $('test-write').addEventListener('click', testWrite);

  const t = readToken();
  if (t) start(t);
  else showLogin();
})();
