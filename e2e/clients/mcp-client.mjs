// Drives the official TypeScript MCP SDK client (Client +
// StreamableHTTPClientTransport) against one MCP endpoint with a bearer token,
// runs the steps it is given, and prints one JSON object with what happened,
// for the Go end-to-end tests to assert on.
//
// usage: node mcp-client.mjs URL TOKEN 'STEPS'
//   STEPS is a JSON array of {"op": "listTools"|"listPrompts"|"listResources"}
//   and {"op": "callTool", "name": N, "arguments": {...}, "progress": true}.
// The SDK is loaded from $E2E_NODE_MODULES (default: ../node_modules).

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describeError, runSteps } from './steps.mjs';

const [url, token, stepsJSON] = process.argv.slice(2);
if (!url || !token || !stepsJSON) {
  console.error('usage: node mcp-client.mjs URL TOKEN STEPS_JSON');
  process.exit(2);
}
const requestTimeoutMs = 20000;

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.E2E_NODE_MODULES || path.join(here, '..', 'node_modules');
const require = createRequire(path.join(path.dirname(nodeModules), 'package.json'));
const load = async (spec) => import(pathToFileURL(require.resolve(spec)).href);

const { Client } = await load('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = await load('@modelcontextprotocol/sdk/client/streamableHttp.js');

const started = performance.now();
const since = () => Math.round((performance.now() - started) * 10) / 10;

const out = { steps: [] };
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: 'mcpgw-e2e-typescript', version: '1.0.0' }, { capabilities: {} });

try {
  await client.connect(transport, { timeout: requestTimeoutMs });
  out.connected = true;
  out.protocolVersion = transport.protocolVersion ?? null;
  out.sessionId = transport.sessionId ?? null;
  out.serverInfo = client.getServerVersion() ?? null;
} catch (err) {
  out.connected = false;
  out.connectError = describeError(err);
  console.log(JSON.stringify(out));
  process.exit(1);
}

out.steps = await runSteps(client, JSON.parse(stepsJSON), { timeoutMs: requestTimeoutMs, since });

await client.close().catch(() => {});
console.log(JSON.stringify(out));
process.exit(0);
