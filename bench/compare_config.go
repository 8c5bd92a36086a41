package bench

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// NginxSetup is what NginxConfig needs to put nginx in front of the mock
// backend as a plain reverse proxy.
type NginxSetup struct {
	Dir      string // pid file, error log and temp paths go here
	Listen   string // host:port nginx listens on
	Upstream string // host:port of the backend
}

// NginxConfig returns an nginx.conf for a plain keepalive reverse proxy:
// nothing a tuned production proxy would add beyond what keeps the
// comparison fair. Upstream connections are pooled (keepalive 128, HTTP/1.1,
// no Connection header), responses are not buffered so an SSE stream flows
// event by event, and neither side closes a busy connection after a request
// count, as mcpgw does not either. Access logging is off, as mcpgw logs no
// line per request.
func NginxConfig(s NginxSetup) string {
	path := func(name string) string { return nginxQuote(filepath.Join(s.Dir, name)) }
	var b strings.Builder
	b.WriteString("# Written by the mcpgw comparison runner (make bench): nginx as a plain\n")
	b.WriteString("# reverse proxy in front of the mock MCP backend.\n")
	b.WriteString("daemon off;\n")
	b.WriteString("worker_processes auto;\n")
	b.WriteString("worker_rlimit_nofile 65536;\n")
	fmt.Fprintf(&b, "pid %s;\n", path("nginx.pid"))
	fmt.Fprintf(&b, "error_log %s warn;\n", path("nginx-error.log"))
	b.WriteString("events {\n\tworker_connections 8192;\n}\n")
	b.WriteString("http {\n")
	b.WriteString("\taccess_log off;\n")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "\t%s_temp_path %s;\n", t, path("nginx-"+t))
	}
	b.WriteString("\tclient_max_body_size 4m;\n")
	b.WriteString("\tkeepalive_requests 1000000;\n")
	b.WriteString("\tkeepalive_timeout 75s;\n")
	b.WriteString("\tupstream mcp_backend {\n")
	fmt.Fprintf(&b, "\t\tserver %s;\n", s.Upstream)
	b.WriteString("\t\tkeepalive 128;\n")
	b.WriteString("\t\tkeepalive_requests 1000000;\n")
	b.WriteString("\t}\n")
	b.WriteString("\tserver {\n")
	fmt.Fprintf(&b, "\t\tlisten %s;\n", s.Listen)
	b.WriteString("\t\tlocation / {\n")
	b.WriteString("\t\t\tproxy_pass http://mcp_backend;\n")
	b.WriteString("\t\t\tproxy_http_version 1.1;\n")
	b.WriteString("\t\t\tproxy_set_header Connection \"\";\n")
	b.WriteString("\t\t\tproxy_buffering off;\n")
	b.WriteString("\t\t\tproxy_read_timeout 300s;\n")
	b.WriteString("\t\t}\n")
	b.WriteString("\t}\n")
	b.WriteString("}\n")
	return b.String()
}

// nginxQuote quotes a path for nginx.conf.
func nginxQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// DefaultListerTools is the policy pattern of scenario 3: 100 of the mock
// backend's 1,000 canned tools (tool_00000 … tool_00099).
const DefaultListerTools = "tool_000[0-9][0-9]"

