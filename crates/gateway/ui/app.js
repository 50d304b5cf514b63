// clawgate's embedded UI: plain ES module, no build step, no dependencies.
// Talks to the gateway over its WebSocket protocol (v4) the way OpenClaw's Control UI does:
// client id `openclaw-control-ui`, mode `webchat`, an Ed25519 device identity (WebCrypto),
// the shared token from the URL fragment on first use and the device token afterwards.
// The token lives in memory only; it is never logged and never written into the page text.

const PROTOCOL = 4;
const CLIENT_ID = 'openclaw-control-ui';
const CLIENT_MODE = 'webchat';
const SCOPES = ['operator.admin', 'operator.read', 'operator.write', 'operator.approvals', 'operator.pairing'];
const REQUEST_TIMEOUT_MS = 30000;
const LS = window.localStorage;
const KEY_PREFIX = 'clawgate.ui.';

const $ = (sel) => document.querySelector(sel);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

// ---------------------------------------------------------------------------------------
// Small helpers

function b64url(bytes) {
  let s = '';
  const a = new Uint8Array(bytes);
  for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
function lsGet(k) { try { return LS.getItem(KEY_PREFIX + k); } catch { return null; } }
function lsSet(k, v) { try { if (v === null) LS.removeItem(KEY_PREFIX + k); else LS.setItem(KEY_PREFIX + k, v); } catch { /* storage full or disabled */ } }
function fmtTime(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '';
  return new Date(ms).toLocaleString();
}
function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}
function showError(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Device identity: an Ed25519 key pair made with WebCrypto, the private key not extractable,
// kept in IndexedDB so the gateway recognises this browser next time.

function idbOpen() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open('clawgate-ui', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('kv');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
async function idbGet(key) {
  const db = await idbOpen();
  return new Promise((resolve, reject) => {
    const r = db.transaction('kv').objectStore('kv').get(key);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
async function idbPut(key, value) {
  const db = await idbOpen();
  return new Promise((resolve, reject) => {
    const tx = db.transaction('kv', 'readwrite');
    tx.objectStore('kv').put(value, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
}

async function makeIdentity(privateKey, publicKey) {
  const raw = await crypto.subtle.exportKey('raw', publicKey);
  const id = hex(await crypto.subtle.digest('SHA-256', raw));
  return { id, publicKey: b64url(raw), privateKey };
}

/** The device identity, or null when this browser has no WebCrypto Ed25519. */
async function loadIdentity() {
  if (!window.isSecureContext || !crypto.subtle) return null;
  try {
    const stored = await idbGet('device');
    if (stored && stored.privateKey && stored.publicKey) {
      return await makeIdentity(stored.privateKey, stored.publicKey);
    }
  } catch { /* no IndexedDB: fall through to a key for this page only */ }
  let pair;
  try {
    pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  } catch {
    return null;
  }
  try { await idbPut('device', { privateKey: pair.privateKey, publicKey: pair.publicKey }); } catch { /* kept for this page */ }
  return makeIdentity(pair.privateKey, pair.publicKey);
}

async function sign(identity, text) {
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, new TextEncoder().encode(text));
  return b64url(sig);
}

// ---------------------------------------------------------------------------------------
// Connection

const state = {
  token: null,              // shared token from the fragment or the form (memory only)
  identity: null,
  ws: null,
  hello: null,
  helloAt: 0,
  connected: false,
  stopped: false,           // true after an auth failure: waits for the user
  attempt: 0,
  reconnectTimer: null,
  nextId: 1,
  pending: new Map(),
  session: lsGet('session') || '',
  activeRun: null,
  runs: new Map(),
  view: 'chat',
  logCursor: null,
  logLines: [],
  timers: {},
};

function deviceTokenKey() {
  return state.identity ? `deviceToken.${state.identity.id}` : null;
}
function storedDeviceToken() {
  const k = deviceTokenKey();
  return k ? lsGet(k) : null;
}
function storeDeviceToken(t) {
  const k = deviceTokenKey();
  if (k) lsSet(k, t);
}

function setConn(kind, text) {
  const c = $('#conn');
  c.dataset.state = kind;
  c.textContent = text;
}

function needToken(message) {
  state.stopped = true;
  $('#auth').hidden = false;
  showError($('#auth-error'), message);
  setConn('error', 'Not connected');
  $('#auth-token').focus();
}

function connect() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
  const deviceToken = storedDeviceToken();
  if (!state.token && !deviceToken) {
    needToken('');
    return;
  }
  state.stopped = false;
  setConn('connecting', state.attempt ? `Reconnecting (attempt ${state.attempt + 1})…` : 'Connecting…');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let ws;
  try {
    ws = new WebSocket(`${proto}//${location.host}/`);
  } catch (e) {
    scheduleReconnect(`Cannot open the connection: ${e.message}`);
    return;
  }
  state.ws = ws;
  let challenged = false;
  let failed = null;
  ws.onmessage = async (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    if (!challenged && frame.type === 'event' && frame.event === 'connect.challenge') {
      challenged = true;
      try {
        const params = await connectParams(frame.payload || {});
        const res = await request('connect', params, ws);
        onHello(res);
      } catch (e) {
        failed = e;
        onConnectError(e);
        try { ws.close(); } catch { /* already closed */ }
      }
      return;
    }
    onFrame(frame);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    const was = state.connected;
    state.connected = false;
    state.ws = null;
    for (const [, p] of state.pending) p.reject(new RpcError('UNAVAILABLE', 'connection closed'));
    state.pending.clear();
    if (state.stopped || failed) return; // a failed connect already chose what comes next
    const why = was ? 'Disconnected' : 'Cannot reach the gateway';
    scheduleReconnect(`${why}${ev.code && ev.code !== 1006 ? ` (code ${ev.code})` : ''}`);
  };
}

function scheduleReconnect(text, delayMs) {
  if (state.stopped) return;
  const base = delayMs ?? Math.min(30000, 1000 * 2 ** Math.min(state.attempt, 5));
  const wait = Math.round(base * (0.8 + Math.random() * 0.4));
  state.attempt += 1;
  setConn('closed', `${text}; retrying in ${Math.ceil(wait / 1000)} s`);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, wait);
}

async function connectParams(challenge) {
  const deviceToken = storedDeviceToken();
  const auth = {};
  if (state.token) auth.token = state.token;
  else if (deviceToken) auth.deviceToken = deviceToken;
  const platform = navigator.platform || 'web';
  const params = {
    minProtocol: PROTOCOL,
    maxProtocol: PROTOCOL,
    client: {
      id: state.identity ? CLIENT_ID : 'webchat',
      version: 'clawgate-ui',
      platform,
      mode: CLIENT_MODE,
      instanceId: instanceId(),
      timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
    },
    role: 'operator',
    scopes: SCOPES,
    caps: [],
    auth,
    userAgent: navigator.userAgent,
    locale: navigator.language,
  };
  if (state.identity) {
    const nonce = String(challenge.nonce || '');
    const signedAt = challenge.ts;
    if (!nonce || !Number.isSafeInteger(signedAt) || signedAt < 0) {
      throw Object.assign(new Error('the gateway sent an invalid connect challenge'), { fatal: false });
    }
    const signedToken = auth.token || auth.deviceToken || '';
    const lc = (s) => String(s || '').trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
    const payload = ['v3', state.identity.id, params.client.id, params.client.mode, params.role,
      params.scopes.join(','), String(signedAt), signedToken, nonce, lc(platform), ''].join('|');
    params.device = {
      id: state.identity.id,
      publicKey: state.identity.publicKey,
      signature: await sign(state.identity, payload),
      signedAt,
      nonce,
    };
  }
  return params;
}

function instanceId() {
  let id = sessionStorage.getItem(KEY_PREFIX + 'instance');
  if (!id) { id = uuid(); sessionStorage.setItem(KEY_PREFIX + 'instance', id); }
  return id;
}

class RpcError extends Error {
  constructor(code, message, details, retryAfterMs) {
    super(message || code || 'request failed');
    this.code = code;
    this.details = details || {};
    this.retryAfterMs = retryAfterMs;
  }
}

function request(method, params, ws = state.ws) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      reject(new RpcError('UNAVAILABLE', 'not connected'));
      return;
    }
    const id = `ui-${state.nextId++}`;
    const timer = setTimeout(() => {
      state.pending.delete(id);
      reject(new RpcError('TIMEOUT', `${method} timed out`));
    }, REQUEST_TIMEOUT_MS);
    state.pending.set(id, {
      resolve: (v) => { clearTimeout(timer); resolve(v); },
      reject: (e) => { clearTimeout(timer); reject(e); },
    });
    ws.send(JSON.stringify({ type: 'req', id, method, params: params ?? {} }));
  });
}

/** A request on the live connection; failures show in `errNode` when given. */
async function rpc(method, params, errNode) {
  try {
    const r = await request(method, params);
    if (errNode) showError(errNode, '');
    return r;
  } catch (e) {
    if (errNode) showError(errNode, `${method}: ${e.message}`);
    throw e;
  }
}

function onFrame(frame) {
  if (frame.type === 'res') {
    const p = state.pending.get(frame.id);
    if (!p) return;
    state.pending.delete(frame.id);
    if (frame.ok) p.resolve(frame.payload);
    else {
      const e = frame.error || {};
      p.reject(new RpcError(e.code, e.message, e.details, e.retryAfterMs));
    }
    return;
  }
  if (frame.type === 'event') onEvent(frame.event, frame.payload || {});
}

function onConnectError(e) {
  const code = (e.details && e.details.code) || '';
  if (code === 'AUTH_DEVICE_TOKEN_MISMATCH') {
    // The stored device token is no longer valid (device removed or token rotated).
    storeDeviceToken(null);
    if (state.token) { scheduleReconnect('Device token expired', 200); return; }
    e.fatal = true;
    needToken('This browser\'s device token is no longer accepted. Paste the gateway token to pair it again.');
    return;
  }
  if (code === 'AUTH_RATE_LIMITED') {
    scheduleReconnect('Too many failed attempts', e.retryAfterMs || 30000);
    return;
  }
  if (code === 'PAIRING_REQUIRED' || e.code === 'NOT_PAIRED') {
    const rid = e.details && e.details.requestId ? ` (request ${e.details.requestId})` : '';
    scheduleReconnect(`Waiting for this browser to be approved${rid}`, 5000);
    return;
  }
  if (code.startsWith('AUTH_') || /unauthorized/i.test(e.message)) {
    e.fatal = true;
    state.token = null;
    needToken('The gateway refused the token (wrong or changed). Paste the current gateway token.');
    return;
  }
  if (code.startsWith('DEVICE_AUTH_')) {
    scheduleReconnect(`Device check failed: ${e.message}`);
    return;
  }
  scheduleReconnect(`Connect failed: ${e.message}`);
}

function onHello(hello) {
  state.hello = hello;
  state.helloAt = Date.now();
  state.connected = true;
  state.attempt = 0;
  const auth = hello.auth || {};
  if (auth.deviceToken) storeDeviceToken(auth.deviceToken);
  // Once the device has its own token the shared token is not needed any more.
  if (storedDeviceToken()) state.token = null;
  const scopes = auth.scopes || [];
  if (!scopes.includes('operator.read')) {
    state.stopped = true;
    needToken(state.identity
      ? 'Connected, but the gateway granted no read access to this browser.'
      : 'This browser cannot create a device identity (WebCrypto Ed25519 in a secure context: HTTPS or localhost), and the gateway does not grant token-only browser access.');
    try { state.ws.close(); } catch { /* closed */ }
    return;
  }
  $('#auth').hidden = true;
  showError($('#auth-error'), '');
  const server = hello.server || {};
  setConn('connected', `Connected${server.version ? ` · clawgate ${server.version}` : ''}`);
  const defaults = (hello.snapshot && hello.snapshot.sessionDefaults) || {};
  if (!state.session) state.session = defaults.mainSessionKey || 'agent:main:main';
  rpc('sessions.subscribe', {}).catch(() => {});
  loadSessions().then(loadHistory).catch(() => {});
  refreshPairingCount();
  refreshView();
}

// ---------------------------------------------------------------------------------------
// Events

function onEvent(name, p) {
  switch (name) {
    case 'chat': onChat(p); break;
    case 'sessions.changed': debounce('sessions', loadSessions, 400); break;
    case 'device.pair.requested':
    case 'device.pair.resolved':
      refreshPairingCount();
      if (state.view === 'pairing') loadPairing();
      break;
    case 'presence':
      if (state.view === 'status') debounce('status', loadStatus, 300);
      break;
    default: break;
  }
}

function debounce(key, fn, ms) {
  clearTimeout(state.timers[`d-${key}`]);
  state.timers[`d-${key}`] = setTimeout(() => { fn().catch(() => {}); }, ms);
}

// ---------------------------------------------------------------------------------------
// Chat

function textOf(msg) {
  if (!msg) return '';
  const c = msg.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    return c.filter((b) => b && b.type === 'text' && typeof b.text === 'string').map((b) => b.text).join('');
  }
  return typeof msg.text === 'string' ? msg.text : '';
}

