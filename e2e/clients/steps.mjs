// The steps the Node test clients run once connected (clients/mcp-client.mjs
// with a bearer token, oidc/client.mjs after an OAuth login), and how they
// report errors, so that both print the same JSON for the Go tests.
//
// A step is {"op": "listTools"|"listPrompts"|"listResources"} or
// {"op": "callTool", "name": N, "arguments": {...}, "progress": true}.

export function describeError(err) {
  return {
    code: typeof err?.code === 'number' ? err.code : null,
    message: String(err?.message ?? err),
    name: err?.constructor?.name ?? typeof err,
  };
}

// runSteps runs steps on a connected SDK Client and returns one record per
// step. since() gives the milliseconds since the client started, for the
// timing of progress notifications.
export async function runSteps(client, steps, { timeoutMs, since }) {
  const records = [];
  for (const step of steps) {
    const rec = { op: step.op, name: step.name ?? null };
    const opts = { timeout: timeoutMs };
    try {
      switch (step.op) {
        case 'listTools':
          rec.names = (await client.listTools({}, opts)).tools.map((t) => t.name);
          break;
        case 'listPrompts':
          rec.names = (await client.listPrompts({}, opts)).prompts.map((p) => p.name);
          break;
        case 'listResources':
          rec.names = (await client.listResources({}, opts)).resources.map((r) => r.uri);
          break;
        case 'callTool': {
          if (step.progress) {
            rec.progress = [];
            opts.onprogress = (p) => rec.progress.push({ ...p, atMs: since() });
          }
          const callStarted = since();
          const result = await client.callTool({ name: step.name, arguments: step.arguments ?? {} }, undefined, opts);
          rec.startedMs = callStarted;
          rec.resultAtMs = since();
          rec.result = result;
          break;
        }
        default:
          throw new Error(`unknown op ${step.op}`);
      }
      rec.ok = true;
    } catch (err) {
      rec.ok = false;
      rec.error = describeError(err);
    }
    records.push(rec);
  }
  return records;
}
