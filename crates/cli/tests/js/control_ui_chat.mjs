// OpenClaw's own Control UI against clawgate: load from /#token=…, send a message, watch the
// streamed reply arrive, reload and find the history. Prints what it saw as JSON.
const h = await import(process.env.CLAWGATE_BROWSER_JS);
const url = process.env.UI_URL;
const token = process.env.UI_TOKEN;
const message = process.env.UI_MESSAGE;
const first = process.env.UI_REPLY_FIRST;
const last = process.env.UI_REPLY_LAST;

const browser = await h.launch();
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 800 });
const log = h.recordConsole(page);
// CSP violations are reported as events in the page too (and on the console).
await page.evaluateOnNewDocument(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  });
});

// Text of the page through every shadow root (the UI is built from web components).
const deepText = () => {
  let out = '';
  const walk = (n) => {
    if (n.nodeType === 3) { out += n.textContent; return; }
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) walk(c);
  };
  walk(document.body);
  return out;
};
const findComposer = () => {
  const found = [];
  const walk = (n) => {
    if (n.nodeType !== 1 && n.nodeType !== 11) return;
    if (n.tagName === 'TEXTAREA' && !n.disabled && n.offsetParent !== null) found.push(n);
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) walk(c);
  };
  walk(document.body);
  return found[0] || null;
};

await page.goto(`${url}/#token=${encodeURIComponent(token)}`, { waitUntil: 'domcontentloaded' });
await h.waitIn(page, 'the chat composer', `(${findComposer.toString()})() !== null`, undefined, 30000)
  .catch(async (e) => {
    await h.screenshot(page, 'control-ui-failed');
    throw new Error(`${e.message}\n--- console ---\n${log.join('\n')}`);
  });
const composer = await page.evaluateHandle(`(${findComposer.toString()})()`);
await composer.type(message);
await page.keyboard.press('Enter');

// Streaming: the first words show up before the last ones.
const DT = `(${deepText.toString()})()`;
const has = (t) => `${DT}.includes(${JSON.stringify(t)})`;
await h.waitIn(page, 'the first streamed words', has(first), undefined, 30000);
const partial = await page.evaluate(has(last));
await h.waitIn(page, 'the whole reply', has(last), undefined, 30000);
await h.screenshot(page, 'control-ui');

await page.reload({ waitUntil: 'domcontentloaded' });
await h.waitIn(page, 'the history after a reload', `${has(message)} && ${has(last)}`, undefined, 30000);
const csp = await page.evaluate(() => window.__csp);
await browser.close();
h.done({ partialBeforeEnd: !partial, csp, console: log });
