// The official TypeScript MCP SDK as an OAuth client of mcpgw, headless:
// Client + StreamableHTTPClientTransport with an OAuthClientProvider that
// keeps everything in memory and whose redirectToAuthorization drives the
// login with ./browser.mjs instead of opening a browser:
//
//   MCP request → 401 + resource_metadata → protected resource metadata →
//   authorization server metadata → dynamic registration → mcpgw
//   /oauth/authorize → IdP login (USER) → IdP consent → mcpgw
//   /oauth/callback → mcpgw consent page (Allow) → redirect_uri?code →
//   transport.finishAuth(code) (token request with the PKCE verifier) →
//   reconnect → the steps, as that user.
//
// usage: node client.mjs URL USER 'STEPS'
//   STEPS is a JSON array of steps (../clients/steps.mjs).
// Prints one JSON object: {authorized, trace, connected, steps, tokens, ...}.
// The tokens are printed on purpose: the Go test checks that the upstream
// never sees them and replays them against other applications.
// The SDK is loaded from $E2E_NODE_MODULES (default: ../node_modules).

import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { login, LoginError } from './browser.mjs';
import { describeError, runSteps } from '../clients/steps.mjs';

const [url, user, stepsJSON = '[]'] = process.argv.slice(2);
if (!url || !user) {
  console.error('usage: node client.mjs URL USER [STEPS_JSON]');
  process.exit(2);
}
const requestTimeoutMs = 20000;
const started = performance.now();
const since = () => Math.round((performance.now() - started) * 10) / 10;
// Never requested: the login stops when a redirect points here, as a
// native client's loopback listener would take the code.
const redirectUrl = 'http://127.0.0.1:1/callback';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.E2E_NODE_MODULES || path.join(here, '..', 'node_modules');
const require = createRequire(path.join(path.dirname(nodeModules), 'package.json'));
const load = async (spec) => import(pathToFileURL(require.resolve(spec)).href);

const { Client } = await load('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = await load('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { UnauthorizedError } = await load('@modelcontextprotocol/sdk/client/auth.js');

// A LoginError's status and page text say why the login failed.
const describeLoginError = (err) => ({ ...describeError(err), status: err?.status ?? null, text: err?.text ?? null });

const out = { authorized: false, connected: false, trace: [], steps: [] };

// provider is the SDK's OAuthClientProvider, in memory.
class HeadlessProvider {
  #client;
  #tokens;
  #verifier;
  #state;
  #discovery;
  code;

  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: 'mcpgw e2e (TypeScript SDK)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { return (this.#state = crypto.randomBytes(16).toString('base64url')); }
  clientInformation() { return this.#client; }
  saveClientInformation(info) { this.#client = info; out.clientId = info.client_id; }
  tokens() { return this.#tokens; }
  saveTokens(tokens) { this.#tokens = tokens; out.tokens = tokens; }
  saveCodeVerifier(v) { this.#verifier = v; }
  codeVerifier() { return this.#verifier; }
  saveDiscoveryState(s) { this.#discovery = s; }
  discoveryState() { return this.#discovery; }

  async redirectToAuthorization(authorizationUrl) {
    out.authorizationUrl = authorizationUrl.href;
    const back = await login(authorizationUrl, { user, stopAt: redirectUrl, trace: out.trace });
    const p = back.searchParams;
    if (p.get('error')) {
      throw Object.assign(new Error(`authorization failed: ${p.get('error')}: ${p.get('error_description') ?? ''}`), { oauthError: p.get('error') });
    }
    if (p.get('state') !== this.#state) throw new Error('the authorization response carries another state');
    out.iss = p.get('iss');
    this.code = p.get('code');
  }
}

const provider = new HeadlessProvider();
const newTransport = () => new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
const newClient = () => new Client({ name: 'mcpgw-e2e-oauth', version: '1.0.0' }, { capabilities: {} });

let client = newClient();
let transport = newTransport();
try {
  try {
    await client.connect(transport, { timeout: requestTimeoutMs });
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || !provider.code) throw err;
    await transport.finishAuth(provider.code);
    out.authorized = true;
    await client.close().catch(() => {});
    client = newClient();
    transport = newTransport();
    await client.connect(transport, { timeout: requestTimeoutMs });
  }
  out.connected = true;
  out.protocolVersion = transport.protocolVersion ?? null;
} catch (err) {
  out.connectError = describeLoginError(err instanceof LoginError ? err : (err?.cause instanceof LoginError ? err.cause : err));
  console.log(JSON.stringify(out));
  process.exit(1);
}

out.steps = await runSteps(client, JSON.parse(stepsJSON), { timeoutMs: requestTimeoutMs, since });

await client.close().catch(() => {});
console.log(JSON.stringify(out));
process.exit(0);
