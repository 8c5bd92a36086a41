// A real OpenID Connect provider for mcpgw's end-to-end tests: oidc-provider
// (OpenID Certified, pinned in ../package.json) on a loopback port, with one
// static confidential client for mcpgw and two accounts. It stands in for
// PingOne: mcpgw logs users in through it with the authorization-code flow.
//
// usage: node provider.mjs --port P --redirect-uri URI [--client-id ID]
//          [--client-secret S] [--groups-in userinfo|id_token]
//          [--resource-server URL]... [--public-redirect-uri URI]
// (each flag may also be given as an environment variable: OIDC_PORT,
// OIDC_REDIRECT_URI, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_GROUPS_IN).
//
// Accounts (devInteractions: any password is accepted, the login name is
// the account id):
//   alice  alice@example.com  groups [engineers]
//   bob    bob@example.com    groups [sre]
// Their email and groups are released for the scopes "email" and "groups".
// With --groups-in userinfo (the default, and oidc-provider's certified
// behaviour for the code flow) the ID token carries only sub and the claims
// come from the userinfo endpoint; with id_token they are in the ID token
// too, as PingOne does when the attribute is mapped into it.
//
// For mcpgw's resource mode the provider also issues JWT access tokens
// (RFC 9068) to each --resource-server URL given (RFC 8707 resource
// indicator = the token's audience), carrying the user's email and groups,
// to the public client "e2e-public" (PKCE, redirect URI
// --public-redirect-uri, default http://127.0.0.1:1/callback).
//
// Prints one line `issuer http://127.0.0.1:P` once it accepts connections.
// The SDK is loaded from $E2E_NODE_MODULES (default: ../node_modules).

import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT },
    'redirect-uri': { type: 'string', default: process.env.OIDC_REDIRECT_URI },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID || 'mcpgw' },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET || 'mcpgw-e2e-secret' },
    'groups-in': { type: 'string', default: process.env.OIDC_GROUPS_IN || 'userinfo' },
    'resource-server': { type: 'string', multiple: true, default: [] },
    'public-redirect-uri': { type: 'string', default: 'http://127.0.0.1:1/callback' },
  },
});
const port = Number(args.port);
if (!Number.isInteger(port) || port <= 0 || !args['redirect-uri'] || !['userinfo', 'id_token'].includes(args['groups-in'])) {
  console.error('usage: node provider.mjs --port P --redirect-uri URI [--client-id ID] [--client-secret S] [--groups-in userinfo|id_token]');
  process.exit(2);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.E2E_NODE_MODULES || path.join(here, '..', 'node_modules');
const require = createRequire(path.join(path.dirname(nodeModules), 'package.json'));
const { default: Provider, errors } = await import(pathToFileURL(require.resolve('oidc-provider')).href);

const accounts = {
  alice: { email: 'alice@example.com', name: 'Alice', groups: ['engineers'] },
  bob: { email: 'bob@example.com', name: 'Bob', groups: ['sre'] },
};

// A fresh signing key per run: nothing here is meant to outlive the test.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e', alg: 'RS256', use: 'sig' };

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    redirect_uris: [args['redirect-uri']],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }, {
    client_id: 'e2e-public',
    application_type: 'native',
    redirect_uris: [args['public-redirect-uri']],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  }],
  async findAccount(ctx, id) {
    const a = accounts[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: a.email, email_verified: true, name: a.name, preferred_username: id, groups: a.groups };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  conformIdTokenClaims: args['groups-in'] === 'userinfo',
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async getResourceServerInfo(ctx, resource) {
        if (!args['resource-server'].includes(resource)) throw new errors.InvalidTarget();
        return { scope: 'mcp', audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  // JWT access tokens carry what mcpgw's policy needs.
  async extraTokenClaims(ctx, token) {
    const a = accounts[token.accountId];
    if (!a || token.kind !== 'AccessToken') return undefined;
    return { email: a.email, email_verified: true, groups: a.groups };
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  // PKCE is required of public clients (the default); mcpgw's client is
  // confidential and may send it or not.
});
// oidc-provider logs every server_error to stderr; keep the test log useful.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`issuer ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
