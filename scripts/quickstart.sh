#!/usr/bin/env bash
# `make run`: mcpgw in front of the official Go SDK conformance ("everything")
# server, with two dev users whose groups give them different tools. Writes
# its config, data and logs under .cache/quickstart/ (git-ignored), prints how
# to connect, and runs in the foreground until Ctrl-C, stopping both
# processes on exit.
#
# Environment: BIN (default ./bin, needs mcpgw and go-everything from
# `make build tools`), MCPGW_PORT (first port to try for the gateway, default
# 8787), QUICKSTART_DIR (default .cache/quickstart).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/bin}
dir=${QUICKSTART_DIR:-$root/.cache/quickstart}

for b in mcpgw go-everything; do
	if [[ ! -x $bin/$b ]]; then
		echo "quickstart: $bin/$b is missing: run \`make build tools\` first" >&2
		exit 1
	fi
done

# A port is free when nothing accepts a connection on it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p=$1
	while ! port_free "$p"; do
		p=$((p + 1))
		if ((p > 65000)); then
			echo "quickstart: no free port from $1 up" >&2
			exit 1
		fi
	done
	echo "$p"
}
token() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# wait_listening NAME PID PORT LOG: up to 30 s for PORT to accept connections
# while PID is alive.
wait_listening() {
	local deadline=$((SECONDS + 30))
	while port_free "$3"; do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "quickstart: $1 exited; last lines of $4:" >&2
			tail -n 30 "$4" >&2
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			echo "quickstart: $1 not listening on 127.0.0.1:$3 after 30 s; last lines of $4:" >&2
			tail -n 30 "$4" >&2
			exit 1
		fi
		sleep 0.1
	done
}

pids=()
cleanup() {
	trap - EXIT INT TERM
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "quickstart: stopping"; exit 0' INT TERM

mkdir -p "$dir/data" "$dir/audit"
up_port=$(free_port 9301)
gw_port=$(free_port "${MCPGW_PORT:-8787}")
while [[ $gw_port == "$up_port" ]]; do gw_port=$(free_port $((gw_port + 1))); done
admin_port=$(free_port 9900)
while [[ $admin_port == "$up_port" || $admin_port == "$gw_port" ]]; do admin_port=$(free_port $((admin_port + 1))); done
alice=alice-$(token)
bob=bob-$(token)
url=http://127.0.0.1:$gw_port/mcp

cat >"$dir/mcpgw.yaml" <<YAML
# Written by scripts/quickstart.sh; rewritten on every run.
server:
  listen: "127.0.0.1:$gw_port"
  data_dir: "$dir/data"
  admin: {listen: "127.0.0.1:$admin_port"}
identity:
  dev_users:
    - {token: $alice, user: alice@example.com, groups: [engineers]}
    - {token: $bob, user: bob@example.com, groups: [sre]}
applications:
  - name: everything
    frontend_url: $url
    upstream_url: http://127.0.0.1:$up_port/mcp
    rules:
      - name: engineers
        subjects: {groups: [engineers]}
        tools: [test_simple_text, test_tool_with_progress]
        prompts: [".*"]
        resources: [".*"]
      - name: sre
        subjects: {groups: [sre]}
        tools: ["test_.*"]
        deny_tools: [test_error_handling]
audit: {dir: "$dir/audit"}
observability: {log_format: text}
YAML

"$bin/go-everything" -http "127.0.0.1:$up_port" -stateless=false >"$dir/go-everything.log" 2>&1 &
pids+=($!)
wait_listening go-everything "$!" "$up_port" "$dir/go-everything.log"
"$bin/mcpgw" serve --config "$dir/mcpgw.yaml" >"$dir/mcpgw.log" 2>&1 &
pids+=($!)
wait_listening mcpgw "$!" "$gw_port" "$dir/mcpgw.log"

hdr="-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'"
cat <<EOF

mcpgw quickstart is running (Ctrl-C stops it).

  MCP endpoint  $url   (Streamable HTTP; plain HTTP, loopback only)
  upstream      http://127.0.0.1:$up_port/mcp   (Go SDK conformance server, stateful)
  config        $dir/mcpgw.yaml
  logs          $dir/mcpgw.log, $dir/go-everything.log
  audit log     $bin/mcpgw audit tail --config $dir/mcpgw.yaml   (every message, as it happens)

  Bearer tokens (dev users, new on every run):
    alice@example.com  (engineers)  $alice
        tools test_simple_text and test_tool_with_progress; every prompt and resource
    bob@example.com    (sre)        $bob
        every test_* tool except test_error_handling; no prompts or resources

With curl (initialize, then tools/list in that session):

  TOKEN=$alice
  SID=\$(curl -s -o /dev/null -D - $url -H "Authorization: Bearer \$TOKEN" $hdr \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' \\
    | awk -F': ' 'tolower(\$1)=="mcp-session-id"{print \$2}' | tr -d '\r')
  curl -s $url -H "Authorization: Bearer \$TOKEN" -H "Mcp-Session-Id: \$SID" -H 'Mcp-Protocol-Version: 2025-11-25' $hdr \\
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  curl -s $url -H "Authorization: Bearer \$TOKEN" -H "Mcp-Session-Id: \$SID" -H 'Mcp-Protocol-Version: 2025-11-25' $hdr \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'

With the MCP Inspector CLI (Node 20+):

  npx -y @modelcontextprotocol/inspector@1.0.3 --cli $url --transport http \\
    --method tools/list --header "Authorization: Bearer $alice"
  npx -y @modelcontextprotocol/inspector@1.0.3 --cli $url --transport http \\
    --method tools/call --tool-name test_simple_text --header "Authorization: Bearer $bob"

Any MCP client that speaks Streamable HTTP works the same way: URL $url,
header "Authorization: Bearer <token>".
EOF

# Stay in the foreground until Ctrl-C or until either process exits.
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do
	sleep 1
done
echo "quickstart: a process exited; last lines of its logs:" >&2
tail -n 20 "$dir/go-everything.log" "$dir/mcpgw.log" >&2
exit 1