function messageItem(role, text) {
  const kind = role === 'user' ? 'user' : role === 'assistant' ? 'assistant' : 'tool';
  const li = el('li', `msg ${kind}`);
  li.append(el('span', 'who', role === 'user' ? 'You' : role === 'assistant' ? 'Assistant' : role));
  li.append(el('span', 'text', text));
  return li;
}

function scrollDown() {
  const list = $('#messages');
  list.scrollTop = list.scrollHeight;
}

function renderHistory(messages) {
  const list = $('#messages');
  list.replaceChildren();
  state.runs.clear();
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    if (m.role === 'toolResult') {
      list.append(messageItem('tool', `tool result${m.toolName ? ` (${m.toolName})` : ''}`));
      continue;
    }
    let text = textOf(m);
    if (!text && m.role === 'assistant' && Array.isArray(m.content)) {
      const calls = m.content.filter((b) => b && b.type === 'toolCall').map((b) => b.name);
      if (calls.length) { list.append(messageItem('tool', `calls ${calls.join(', ')}`)); continue; }
    }
    if (!text) continue;
    list.append(messageItem(m.role === 'user' ? 'user' : m.role === 'assistant' ? 'assistant' : String(m.role || 'note'), text));
  }
  if (!list.children.length) {
    const li = el('li', 'empty', 'No messages yet. Say hello below.');
    li.dataset.placeholder = '1';
    list.append(li);
  }
  scrollDown();
}

