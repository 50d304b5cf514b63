// CSWSH: a page from another origin must not get a WebSocket to the gateway. Plus the UI's
// error states: no token, then a wrong token.
const h = await import(process.env.CLAWGATE_BROWSER_JS);
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
const csp = await page.evaluate(() => window.__csp);
await browser.close();
h.done({ evil: evilResult[0], evilClose: evilResult[1], sameOrigin, noTokenPrompt, wrongTokenError, csp, console: consoleLog });
