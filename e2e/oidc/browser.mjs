// A headless user agent for the OAuth login in mcpgw's end-to-end tests: it
// follows redirects with a cookie jar, submits the identity provider's login
// and consent forms (oidc-provider's devInteractions) and mcpgw's consent
// page, and stops at the client's redirect URI, as a browser and a user
// clicking "Sign-in", "Continue" and "Allow" would.

// CookieJar keeps cookies per host and path (RFC 6265 without domain
// cookies: every cookie here is host-only, on loopback).
export class CookieJar {
  #cookies = new Map(); // `${host} ${path} ${name}` → {host, path, name, value, expires}

  store(url, response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const c = { host: url.host, path: '/', name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), expires: Infinity };
      let defaultPath = url.pathname.slice(0, url.pathname.lastIndexOf('/')) || '/';
      c.path = defaultPath;
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path' && v.trim().startsWith('/')) c.path = v.trim();
        if (key === 'max-age') c.expires = Date.now() + Number(v) * 1000;
        if (key === 'expires' && c.expires === Infinity) c.expires = Date.parse(v);
      }
      const key = `${c.host} ${c.path} ${c.name}`;
      if (c.expires <= Date.now()) this.#cookies.delete(key);
      else this.#cookies.set(key, c);
    }
  }

  header(url) {
    const now = Date.now();
    const out = [];
    for (const c of this.#cookies.values()) {
      if (c.host !== url.host || c.expires <= now) continue;
      if (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : c.path + '/')) {
        out.push(`${c.name}=${c.value}`);
      }
    }
    return out.join('; ');
  }
}

// LoginError is a step of the login that did not end in a redirect or a
// form: it carries the status and the page's text, for tests to assert on.
export class LoginError extends Error {
  constructor(url, status, text) {
    super(`${status} at ${url.origin}${url.pathname}: ${text.slice(0, 300)}`);
    this.url = url.href;
    this.status = status;
    this.text = text;
  }
}

const decode = (s) => s.replace(/&quot;/g, '"').replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, '<')
  .replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const attr = (tag, name) => {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
  return m ? decode(m[1] ?? m[2] ?? m[3]) : undefined;
};
// pageText strips tags: what a user would read on an error page.
export const pageText = (html) => decode(html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim();

// parseForm returns the first POST form of a page: its action and the
// fields a user submitting it would send. Text and password inputs named
// login/username/email and password are filled with the user's; of several
// named submit buttons the one that allows or continues is pressed.
export function parseForm(html, user, password) {
  const m = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (!m) return undefined;
  const formTag = m[0].slice(0, m[0].indexOf('>') + 1);
  if ((attr(formTag, 'method') || 'get').toLowerCase() !== 'post') return undefined;
  const fields = new URLSearchParams();
  const buttons = [];
  for (const tag of m[1].match(/<(input|button)\b[^>]*>/gi) || []) {
    const name = attr(tag, 'name');
    const type = (attr(tag, 'type') || (tag.toLowerCase().startsWith('<button') ? 'submit' : 'text')).toLowerCase();
    const value = attr(tag, 'value') ?? '';
    if (!name) continue;
    if (type === 'submit') buttons.push({ name, value });
    else if (type === 'hidden') fields.append(name, value);
    else if (type === 'password') fields.append(name, password);
    else if (/^(login|username|user|email)$/i.test(name)) fields.append(name, user);
    else if (type === 'checkbox' || type === 'radio') { if (/\schecked\b/i.test(tag)) fields.append(name, value || 'on'); }
    else fields.append(name, value);
  }
  if (buttons.length > 0) {
    const b = buttons.find((b) => /allow|approve|accept|yes|consent|continue|grant/i.test(`${b.name} ${b.value}`)) || buttons[0];
    fields.append(b.name, b.value);
  }
  return { action: attr(formTag, 'action') || '', fields };
}

// login follows url until a Location starts with stopAt, and returns that
// URL. Every hop is appended to trace (origin and path only: queries carry
// codes and states). beforeHop, when given, is awaited with each next URL
// before it is requested (tests stop the provider there).
export async function login(url, { user, password = 'x', stopAt, jar = new CookieJar(), trace = [], beforeHop, maxHops = 30, timeoutMs = 10000 }) {
  let next = new URL(url);
  let method = 'GET';
  let body;
  for (let hop = 0; hop < maxHops; hop++) {
    if (next.href.startsWith(stopAt)) return next;
    if (beforeHop) await beforeHop(next);
    trace.push(`${method} ${next.origin}${next.pathname}`);
    const headers = { accept: 'text/html' };
    const cookie = jar.header(next);
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    let res;
    try {
      res = await fetch(next, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new LoginError(next, 0, `cannot connect: ${err.cause?.code ?? err.message}`);
    }
    jar.store(next, res);
    const text = await res.text();
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      next = new URL(res.headers.get('location'), next);
      method = 'GET';
      body = undefined;
      continue;
    }
    const form = res.status === 200 ? parseForm(text, user, password) : undefined;
    if (!form) throw new LoginError(next, res.status, pageText(text));
    next = new URL(form.action || next.href, next);
    method = 'POST';
    body = form.fields.toString();
  }
  throw new Error(`login did not reach ${stopAt} within ${maxHops} steps: ${trace.join(' → ')}`);
}