function dropPlaceholder() {
  const p = $('#messages li[data-placeholder]');
  if (p) p.remove();
}

async function loadHistory() {
  if (!state.connected || !state.session) return;
  const key = state.session;
  const r = await rpc('chat.history', { sessionKey: key, limit: 200 }, $('#chat-error'));
  if (key !== state.session) return;
  renderHistory(Array.isArray(r.messages) ? r.messages : []);
}

function sessionLabel(row) {
  const name = row.label || row.displayName || row.key;
  return name === row.key ? row.key : `${name} — ${row.key}`;
}

async function loadSessions() {
  const r = await rpc('sessions.list', { limit: 200 }, $('#chat-error'));
  const sel = $('#session');
  const rows = Array.isArray(r.sessions) ? r.sessions : [];
  const keys = new Set(rows.map((s) => s.key));
  sel.replaceChildren();
  if (state.session && !keys.has(state.session)) {
    const o = el('option', null, state.session);
    o.value = state.session;
    sel.append(o);
  }
  for (const row of rows) {
    const o = el('option', null, sessionLabel(row));
    o.value = row.key;
    sel.append(o);
  }
  sel.value = state.session;
}

function selectSession(key) {
  state.session = key;
  lsSet('session', key);
  state.activeRun = null;
  $('#abort').disabled = true;
  $('#messages').replaceChildren();
  loadHistory().catch(() => {});
}

