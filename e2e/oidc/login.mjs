// The headless login of ./browser.mjs on its own, for Go tests that drive the
// OAuth endpoints themselves: it follows AUTHORIZE_URL as USER until a
// redirect points at STOP_AT and prints {"ok": true, "url": ..., "trace"}, or
// {"ok": false, "error": {"status", "text", "url"}, "trace"} when a page
// answered with an error instead (the text is what a user would read).
//
// usage: node login.mjs AUTHORIZE_URL USER STOP_AT [PAUSE_AT]
//   PAUSE_AT: before requesting a URL that starts with it, print
//   `paused <url>` and wait for a line on stdin (the test stops the
//   identity provider there).

import readline from 'node:readline';
import { login, LoginError } from './browser.mjs';

const [authorizeURL, user, stopAt, pauseAt] = process.argv.slice(2);
if (!authorizeURL || !user || !stopAt) {
  console.error('usage: node login.mjs AUTHORIZE_URL USER STOP_AT [PAUSE_AT]');
  process.exit(2);
}

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
let paused = false;
const beforeHop = async (url) => {
  if (!pauseAt || paused || !url.href.startsWith(pauseAt)) return;
  paused = true;
  console.log(`paused ${url.origin}${url.pathname}`);
  await nextLine();
};

const out = { ok: false, trace: [] };
try {
  out.url = (await login(authorizeURL, { user, stopAt, trace: out.trace, beforeHop })).href;
  out.ok = true;
} catch (err) {
  if (!(err instanceof LoginError)) throw err;
  out.error = { status: err.status, text: err.text, url: err.url };
}
console.log(JSON.stringify(out));
lines.close();
process.exit(0);