// GatewaySetup is what GatewayConfig needs to put mcpgw in front of the mock
// backend.
type GatewaySetup struct {
	Dir      string // data_dir and audit dir go here
	Listen   string // host:port of the frontend listener
	Admin    string // host:port of the admin listener (must differ)
	Upstream string // the backend's MCP endpoint URL

	// Durability is audit.durability, sync or async ("" leaves mcpgw's
	// default, sync). The audit log records full arguments either way.
	Durability string
	// MaxSpool and WhenFull, when set, are audit.max_spool (such as
	// "2GiB") and audit.when_full; "" leaves mcpgw's defaults (10 GiB,
	// reject).
	MaxSpool, WhenFull string

	// CallerToken is the dev-user bearer token of the tools/call load; that
	// user may call the backend's echo tool and nothing else.
	CallerToken string
	// ListerToken is the dev-user bearer token of the tools/list load; that
	// user may use ListerTools (one whole-name RE2 pattern), so the
	// backend's list is filtered down to what it matches.
	ListerToken string
	ListerTools string

	// EnvFile and Issuer, when set, make mcpgw the OAuth authorization
	// server of the application (identity mode broker) in front of that
	// OpenID provider; dev-user tokens keep working beside its tokens.
	EnvFile, Issuer string
	// OAuthToken is an access token mcpgw issued to the caller's user
	// (the same groups as CallerToken's), filled in after the login.
	OAuthToken string
}

// AuditDir is the gateway's audit spool (audit.dir).
func (s GatewaySetup) AuditDir() string { return filepath.Join(s.Dir, "audit") }

// ServerURL is the gateway's own base URL (server.url).
func (s GatewaySetup) ServerURL() string { return "http://" + s.Listen }

// Frontend is the MCP endpoint URL of the application GatewayConfig writes.
func (s GatewaySetup) Frontend() string { return "http://" + s.Listen + "/mcp" }

// GatewayConfig returns an mcpgw.yaml (DESIGN.md section 3) with one
// application in front of the backend, authenticated by dev-user tokens and
// with the policy the scenarios need. Nothing is switched off: every message
// is authenticated, scanned, decided and audited (full arguments) as in
// production.
func GatewayConfig(s GatewaySetup) string {
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("# Written by the mcpgw comparison runner (make bench).\n")
	b.WriteString("server:\n")
	fmt.Fprintf(&b, "  listen: %s\n", q(s.Listen))
	fmt.Fprintf(&b, "  admin: {listen: %s}\n", q(s.Admin))
	fmt.Fprintf(&b, "  data_dir: %s\n", q(filepath.Join(s.Dir, "data")))
	if s.EnvFile != "" {
		fmt.Fprintf(&b, "  url: %s\n", q(s.ServerURL()))
	}
	b.WriteString("identity:\n")
	if s.EnvFile != "" {
		b.WriteString("  mode: broker\n")
		fmt.Fprintf(&b, "  env_file: %s\n", q(s.EnvFile))
		fmt.Fprintf(&b, "  issuer: %s\n", q(s.Issuer))
	}
	b.WriteString("  dev_users:\n")
	fmt.Fprintf(&b, "    - {token: %s, user: caller@bench.invalid, groups: [callers]}\n", q(s.CallerToken))
	fmt.Fprintf(&b, "    - {token: %s, user: lister@bench.invalid, groups: [listers]}\n", q(s.ListerToken))
	b.WriteString("applications:\n")
	b.WriteString("  - name: bench\n")
	fmt.Fprintf(&b, "    frontend_url: %s\n", q(s.Frontend()))
	fmt.Fprintf(&b, "    upstream_url: %s\n", q(s.Upstream))
	b.WriteString("    rules:\n")
	b.WriteString("      - name: callers\n")
	b.WriteString("        subjects: {groups: [callers]}\n")
	b.WriteString("        tools: [echo]\n")
	b.WriteString("      - name: listers\n")
	b.WriteString("        subjects: {groups: [listers]}\n")
	fmt.Fprintf(&b, "        tools: [%s]\n", q(s.ListerTools))
	fmt.Fprintf(&b, "audit: {dir: %s", q(s.AuditDir()))
	if s.Durability != "" {
		fmt.Fprintf(&b, ", durability: %s", s.Durability)
	}
	if s.MaxSpool != "" {
		fmt.Fprintf(&b, ", max_spool: %s", q(s.MaxSpool))
	}
	if s.WhenFull != "" {
		fmt.Fprintf(&b, ", when_full: %s", s.WhenFull)
	}
	b.WriteString(", arguments: full}\n")
	return b.String()
}