function runItem(runId) {
  let r = state.runs.get(runId);
  if (!r) {
    dropPlaceholder();
    const li = messageItem('assistant', '');
    li.classList.add('streaming');
    li.dataset.run = runId;
    $('#messages').append(li);
    r = { li, text: '' };
    state.runs.set(runId, r);
  }
  return r;
}

function onChat(p) {
  if (!p || p.sessionKey !== state.session || !p.runId) return;
  const st = p.state;
  if (st === 'status') return;
  const r = runItem(p.runId);
  const textEl = r.li.querySelector('.text');
  if (st === 'delta') {
    const full = textOf(p.message);
    if (full) r.text = full;
    else if (p.replace) r.text = String(p.deltaText || '');
    else r.text += String(p.deltaText || '');
    textEl.textContent = r.text;
  } else if (st === 'final' || st === 'aborted' || st === 'error') {
    const full = textOf(p.message);
    if (full) textEl.textContent = full;
    r.li.classList.remove('streaming');
    r.li.dataset.state = st;
    if (st === 'error') {
      r.li.classList.add('failed');
      r.li.append(el('span', 'note', p.errorMessage || 'The run failed.'));
    } else if (st === 'aborted') {
      r.li.append(el('span', 'note', 'Stopped.'));
    } else if (!full && !r.text) {
      r.li.remove();
    }
    if (state.activeRun === p.runId) {
      state.activeRun = null;
      $('#abort').disabled = true;
    }
  }
  scrollDown();
}

