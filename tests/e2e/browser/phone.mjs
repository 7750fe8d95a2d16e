// A JsSIP phone in headless Chromium, driven by JSON lines on stdin and
// reporting JSON lines on stdout, for tests/e2e/test_browser.py.
//
//   node phone.mjs '{"ws": "ws://127.0.0.1:8080", "uri": "sip:alice@web.example",
//                    "password": "…", "spki": "<base64 SHA-256 of the wss key>" (optional)}'
// stdin:  {"cmd": "call", "target": "sip:…"} | {"cmd": "answer"} | {"cmd": "hangup"} | {"cmd": "quit"}
// stdout: {"event": "registered" | "registrationFailed" | "incoming" | "progress" |
//          "confirmed" | "ended" | "failed" | "ready" | "error", …}

import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const opts = JSON.parse(process.argv[2]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const bundle = join(here, 'jssip.bundle.js');
if (!existsSync(bundle)) {
  execFileSync(join(here, 'node_modules/.bin/esbuild'),
    [join(here, 'entry.js'), '--bundle', '--format=iife', `--outfile=${bundle}`], { stdio: 'ignore' });
}
const files = { '/': 'page.html', '/jssip.bundle.js': 'jssip.bundle.js' };
const server = createServer((req, res) => {
  const f = files[req.url];
  if (!f) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': f.endsWith('.js') ? 'text/javascript' : 'text/html' });
  res.end(readFileSync(join(here, f)));
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const page_url = `http://127.0.0.1:${server.address().port}/`;

const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection'];
// wss with the test CA: trust exactly the gateway's key (its SPKI hash).
if (opts.spki) args.push(`--ignore-certificate-errors-spki-list=${opts.spki}`);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
const context = await browser.newContext({ permissions: ['microphone'] });
const page = await context.newPage();
await page.exposeFunction('say', say);
page.on('pageerror', (e) => say({ event: 'error', detail: String(e) }));
// JsSIP's own log (with its SIP messages) goes to stderr, the test's log file.
page.on('console', (m) => process.stderr.write(`${m.text()}\n`));
await page.goto(page_url);
await page.evaluate((o) => {
  JsSIP.debug.enable('JsSIP:Transport JsSIP:WARN:* JsSIP:ERROR:*');
  const socket = new JsSIP.WebSocketInterface(o.ws);
  const ua = new JsSIP.UA({ sockets: [socket], uri: o.uri, password: o.password,
    register: true, session_timers: false, register_expires: 600 });
  window.ua = ua;
  const track = (s) => {
    window.session = s;
    s.on('progress', () => say({ event: 'progress' }));
    s.on('confirmed', () => say({ event: 'confirmed' }));
    s.on('ended', (e) => say({ event: 'ended', cause: e.cause, originator: e.originator }));
    s.on('failed', (e) => say({ event: 'failed', cause: e.cause, originator: e.originator }));
  };
  ua.on('registered', () => say({ event: 'registered' }));
  ua.on('registrationFailed', (e) => say({ event: 'registrationFailed', cause: e.cause,
    status: e.response && e.response.status_code }));
  ua.on('newRTCSession', (e) => {
    if (e.originator === 'remote') {
      track(e.session);
      say({ event: 'incoming', from: e.request.from.uri.toString() });
    }
  });
  window.call = (target) => track(ua.call(target, { mediaConstraints: { audio: true, video: false } }));
  window.answer = () => window.session.answer({ mediaConstraints: { audio: true, video: false } });
  window.hangup = () => window.session.terminate();
  ua.start();
}, opts);
say({ event: 'ready' });

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  const c = JSON.parse(line);
  try {
    if (c.cmd === 'call') await page.evaluate((t) => window.call(t), c.target);
    else if (c.cmd === 'answer') await page.evaluate(() => window.answer());
    else if (c.cmd === 'hangup') await page.evaluate(() => window.hangup());
    else if (c.cmd === 'quit') break;
  } catch (e) {
    say({ event: 'error', detail: String(e) });
  }
}
await page.evaluate(() => window.ua.stop()).catch(() => {});
await browser.close();
server.close();
process.exit(0);
