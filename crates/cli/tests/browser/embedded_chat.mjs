// Embedded UI: chat with a streamed reply, reload on the device token, status, pairing, phone.
const h = await import(process.env.CLAWGATE_BROWSER_JS);
const url = process.env.CLAWGATE_URL;
const token = process.env.CLAWGATE_TOKEN;
const reply = process.env.CLAWGATE_REPLY;
const sender = process.env.CLAWGATE_SENDER;
const device = process.env.CLAWGATE_DEVICE;

const browser = await h.launch();
const page = await browser.newPage();
await page.setViewport({ width: 1100, height: 760 });
const consoleLog = h.recordConsole(page);
await page.evaluateOnNewDocument(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
});
const csp = async () => page.evaluate(() => window.__csp);
const violations = [];

const connected = () => h.waitIn(page, 'the page to connect',
  () => document.querySelector('#conn')?.dataset.state === 'connected');
const authMethod = async () => {
  await page.click('nav button[data-view="status"]');
  const text = await h.waitIn(page, 'the status view',
    () => { const t = document.querySelector('#health')?.innerText || ''; return t.includes('signed in with') && t; });
  await page.click('nav button[data-view="chat"]');
  return text.split('signed in with').pop().trim().split(/\s+/)[0];
};

await page.goto(`${url}#token=${encodeURIComponent(token)}`, { waitUntil: 'load' });
await connected();
const addressAfterLoad = page.url();
const tokenInPage = await page.evaluate((t) => document.documentElement.outerHTML.includes(t)
  || document.body.innerText.includes(t), token);
const tokenInStorage = await page.evaluate((t) => JSON.stringify(localStorage).includes(t)
  || JSON.stringify(sessionStorage).includes(t), token);
const firstAuthMethod = await authMethod();

// Keyboard only: focus the composer, type, Enter.
await page.focus('#message');
await page.keyboard.type('hello from the browser');
await page.keyboard.press('Enter');
const partial = await h.waitIn(page, 'a partly streamed reply', () => {
  const t = document.querySelector('#messages li.assistant.streaming .text');
  return t && t.textContent.length > 0 && t.textContent;
});
const final = await h.waitIn(page, 'the final reply', () => {
  const li = [...document.querySelectorAll('#messages li.assistant')].pop();
  return li && li.dataset.state === 'final' && li.querySelector('.text').textContent;
});
await h.waitIn(page, 'the Stop button to be disabled again', () => document.querySelector('#abort').disabled);
await h.screenshot(page, 'embedded-chat');
violations.push(...await csp());

// Reload: the fragment is gone; the device token from the first hello-ok signs in.
await page.reload({ waitUntil: 'load' });
await connected();
const reloadAuthMethod = await authMethod();
const historyAfterReload = await h.waitIn(page, 'the history after the reload', (want) => {
  const items = [...document.querySelectorAll('#messages li.msg .text')].map((e) => e.textContent);
  return items.includes(want) && items;
}, reply);
violations.push(...await csp());

// Status.
await page.click('nav button[data-view="status"]');
const statusText = await h.waitIn(page, 'status with channels and clients', () => {
  const s = document.querySelector('#health').innerText;
  const c = document.querySelector('#channels').innerText;
  const l = document.querySelector('#clients').innerText;
  return s.includes('healthy') && c.includes('Telegram') && l.includes('openclaw-control-ui') && [s, c, l];
});
await h.screenshot(page, 'embedded-status');

// Pairing: the stranger's request is listed; approve it with the keyboard.
await page.click('nav button[data-view="pairing"]');
await h.waitIn(page, 'the pending Telegram sender', (id) =>
  document.querySelector(`#sender-requests li[data-sender="${id}"]`), sender);
await h.screenshot(page, 'embedded-pairing');
await page.focus(`#sender-requests li[data-sender="${sender}"] button`);
const focused = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
await page.keyboard.press('Enter');
await h.waitIn(page, 'the request to be gone', (id) =>
  !document.querySelector(`#sender-requests li[data-sender="${id}"]`)
  && document.querySelector('#sender-requests').innerText.includes('No channel senders waiting'), sender);
if (!/^Approve /.test(focused || '')) throw new Error(`focused button was ${focused}`);
// The device waiting behind the proxy: approve it too.
await h.waitIn(page, 'the pending device', (id) =>
  document.querySelector(`#device-requests li[data-device="${id}"]`), device);
await page.click(`#device-requests li[data-device="${device}"] button`);
await h.waitIn(page, 'the device to move to the paired list', (id) =>
  !document.querySelector(`#device-requests li[data-device="${id}"]`)
  && document.querySelector(`#devices li[data-device="${id}"]`), device);

// Phone width.
await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
await page.click('nav button[data-view="chat"]');
await h.waitIn(page, 'the chat at phone width', (want) =>
  [...document.querySelectorAll('#messages li.msg .text')].some((e) => e.textContent === want), reply);
const phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
await h.screenshot(page, 'embedded-phone');
violations.push(...await csp());

// Logs: recent lines arrive; the token is not among them.
await page.setViewport({ width: 1100, height: 760 });
await page.click('nav button[data-view="logs"]');
const logText = await h.waitIn(page, 'log lines', () => {
  const t = document.querySelector('#logs').textContent;
  return t.includes('pairing approved') && t;
});
const tokenInLogs = logText.includes(token);

// A new session, a slow reply stopped with the Stop button, then back to the main session.
await page.click('nav button[data-view="chat"]');
await page.click('#new-session');
const newKey = await h.waitIn(page, 'the new session', () => {
  const v = document.querySelector('#session').value;
  return v && v !== 'agent:main:main' && document.querySelector('#messages').innerText.includes('No messages yet') && v;
});
await page.focus('#message');
await page.keyboard.type('please take your time');
await page.keyboard.press('Enter');
await h.waitIn(page, 'the slow reply to start', () =>
  document.querySelector('#messages li.assistant.streaming .text')?.textContent.length > 0);
await page.click('#abort');
const aborted = await h.waitIn(page, 'the run to stop', () => {
  const li = [...document.querySelectorAll('#messages li.assistant')].pop();
  return li && li.dataset.state === 'aborted' && li.innerText;
});
await page.select('#session', 'agent:main:main');
const mainAgain = await h.waitIn(page, 'the main session history', (want) => {
  const items = [...document.querySelectorAll('#messages li.msg .text')].map((e) => e.textContent);
  return items.includes(want) && items;
}, reply);
violations.push(...await csp());

await browser.close();
h.done({
  addressAfterLoad, tokenInPage, tokenInStorage, firstAuthMethod, partial, final,
  reloadAuthMethod, historyAfterReload,
  status: statusText[0], channels: statusText[1], clients: statusText[2],
  phoneOverflow, tokenInLogs, logHasLines: logText.length > 0, newKey, aborted, mainAgain, csp: violations, console: consoleLog,
});