async function send() {
  const box = $('#message');
  const text = box.value;
  if (!text.trim()) return;
  if (!state.connected) {
    showError($('#chat-error'), 'Not connected; the message was not sent.');
    return;
  }
  const runId = uuid();
  dropPlaceholder();
  $('#messages').append(messageItem('user', text));
  scrollDown();
  box.value = '';
  state.activeRun = runId;
  $('#abort').disabled = false;
  try {
    await rpc('chat.send', { sessionKey: state.session, message: text, deliver: false, idempotencyKey: runId }, $('#chat-error'));
  } catch {
    if (state.activeRun === runId) { state.activeRun = null; $('#abort').disabled = true; }
  }
}

async function abort() {
  if (!state.activeRun) return;
  try {
    await rpc('chat.abort', { sessionKey: state.session, runId: state.activeRun }, $('#chat-error'));
  } catch { /* shown */ }
}

async function newSession() {
  try {
    const r = await rpc('sessions.create', {}, $('#chat-error'));
    if (r && r.key) {
      selectSession(r.key);
      await loadSessions();
      $('#message').focus();
    }
  } catch { /* shown */ }
}

// ---------------------------------------------------------------------------------------
// Status

function kvRow(dl, k, v) {
  dl.append(el('dt', null, k), el('dd', null, v));
}

async function loadStatus() {
  const [health, channels, presence] = await Promise.all([
    rpc('health', {}).catch((e) => ({ error: e.message })),
    rpc('channels.status', {}).catch((e) => ({ error: e.message })),
    rpc('system-presence', {}).catch((e) => ({ error: e.message })),
  ]);
  const dl = $('#health');
  dl.replaceChildren();
  const server = (state.hello && state.hello.server) || {};
  const snap = (state.hello && state.hello.snapshot) || {};
  kvRow(dl, 'Gateway', health.error ? `error: ${health.error}` : health.ok === false ? 'not healthy' : 'healthy');
  if (server.version) kvRow(dl, 'Version', server.version);
  if (typeof snap.uptimeMs === 'number') kvRow(dl, 'Uptime', fmtDuration(snap.uptimeMs + Date.now() - state.helloAt));
  if (health.defaultAgentId) kvRow(dl, 'Default agent', health.defaultAgentId);
  if (health.sessions && typeof health.sessions.count === 'number') kvRow(dl, 'Sessions', String(health.sessions.count));
  const auth = (state.hello && state.hello.auth) || {};
  if (auth.method) kvRow(dl, 'This browser signed in with', auth.method);

  const body = $('#channels tbody');
  body.replaceChildren();
  if (channels.error) {
    const tr = el('tr'); const td = el('td', 'error', `channels.status: ${channels.error}`); td.colSpan = 5; tr.append(td); body.append(tr);
  } else {
    const ids = Array.isArray(channels.channelOrder) && channels.channelOrder.length ? channels.channelOrder : Object.keys(channels.channels || {});
    const labels = channels.channelLabels || {};
    for (const id of ids) {
      const acct = ((channels.channelAccounts || {})[id] || [])[0] || (channels.channels || {})[id] || {};
      const yn = (v) => (v === true ? 'yes' : v === false ? 'no' : '–');
      const tr = el('tr');
      tr.append(el('td', null, labels[id] || id), el('td', null, yn(acct.configured)), el('td', null, yn(acct.running)),
        el('td', null, yn(acct.connected)), el('td', null, acct.lastError || ''));
      body.append(tr);
    }
    if (!ids.length) {
      const tr = el('tr'); const td = el('td', 'empty', 'No channels configured.'); td.colSpan = 5; tr.append(td); body.append(tr);
    }
  }

  const ul = $('#clients');
  ul.replaceChildren();
  const list = Array.isArray(presence) ? presence : [];
  if (presence.error) ul.append(el('li', 'error', `system-presence: ${presence.error}`));
  for (const p of list) {
    const li = el('li');
    const main = el('span', 'grow', p.mode === 'gateway' ? `Gateway ${p.host || ''}` : `${p.clientId || p.host || 'client'} (${p.mode || '?'})`);
    const bits = [p.platform, p.version, p.ip, p.onlineSince ? `since ${fmtTime(p.onlineSince)}` : ''].filter(Boolean);
    main.append(el('span', 'meta', bits.join(' · ')));
    li.append(main);
    ul.append(li);
  }
  if (!list.length && !presence.error) ul.append(el('li', 'empty', 'No clients listed.'));
}

