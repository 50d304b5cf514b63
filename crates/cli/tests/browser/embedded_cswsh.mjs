// CSWSH: a page from another origin must not get a WebSocket to the gateway. Plus the UI's
// error states: no token, a wrong token, and a device removed while connected (the socket is
// closed, the UI reconnects, its device token is refused, it asks for the token again).
import { execFileSync } from 'node:child_process';
const h = await import(process.env.CLAWGATE_BROWSER_JS);
const token = process.env.CLAWGATE_TOKEN;
const cli = (...args) => JSON.parse(execFileSync(process.env.CLAWGATE_BIN, ['gateway', 'call', ...args], {
  env: { ...process.env, CLAWGATE_GATEWAY_TOKEN: '' }, encoding: 'utf8', timeout: 20000,
}));
const url = process.env.CLAWGATE_URL;
const evilUrl = process.env.CLAWGATE_EVIL_URL;

const browser = await h.launch();

// The attacker's page (its console is expected to show the failed socket).
const evil = await browser.newPage();
await evil.goto(evilUrl, { waitUntil: 'load' });
const evilResult = await h.waitIn(evil, 'the foreign socket to settle', () => {
  const r = document.getElementById('r');
  return r.textContent !== 'pending' && r.dataset.close && [r.textContent, r.dataset.close];
});

// The gateway's own page.
const page = await browser.newPage();
const consoleLog = h.recordConsole(page);
await page.evaluateOnNewDocument(() => {
  window.__conn = [];
  new MutationObserver(() => {
    const c = document.querySelector('#conn');
    const t = c ? `${c.dataset.state}: ${c.textContent}` : '';
    if (t && window.__conn[window.__conn.length - 1] !== t) window.__conn.push(t);
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
});
await page.goto(url, { waitUntil: 'load' });
const noTokenPrompt = await h.waitIn(page, 'the token prompt', () => {
  const a = document.querySelector('#auth');
  return a && !a.hidden && document.activeElement?.id === 'auth-token' && a.innerText;
});
// The same socket code from the gateway's own origin opens (so the refusal above is the origin).
const sameOrigin = await page.evaluate((u) => new Promise((resolve) => {
  const ws = new WebSocket(u.replace(/^http/, 'ws'));
  ws.onopen = () => { resolve('open'); ws.close(); };
  ws.onerror = () => resolve('error');
}), url);

await page.type('#auth-token', 'definitely-not-the-token');
await page.keyboard.press('Enter');
const wrongTokenError = await h.waitIn(page, 'the wrong-token message', () => {
  const e = document.querySelector('#auth-error');
  return e && !e.hidden && e.textContent;
});
const inputCleared = await page.evaluate(() => document.querySelector('#auth-token').value === '');
if (!inputCleared) throw new Error('the token input kept the refused token');

// The right token connects (focus is on the token field again after the refusal).
await page.type('#auth-token', token);
await page.keyboard.press('Enter');
await h.waitIn(page, 'the page to connect', () => document.querySelector('#conn').dataset.state === 'connected');
// Remove this browser's device from the gateway host while it is connected.
const paired = cli('device.pair.list').paired.filter((d) => d.clientId === 'openclaw-control-ui');
if (paired.length !== 1) throw new Error(`expected one paired UI device, got ${JSON.stringify(paired)}`);
cli('device.pair.remove', '--params', JSON.stringify({ deviceId: paired[0].deviceId }));
const removedMessage = await h.waitIn(page, 'the token prompt after the device removal', () => {
  const e = document.querySelector('#auth-error');
  return !document.querySelector('#auth').hidden && e && !e.hidden && e.textContent;
});
const connHistory = await page.evaluate(() => window.__conn);
// Pasting the token again pairs the browser anew.
await page.type('#auth-token', token);
await page.keyboard.press('Enter');
await h.waitIn(page, 'the page to connect again', () => document.querySelector('#conn').dataset.state === 'connected');
const pairedAgain = cli('device.pair.list').paired.filter((d) => d.clientId === 'openclaw-control-ui').length;
const csp = await page.evaluate(() => window.__csp);

// A browser without WebCrypto Ed25519 (simulated: no secure context) falls back to the token
// alone; clawgate grants a device-less browser nothing, and the page says why.
const plain = await browser.newPage();
const plainConsole = h.recordConsole(plain);
await plain.evaluateOnNewDocument(() => {
  Object.defineProperty(window, 'isSecureContext', { value: false });
});
await plain.goto(`${url}#token=${encodeURIComponent(token)}`, { waitUntil: 'load' });
const noDeviceError = await h.waitIn(plain, 'the no-device explanation', () => {
  const e = document.querySelector('#auth-error');
  return e && !e.hidden && e.textContent;
});
await browser.close();
h.done({ evil: evilResult[0], evilClose: evilResult[1], sameOrigin, noTokenPrompt, wrongTokenError, removedMessage, connHistory, pairedAgain, noDeviceError, csp, console: consoleLog.concat(plainConsole) });
