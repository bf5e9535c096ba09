// dockcast live page: follows the gateway's /ws stream (see the contract's
// "Gateway HTTP and WebSocket protocol"). Plain JavaScript, no dependencies.
'use strict';
(() => {
  const CAP = 2000;               // rows kept in the list (and events kept while paused)
  const KEYS = ['type', 'event', 'node', 'container', 'image', 'label', 'healthcheck'];
  const DEFAULT_SINCE = '15m';    // replay window on load
  const CHART_SECONDS = 300;      // the chart shows the last 5 minutes
  const BACKOFF_BASE = 500;       // ms; doubled per failed attempt, with jitter
  const BACKOFF_MAX = 30000;
  const TOKEN_KEY = 'dockcast.token';
  const MAX_NOTICES = 5;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const S = {
    filters: {},         // key -> [values]
    since: DEFAULT_SINCE,
    lastSeq: 0,          // highest event seq accepted: anything at or below is a duplicate
    nextSeq: 0,          // from_seq of the next connection; 0 = replay with since
    epoch: '',           // the stream's epoch (from the live frame): sent with from_seq
    ws: null,
    gen: 0,              // connection generation: frames of older sockets are ignored
    attempt: 0,
    retryTimer: null,
    retryAt: 0,
    retryReason: '',
    paused: false,
    pending: [],         // frames received while paused
    queue: [],           // frames waiting for the next render
    flushTimer: null,
    rows: 0,
    trimmed: false,
    nodes: new Map(),
    stats: null,
    stopped: false,
  };
  const frames = new WeakMap(); // row -> event frame, for the detail view

  function resetStats() {
    S.stats = {
      received: 0, rendered: 0, duplicates: 0, lastRenderedSeq: 0,
      firstRowAt: null, liveAt: null, maxLagMs: 0, maxRecvLagMs: 0, renderMs: 0, connects: 0, slowConsumer: 0, gaps: 0,
      resets: 0, url: '', protocol: '',
    };
  }
  resetStats();

  // ---- filters and the page URL -------------------------------------------

  function splitValues(s) {
    return String(s).split(',').map((v) => v.trim()).filter((v) => v !== '');
  }

  function filtersFromURL() {
    const p = new URLSearchParams(location.search);
    const f = {};
    for (const k of KEYS) {
      const vals = [];
      for (const v of p.getAll(k)) vals.push(...splitValues(v));
      if (vals.length) f[k] = vals;
    }
    S.filters = f;
    S.since = p.get('since') || DEFAULT_SINCE;
    for (const k of KEYS) $('f-' + k).value = (f[k] || []).join(', ');
  }

  function filtersFromForm() {
    const f = {};
    for (const k of KEYS) {
      const vals = splitValues($('f-' + k).value);
      if (vals.length) f[k] = vals;
    }
    return f;
  }

  function pageQuery(f, since) {
    const p = new URLSearchParams();
    for (const k of KEYS) for (const v of f[k] || []) p.append(k, v);
    if (since && since !== DEFAULT_SINCE) p.set('since', since);
    const s = p.toString();
    return s ? '?' + s : location.pathname;
  }

  // The token never goes in the URL (proxy logs keep URLs): the WebSocket
  // carries it as a subprotocol, the plain probe as a Bearer header.
  function wsQuery() {
    const p = new URLSearchParams();
    for (const k of KEYS) for (const v of S.filters[k] || []) p.append('filter', k + '=' + v);
    if (S.nextSeq > 0) {
      p.set('from_seq', String(S.nextSeq));
      if (S.epoch) p.set('epoch', S.epoch);
    } else {
      p.set('since', S.since);
    }
    return p.toString();
  }

  function base64url(text) {
    let bin = '';
    for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function protocols() {
    const tok = sessionStorage.getItem(TOKEN_KEY);
    return tok ? ['dockcast.v1', 'dockcast.token.' + base64url(tok)] : ['dockcast.v1'];
  }

  // ---- connection ----------------------------------------------------------

  function setConn(state, text) {
    $('conn').dataset.state = state;
    $('conn-text').textContent = text;
  }

  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = null;
    S.stopped = false;
    $('reconnect').hidden = true;
    const gen = ++S.gen;
    if (S.ws) {
      try { S.ws.close(1000); } catch (_) { /* already closed */ }
      S.ws = null;
    }
    const q = wsQuery();
    const url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws?' + q;
    let opened = false;
    let ws;
    try {
      ws = new WebSocket(url, protocols());
    } catch (e) {
      retry('cannot open a WebSocket: ' + e.message);
      return;
    }
    S.ws = ws;
    S.stats.connects++;
    S.stats.url = url;
    setConn('connecting', S.nextSeq > 0 ? 'reconnecting, resuming from #' + S.nextSeq + '…' : 'connecting…');
    ws.onopen = () => {
      if (gen !== S.gen) return;
      opened = true;
      S.stats.protocol = ws.protocol;
      setConn('replaying', S.nextSeq > 0 ? 'catching up from #' + S.nextSeq + '…' : 'replaying the last ' + S.since + '…');
    };
    ws.onmessage = (m) => {
      if (gen === S.gen) onFrame(m.data);
    };
    ws.onclose = (e) => {
      if (gen !== S.gen) return;
      S.ws = null;
      if (S.stopped) return;
      if (!opened) {
        probe(q, gen);
        return;
      }
      if (e.code === 1001) retry('the gateway is restarting');
      else if (e.code === 1012) retry('the stream was reset: starting over');
      else retry('connection lost' + (e.reason ? ' (' + e.reason + ')' : ''));
    };
  }

  // The browser hides why a WebSocket handshake failed; the same URL fetched
  // plainly is answered 400/401/403/503 with a one-line reason before any upgrade.
  async function probe(q, gen) {
    let res;
    let text = '';
    try {
      const tok = sessionStorage.getItem(TOKEN_KEY);
      res = await fetch('/ws?' + q, { cache: 'no-store', headers: tok ? { Authorization: 'Bearer ' + tok } : {} });
      text = (await res.text()).trim();
    } catch (_) {
      if (gen === S.gen) retry('the gateway is unreachable');
      return;
    }
    if (gen !== S.gen) return;
    if (res.status === 401) {
      askToken(sessionStorage.getItem(TOKEN_KEY) ? 'The gateway rejected the token' + (text ? ': ' + text : '.') : 'This gateway needs an access token.');
    } else if (res.status === 403) {
      fail('Access denied: ' + (text || 'the token may not read these events') + '. Change the filters or the token.');
    } else if (res.status === 400 && text && !/websocket|^bad request$/i.test(text)) {
      fail('The gateway rejected the request: ' + text);
    } else if (res.status === 503 || res.status === 429) {
      retry('the gateway is busy' + (text ? ' (' + text + ')' : ''));
    } else {
      retry('connection failed');
    }
  }

  function retry(reason) {
    const exp = Math.min(BACKOFF_MAX, BACKOFF_BASE * 2 ** Math.min(S.attempt, 16));
    const delay = exp / 2 + Math.random() * (exp / 2);
    S.attempt++;
    S.retryReason = reason;
    S.retryAt = Date.now() + delay;
    clearTimeout(S.retryTimer);
    S.retryTimer = setTimeout(connect, delay);
    $('reconnect').hidden = false;
    showRetry();
  }

  function showRetry() {
    if (!S.retryTimer) return;
    const s = Math.max(0, (S.retryAt - Date.now()) / 1000);
    setConn('reconnecting', S.retryReason + ' — retrying in ' + s.toFixed(s < 10 ? 1 : 0) + ' s');
  }

  function fail(message) {
    S.stopped = true;
    clearTimeout(S.retryTimer);
    S.retryTimer = null;
    if (S.ws) {
      try { S.ws.close(1000); } catch (_) { /* closed */ }
      S.ws = null;
    }
    setConn('failed', 'not connected');
    notice('error', message);
    $('reconnect').hidden = false;
  }

  function askToken(why) {
    S.stopped = true;
    setConn('failed', 'waiting for a token');
    $('token-why').textContent = why;
    $('token-input').value = '';
    const d = $('token-dialog');
    if (!d.open) d.showModal();
    $('token-input').focus();
  }

  // ---- frames --------------------------------------------------------------

  function onFrame(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch (_) {
      notice('error', 'The gateway sent a frame that is not JSON.');
      return;
    }
    switch (f.type) {
      case 'event': onEvent(f); break;
      case 'live':
        if (f.epoch && S.epoch && f.epoch !== S.epoch) {
          // Another incarnation of the stream: what the list shows is stale.
          startOver('The event stream was made again (its sequence numbers restarted); the list starts over with the new stream\'s events.', f.epoch);
          connect(); // this connection may have replayed from the old window: start it again
          return;
        }
        if (f.epoch) S.epoch = f.epoch;
        if (Number.isSafeInteger(f.seq) && f.seq + 1 > S.nextSeq) S.nextSeq = f.seq + 1;
        S.attempt = 0;
        if (S.stats.liveAt === null) S.stats.liveAt = performance.now();
        setConn('live', 'live');
        updateEmpty();
        break;
      case 'gap': onGap(f); break;
      case 'status': onStatus(f.status, f.stale === true); break;
      case 'error': onError(f); break;
      default: break; // newer gateways may add frame types
    }
  }

  function onEvent(f) {
    if (!Number.isSafeInteger(f.seq) || !f.event || f.seq <= S.lastSeq) {
      S.stats.duplicates++;
      return;
    }
    S.lastSeq = f.seq;
    if (f.seq + 1 > S.nextSeq) S.nextSeq = f.seq + 1;
    S.stats.received++;
    const rl = Date.now() - f.event.time_nano / 1e6;
    if (rl > S.stats.maxRecvLagMs) S.stats.maxRecvLagMs = rl;
    chartAdd(f.event);
    if (S.paused) {
      S.pending.push(f);
      if (S.pending.length > CAP) S.pending.shift();
    } else {
      S.queue.push(f);
    }
    scheduleFlush();
  }

  function onGap(f) {
    S.stats.gaps++;
    if (f.requested_seq !== undefined) {
      const lost = f.first_seq - f.requested_seq;
      notice('warn', lost + ' event' + (lost === 1 ? ' was' : 's were') + ' removed from the stream (by its age or size limits) before they could be shown: #' +
        f.requested_seq + ' to #' + (f.first_seq - 1) + '. Continuing from #' + f.first_seq + '.');
    } else {
      notice('warn', 'Some events stored since ' + fmtDateTime(new Date(f.requested_time)) +
        ' were removed from the stream by its limits before they could be shown. Continuing from #' + f.first_seq + '.');
    }
  }

  // Error frames come before the gateway closes the connection; onclose
  // then reconnects as set up here.
  function onError(f) {
    const resume = Number.isSafeInteger(f.resume_from_seq) && f.resume_from_seq > 0;
    if (resume) S.nextSeq = f.resume_from_seq;
    if (f.epoch && resume) S.epoch = f.epoch;
    switch (f.code) {
      case 'slow_consumer':
        S.stats.slowConsumer++;
        notice('warn', 'This page fell behind the event stream and the gateway disconnected it; resuming from #' + S.nextSeq + ', nothing is lost.');
        return;
      case 'replay_lost':
        notice('warn', 'Events were removed from the stream while they were being replayed; reconnecting from #' + S.nextSeq + ' to learn what is gone.');
        return;
      case 'stream_reset':
        startOver('The event stream was deleted and made again, so its sequence numbers restarted: the list starts over with the new stream\'s events (the events shown before are no longer in the stream).', f.epoch);
        return;
      case 'token_revoked':
        askToken('The gateway revoked this token' + (f.message ? ': ' + f.message : '') + '. Enter a valid one to go on from #' + S.nextSeq + '.');
        sessionStorage.removeItem(TOKEN_KEY);
        return;
      default:
        notice('error', 'Gateway error ' + (f.code || '') + ': ' + (f.message || 'no details'));
    }
  }

  // startOver forgets the old stream: the rows, the resume point and the
  // duplicate guard go, and the next connection replays the page's window
  // of the new stream without from_seq.
  function startOver(message, epoch) {
    S.stats.resets++;
    S.lastSeq = 0;
    S.nextSeq = 0;
    S.epoch = epoch || '';
    S.attempt = 0;
    buckets.clear();
    clearList();
    notice('warn', message);
  }

  // stale: the node's publisher stopped rewriting its status (it, or its
  // link to NATS, is gone): what the status says is no longer known.
  function onStatus(st, stale) {
    if (!st || !st.node) return;
    S.nodes.set(st.node, Object.assign({}, st, { stale: stale }));
    const box = $('nodes');
    box.textContent = '';
    for (const n of [...S.nodes.keys()].sort()) {
      const s = S.nodes.get(n);
      const up = s.docker === 'connected';
      const chip = el('span', s.stale ? 'node unknown' : up ? 'node' : 'node down');
      if (s.stale) {
        chip.textContent = n + ': status unknown' + (s.updated ? ' — no word from its publisher since ' + fmtClock(new Date(s.updated)) : '');
      } else if (up) {
        chip.textContent = n + ': Docker connected' + (s.engine && s.engine.version ? ' (engine ' + s.engine.version + ')' : '');
      } else {
        chip.textContent = n + ': Docker disconnected' + (s.since ? ' since ' + fmtClock(new Date(s.since)) : '') + (s.error ? ' — ' + s.error : '');
      }
      if (s.since) chip.title = 'since ' + s.since;
      box.appendChild(chip);
    }
  }

  function notice(kind, text) {
    const box = $('notices');
    const n = el('div', 'notice' + (kind === 'error' ? ' error' : ''));
    n.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const p = el('p', '', fmtClock(new Date()) + ' — ' + text);
    const b = el('button', '', 'Dismiss');
    b.type = 'button';
    b.addEventListener('click', () => n.remove());
    n.append(p, b);
    box.prepend(n);
    while (box.children.length > MAX_NOTICES) box.lastElementChild.remove();
  }

  // ---- the list ------------------------------------------------------------

  // Rows are rendered in batches: every 40 ms, or less often when rendering
  // itself takes long (a busy engine), so the page keeps up instead of
  // spending all its time on layout.
  let flushDelay = 40;
  function scheduleFlush() {
    if (S.flushTimer === null) S.flushTimer = setTimeout(flush, flushDelay);
  }

  function flush() {
    S.flushTimer = null;
    const t0 = performance.now();
    flushRows();
    const took = performance.now() - t0;
    S.stats.renderMs += took;
    flushDelay = Math.min(500, Math.max(40, 4 * took));
  }

  function flushRows() {
    updatePause();
    if (S.paused || S.queue.length === 0) return;
    let batch = S.queue;
    S.queue = [];
    S.stats.rendered += batch.length;
    S.stats.lastRenderedSeq = batch[batch.length - 1].seq;
    const lag = Date.now() - batch[0].event.time_nano / 1e6; // the batch's oldest waited longest
    if (lag > S.stats.maxLagMs) S.stats.maxLagMs = lag;
    if (batch.length > CAP) {
      batch = batch.slice(batch.length - CAP);
      S.trimmed = true;
    }
    // Highlight new rows only when they trickle in: animating many rows costs
    // repaints a busy page cannot afford.
    const flash = batch.length <= 2 && flushDelay <= 40 && $('conn').dataset.state === 'live';
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.appendChild(row(batch[i], flash));
    const body = $('rows');
    body.insertBefore(frag, body.firstChild);
    S.rows += batch.length;
    while (S.rows > CAP) {
      const lastRow = body.lastElementChild;
      if (!lastRow) break;
      if (lastRow.classList.contains('ev')) {
        S.rows--;
        S.trimmed = true;
      }
      lastRow.remove();
    }
    if (S.stats.firstRowAt === null) S.stats.firstRowAt = performance.now();
    updateEmpty();
  }

  const TYPE_COLORS = {
    container: '#2b6cb0', image: '#805ad5', volume: '#2c7a7b', network: '#dd6b20',
    daemon: '#4a5568', plugin: '#b83280', service: '#3182ce', node: '#38a169',
    secret: '#975a16', config: '#6b46c1', builder: '#718096', dockcast: '#c05621',
  };
  const EXTRA_COLORS = ['#e53e3e', '#319795', '#d69e2e', '#5a67d8', '#ed64a6', '#48bb78'];
  function typeColor(t) {
    if (TYPE_COLORS[t]) return TYPE_COLORS[t];
    let h = 0;
    for (const c of String(t)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return EXTRA_COLORS[h % EXTRA_COLORS.length];
  }

  const BAD = /^(die|kill|oom|destroy|delete|remove|gap)$/;
  const GOOD = /^(start|create|restart|unpause|connect|mount|pull|tag)$/;

  function cell(cls, text) {
    const c = el('span', cls, text);
    c.setAttribute('role', 'cell');
    return c;
  }

  function row(f, flash) {
    const ev = f.event;
    const attrs = (ev.actor && ev.actor.attributes) || {};
    const tr = el('div', 'tr ev' + (flash ? ' new' : '') + (ev.type === 'dockcast' ? ' dockcast' : ''));
    tr.setAttribute('role', 'row');
    tr.dataset.seq = f.seq;
    tr.dataset.id = ev.id || '';
    frames.set(tr, f);

    const cExp = cell('x');
    const b = el('button', 'exp', '▸');
    b.type = 'button';
    b.setAttribute('aria-expanded', 'false');
    b.setAttribute('aria-label', 'Show the event JSON of #' + f.seq);
    b.addEventListener('click', () => toggle(tr, b));
    cExp.appendChild(b);

    const cTime = cell('t', fmtClock(new Date(ev.time_nano / 1e6), true));
    cTime.title = ev.time || '';
    const cNode = cell('n', ev.node || '');
    cNode.title = ev.node || '';
    const cType = cell('ty');
    const badge = el('span', 'type', ev.type || '');
    badge.style.background = typeColor(ev.type);
    cType.appendChild(badge);

    let detail = ev.action_detail || '';
    if (ev.type === 'dockcast' && !detail && attrs.reason) detail = attrs.reason;
    const cAct = cell('a');
    const act = el('span', 'act', ev.action || '');
    if (BAD.test(ev.action) || /unhealthy/.test(detail)) act.classList.add('bad');
    else if (GOOD.test(ev.action) || detail === 'healthy' || detail === 'running') act.classList.add('good');
    if (detail) act.appendChild(el('span', 'det', ': ' + detail));
    cAct.title = (ev.action || '') + (detail ? ': ' + detail : '');
    cAct.appendChild(act);

    const name = attrs.name || (ev.actor && ev.actor.id ? ev.actor.id.slice(0, 12) : '');
    const cName = cell('nm', name);
    cName.title = name;
    const image = attrs.image || '';
    const cImg = cell('i', image);
    cImg.title = image;
    tr.append(cExp, cTime, cNode, cType, cAct, cName, cImg);
    return tr;
  }

  function toggle(tr, b) {
    const open = b.getAttribute('aria-expanded') === 'true';
    const next = tr.nextElementSibling;
    if (open) {
      if (next && next.classList.contains('detail')) next.remove();
      b.setAttribute('aria-expanded', 'false');
      b.textContent = '▸';
      return;
    }
    const f = frames.get(tr);
    const d = el('div', 'detail');
    d.setAttribute('role', 'row');
    const c = cell('');
    const pre = el('pre', '', '// seq ' + f.seq + ' · ' + f.subject + '\n' + JSON.stringify(f.event, null, 2));
    pre.tabIndex = 0;
    c.appendChild(pre);
    d.appendChild(c);
    tr.after(d);
    b.setAttribute('aria-expanded', 'true');
    b.textContent = '▾';
  }

  function updateEmpty() {
    $('count').textContent = S.rows + (S.trimmed ? ' (newest ' + CAP + ')' : '');
    $('seq').textContent = S.lastSeq ? 'last #' + S.lastSeq : '';
    const empty = $('empty');
    empty.hidden = S.rows > 0;
    if (S.rows === 0) {
      empty.textContent = $('conn').dataset.state === 'live'
        ? 'No events of the last ' + S.since + ' match these filters. New ones appear here as they happen.'
        : 'Waiting for events…';
    }
  }

  function clearList() {
    $('rows').textContent = '';
    S.rows = 0;
    S.trimmed = false;
    S.queue = [];
    S.pending = [];
    updateEmpty();
  }

  // ---- pause ---------------------------------------------------------------

  function updatePause() {
    const b = $('pause');
    b.setAttribute('aria-pressed', String(S.paused));
    b.textContent = S.paused ? 'Resume' + (S.pending.length ? ' (' + S.pending.length + ' new)' : '') : 'Pause';
  }

  function togglePause() {
    S.paused = !S.paused;
    if (!S.paused) {
      S.queue.push(...S.pending);
      S.pending = [];
    }
    updatePause();
    flush();
  }

  // ---- the chart -----------------------------------------------------------

  const buckets = new Map(); // unix second -> Map(type -> count)
  function chartAdd(ev) {
    const now = Math.floor(Date.now() / 1000);
    let sec = Math.floor(ev.time_nano / 1e9);
    if (sec > now) sec = now;
    if (sec <= now - CHART_SECONDS) return;
    let b = buckets.get(sec);
    if (!b) buckets.set(sec, (b = new Map()));
    b.set(ev.type, (b.get(ev.type) || 0) + 1);
  }

  function drawChart() {
    const c = $('chart');
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const now = Math.floor(Date.now() / 1000);
    for (const k of buckets.keys()) if (k <= now - CHART_SECONDS) buckets.delete(k);
    const types = new Set();
    let max = 0;
    for (const b of buckets.values()) {
      let sum = 0;
      for (const [t, n] of b) { types.add(t); sum += n; }
      if (sum > max) max = sum;
    }
    const top = niceMax(max);
    const left = 34;
    const bottom = 16;
    const plotW = w - left - 4;
    const plotH = h - bottom - 6;
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#5c6b7a';
    g.strokeStyle = '#e8edf2';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (const frac of [0, 0.5, 1]) {
      const y = Math.round(6 + plotH * (1 - frac)) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(w - 4, y);
      g.stroke();
      g.fillText(fmtNum(top * frac), left - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'alphabetic';
    for (let m = 5; m >= 0; m--) {
      if (plotW < 420 && m % 2 === 1) continue; // phone width: every other label
      const x = left + plotW * (1 - (m * 60) / CHART_SECONDS);
      g.fillText(m === 0 ? 'now' : '−' + m + ' min', Math.min(Math.max(x, left + 14), w - 16), h - 3);
    }
    const order = [...types].sort();
    const bw = plotW / CHART_SECONDS;
    for (let i = 0; i < CHART_SECONDS; i++) {
      const b = buckets.get(now - CHART_SECONDS + 1 + i);
      if (!b) continue;
      let y = 6 + plotH;
      const x = left + i * bw;
      for (const t of order) {
        const n = b.get(t);
        if (!n) continue;
        const bh = (n / top) * plotH;
        g.fillStyle = typeColor(t);
        g.fillRect(x, y - bh, Math.max(bw - 0.5, 1), bh);
        y -= bh;
      }
    }
    const legend = $('legend');
    const key = order.join(',');
    if (legend.dataset.key !== key) {
      legend.dataset.key = key;
      legend.textContent = '';
      for (const t of order) {
        const li = el('li');
        const sw = el('span', 'sw');
        sw.style.background = typeColor(t);
        li.append(sw, document.createTextNode(t));
        legend.appendChild(li);
      }
    }
  }

  function niceMax(v) {
    if (v <= 1) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- formatting ------------------------------------------------------------

  const pad = (n, w) => String(n).padStart(w || 2, '0');
  function fmtClock(d, ms) {
    if (isNaN(d)) return '';
    const s = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    return ms ? s + '.' + pad(d.getMilliseconds(), 3) : s;
  }
  function fmtDateTime(d) {
    if (isNaN(d)) return 'an unknown time';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + fmtClock(d);
  }
  function fmtNum(n) {
    return n >= 1000 ? (n / 1000).toFixed(n % 1000 ? 1 : 0) + 'k' : String(Math.round(n * 10) / 10);
  }

  // ---- wiring ----------------------------------------------------------------

  function restart() {
    S.gen++;
    if (S.ws) {
      try { S.ws.close(1000); } catch (_) { /* closed */ }
      S.ws = null;
    }
    clearTimeout(S.retryTimer);
    S.retryTimer = null;
    S.lastSeq = 0;
    S.nextSeq = 0;
    S.epoch = '';
    S.attempt = 0;
    S.nodes.clear();
    $('nodes').textContent = '';
    $('notices').textContent = '';
    buckets.clear();
    resetStats();
    clearList();
    connect();
  }

  function init() {
    filtersFromURL();
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      const f = filtersFromForm();
      const q = pageQuery(f, S.since);
      if (location.search !== (q.startsWith('?') ? q : '')) history.pushState(null, '', q);
      filtersFromURL();
      restart();
    });
    $('clear').addEventListener('click', () => {
      for (const k of KEYS) $('f-' + k).value = '';
      $('filters').requestSubmit();
    });
    window.addEventListener('popstate', () => {
      filtersFromURL();
      restart();
    });
    $('pause').addEventListener('click', togglePause);
    $('reconnect').addEventListener('click', () => {
      S.attempt = 0;
      connect();
    });
    const dlg = $('token-dialog');
    $('token-form').addEventListener('submit', () => {
      const v = $('token-input').value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      S.attempt = 0;
      connect();
    });
    const cancel = () => {
      if (dlg.open) dlg.close();
      fail('A token is needed to read events from this gateway. Use “Reconnect now” to enter one.');
    };
    $('token-cancel').addEventListener('click', cancel);
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      cancel();
    });
    setInterval(() => {
      drawChart();
      showRetry();
    }, 1000);
    window.addEventListener('resize', drawChart);
    updateEmpty();
    drawChart();
    connect();
  }

  // For tests and the curious: read-only views of the page's state.
  window.dockcast = {
    stats: () => Object.assign({ lastSeq: S.lastSeq, nextSeq: S.nextSeq, epoch: S.epoch, rows: S.rows, state: $('conn').dataset.state, pending: S.pending.length }, S.stats),
    rows: () => [...document.querySelectorAll('#rows .ev')].map((tr) => {
      const f = frames.get(tr);
      return { seq: f.seq, id: f.event.id, type: f.event.type, action: f.event.action, detail: f.event.action_detail, name: (f.event.actor.attributes || {}).name || '', labels: f.event.actor.attributes || {} };
    }),
    resetLag: () => { S.stats.maxLagMs = 0; S.stats.maxRecvLagMs = 0; },
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