// ---------------------------------------------------------------------------------------
// Pairing

async function refreshPairingCount() {
  if (!state.connected) return;
  const [senders, devices] = await Promise.all([
    request('channels.pairing.list', {}).catch(() => ({})),
    request('device.pair.list', {}).catch(() => ({})),
  ]);
  const n = (senders.requests || []).length + (devices.pending || []).length;
  const b = $('#pairing-count');
  b.textContent = String(n);
  b.hidden = n === 0;
  b.setAttribute('aria-label', `${n} waiting`);
}

function actionButton(label, aria, fn) {
  const b = el('button', null, label);
  b.type = 'button';
  b.setAttribute('aria-label', aria);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await fn(); } catch { /* shown */ }
    b.disabled = false;
    await loadPairing().catch(() => {});
    refreshPairingCount();
  });
  return b;
}

async function loadPairing() {
  const err = $('#pairing-error');
  const [senders, devices] = await Promise.all([
    rpc('channels.pairing.list', {}).catch((e) => ({ error: e.message })),
    rpc('device.pair.list', {}).catch((e) => ({ error: e.message })),
  ]);
  showError(err, [senders.error && `channels.pairing.list: ${senders.error}`, devices.error && `device.pair.list: ${devices.error}`].filter(Boolean).join(' · '));

  const su = $('#sender-requests');
  su.replaceChildren();
  for (const r of senders.requests || []) {
    const li = el('li');
    li.dataset.sender = r.senderId;
    const who = r.senderLabel && r.senderLabel !== r.senderId ? `${r.senderLabel} (id ${r.senderId})` : `id ${r.senderId}`;
    const main = el('span', 'grow', `${r.channelLabel || r.channel}: ${who}`);
    main.append(el('span', 'meta', `code ${r.requestId} · asked ${r.createdAt ? new Date(r.createdAt).toLocaleString() : ''}`));
    const target = { channel: r.channel, accountId: r.accountId || 'default', requestId: r.requestId };
    li.append(main,
      actionButton('Approve', `Approve ${r.senderLabel || r.senderId} on ${r.channelLabel || r.channel}`, () => rpc('channels.pairing.approve', { ...target, notify: true }, err)),
      actionButton('Dismiss', `Dismiss ${r.senderLabel || r.senderId} on ${r.channelLabel || r.channel}`, () => rpc('channels.pairing.dismiss', target, err)));
    li.lastChild.className = 'secondary';
    su.append(li);
  }
  if (!su.children.length) su.append(el('li', 'empty', 'No channel senders waiting.'));

  const du = $('#device-requests');
  du.replaceChildren();
  for (const d of devices.pending || []) {
    const li = el('li');
    li.dataset.device = d.deviceId;
    const name = d.displayName || d.clientId || d.deviceId.slice(0, 12);
    const main = el('span', 'grow', name);
    main.append(el('span', 'meta', [d.platform, d.remoteIp, (d.scopes || []).join(', '), d.ts ? fmtTime(d.ts) : ''].filter(Boolean).join(' · ')));
    li.append(main,
      actionButton('Approve', `Approve device ${name}`, () => rpc('device.pair.approve', { requestId: d.requestId }, err)),
      actionButton('Reject', `Reject device ${name}`, () => rpc('device.pair.reject', { requestId: d.requestId }, err)));
    li.lastChild.className = 'secondary';
    du.append(li);
  }
  if (!du.children.length) du.append(el('li', 'empty', 'No devices waiting.'));

  const pu = $('#devices');
  pu.replaceChildren();
  for (const d of devices.paired || []) {
    const li = el('li');
    li.dataset.device = d.deviceId;
    const mine = state.identity && d.deviceId === state.identity.id;
    const main = el('span', 'grow', `${d.displayName || d.clientId || 'device'}${mine ? ' (this browser)' : ''}`);
    main.append(el('span', 'meta', [d.platform, d.approvedVia && `approved ${d.approvedVia}`, `id ${String(d.deviceId).slice(0, 12)}…`].filter(Boolean).join(' · ')));
    li.append(main);
    pu.append(li);
  }
  if (!pu.children.length) pu.append(el('li', 'empty', 'No paired devices.'));
}

// ---------------------------------------------------------------------------------------
// Logs

const MAX_LOG_LINES = 2000;

function prettyLine(line) {
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line);
      const t = o.timestamp || o.time || o.ts || '';
      const lvl = o.level || '';
      const target = o.target || '';
      // clawgate writes OpenClaw's log shape: the message in "0" (further arguments in "1"…).
      const args = [];
      for (let i = 0; typeof o[String(i)] !== 'undefined' && i < 10; i++) {
        const a = o[String(i)];
        args.push(typeof a === 'string' ? a : JSON.stringify(a));
      }
      const msg = (o.fields && o.fields.message) || o.message || o.msg || args.join(' ');
      const rest = o.fields ? Object.entries(o.fields).filter(([k]) => k !== 'message').map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') : '';
      return [t, lvl, target, msg, rest].filter(Boolean).join(' ');
    } catch { /* not JSON */ }
  }
  return line;
}

async function loadLogs() {
  const params = { limit: 300, maxBytes: 200000 };
  if (state.logCursor !== null) params.cursor = state.logCursor;
  const r = await rpc('logs.tail', params);
  if (r.reset || state.logCursor === null) state.logLines = [];
  state.logCursor = typeof r.cursor === 'number' ? r.cursor : null;
  for (const l of r.lines || []) state.logLines.push(prettyLine(String(l)));
  if (state.logLines.length > MAX_LOG_LINES) state.logLines.splice(0, state.logLines.length - MAX_LOG_LINES);
  const pre = $('#logs');
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
  pre.textContent = state.logLines.length ? state.logLines.join('\n') : 'No log lines yet.';
  if (atEnd || (r.lines || []).length) pre.scrollTop = pre.scrollHeight;
}

// ---------------------------------------------------------------------------------------
// Views and wiring

function refreshView() {
  if (!state.connected) return;
  clearInterval(state.timers.poll);
  const v = state.view;
  if (v === 'status') {
    loadStatus().catch(() => {});
    state.timers.poll = setInterval(() => loadStatus().catch(() => {}), 10000);
  } else if (v === 'pairing') {
    loadPairing().catch(() => {});
    state.timers.poll = setInterval(() => loadPairing().catch(() => {}), 5000);
  } else if (v === 'logs') {
    loadLogs().catch(() => {});
    state.timers.poll = setInterval(() => { if ($('#logs-follow').checked) loadLogs().catch(() => {}); }, 2000);
  } else {
    state.timers.poll = setInterval(() => refreshPairingCount(), 30000);
  }
}

function showView(name) {
  state.view = name;
  for (const b of document.querySelectorAll('.tabs button')) {
    if (b.dataset.view === name) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== `view-${name}`;
  refreshView();
}

function wire() {
  for (const b of document.querySelectorAll('.tabs button')) {
    b.addEventListener('click', () => showView(b.dataset.view));
  }
  $('#composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('#message').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('#abort').addEventListener('click', abort);
  $('#new-session').addEventListener('click', newSession);
  $('#refresh-history').addEventListener('click', () => loadHistory().catch(() => {}));
  $('#session').addEventListener('change', (e) => selectSession(e.target.value));
  $('#refresh-status').addEventListener('click', () => loadStatus().catch(() => {}));
  $('#refresh-pairing').addEventListener('click', () => loadPairing().catch(() => {}));
  $('#refresh-logs').addEventListener('click', () => loadLogs().catch(() => {}));
  $('#auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('#auth-token');
    const t = input.value.trim();
    input.value = '';
    if (!t) return;
    state.token = t;
    state.attempt = 0;
    $('#auth').hidden = true;
    connect();
  });
}

/** Takes `#token=…` from the address, keeps it in memory and removes it from the URL. */
function takeFragmentToken() {
  const h = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  if (!h) return;
  const params = new URLSearchParams(h);
  const t = params.get('token');
  if (t) state.token = t;
  history.replaceState(null, '', location.pathname + location.search);
}

async function main() {
  takeFragmentToken();
  wire();
  state.identity = await loadIdentity();
  connect();
}

main();
