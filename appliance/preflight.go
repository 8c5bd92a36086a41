package appliance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/identity"
)

// The operator's preflight, the second half of `mcpgw check`: one line per
// check, "ok", "warn" or "FAIL", what was checked, and the detail. A FAIL
// is something the gateway cannot serve with (exit 1); a warning is
// something an operator should look at. No line shows a secret value.

type checkLevel int

const (
	levelOK checkLevel = iota
	levelWarn
	levelFail
)

func (l checkLevel) String() string {
	return [...]string{"ok", "warn", "FAIL"}[l]
}

type checkLine struct {
	level  checkLevel
	what   string
	detail string
}

func (c checkLine) String() string {
	return fmt.Sprintf("%-5s %s: %s", c.level, c.what, c.detail)
}

// certExpiryWarning is how long before notAfter check warns.
const certExpiryWarning = 14 * 24 * time.Hour

// preflight runs the checks of cfg. offline leaves out what needs the
// network (the upstreams and the identity provider); timeout bounds each
// network check.
type preflight struct {
	cfg     *Config
	now     time.Time
	offline bool
	timeout time.Duration
	client  *http.Client
	lines   []checkLine
}

func (p *preflight) add(level checkLevel, what, format string, args ...any) {
	p.lines = append(p.lines, checkLine{level, what, fmt.Sprintf(format, args...)})
}

func (p *preflight) run(ctx context.Context) []checkLine {
	p.add(levelOK, "config", "%s parsed and valid (%d applications)", p.cfg.Path, len(p.cfg.Applications))
	p.secrets()
	p.envFile()
	p.tls()
	if p.offline {
		p.add(levelWarn, "network", "not checked (--offline): upstreams and identity provider")
		return p.lines
	}
	for i := range p.cfg.Applications {
		p.upstream(ctx, &p.cfg.Applications[i])
	}
	p.identityProvider(ctx)
	return p.lines
}

// secrets lists the references the file makes. The load resolved every
// one (a missing or empty one fails it), so this says which they are.
func (p *preflight) secrets() {
	refs := p.cfg.refs
	if len(refs) == 0 {
		p.add(levelOK, "secrets", "no ${env:} or ${file:} references")
		return
	}
	p.add(levelOK, "secrets", "%d references present and not empty: %s (values hidden)", len(refs), strings.Join(refs, ", "))
}

// envFile reports the identity env file: read or not, what the mode
// needs from it, and whether others may read the client secret.
func (p *preflight) envFile() {
	id := &p.cfg.Identity
	if id.EnvFile == "" {
		switch {
		case len(id.DevUsers) > 0 && id.Issuer == "":
			p.add(levelWarn, "env file", "none read: only dev users log in (%s)", defaultEnvFile+" is the default")
		default:
			p.add(levelOK, "env file", "none read; identity.issuer is used")
		}
		return
	}
	keys := make([]string, 0, len(id.Env))
	for k := range id.Env {
		keys = append(keys, k)
	}
	p.add(levelOK, "env file", "%s read (%s; values hidden)", id.EnvFile, strings.Join(sortedStrings(keys), ", "))
	has := func(k string) bool { return id.Env[k].Reveal() != "" }
	if id.Mode == "broker" && hasOAuthApp(p.cfg) {
		switch {
		case !has("OIDC_CLIENT_ID"):
			p.add(levelWarn, "env file", "no OIDC_CLIENT_ID: broker mode logs in only dev users")
		case !has("OIDC_CLIENT_SECRET"):
			p.add(levelWarn, "env file", "no OIDC_CLIENT_SECRET: the login at the identity provider uses a public client")
		}
	}
	if has("OIDC_CLIENT_SECRET") {
		if fi, err := os.Stat(id.EnvFile); err == nil && fi.Mode().Perm()&0o007 != 0 {
			p.add(levelWarn, "env file", "%s has mode %#o: every local user can read the client secret", id.EnvFile, fi.Mode().Perm())
		}
	}
}

// tls checks the frontend's pair: it loads, the key is the certificate's,
// the certificate names server.url's host and each https frontend's, and
// is not about to expire.
func (p *preflight) tls() {
	s := &p.cfg.Server
	if s.TLS.Cert == "" {
		if strings.HasPrefix(s.URL, "https:") {
			p.add(levelWarn, "tls", "the listener serves plain HTTP but server.url is https: TLS must end in front of mcpgw")
		} else {
			p.add(levelWarn, "tls", "none: plain HTTP (dev only)")
		}
		return
	}
	c, err := loadCertPair(s.TLS.Cert, s.TLS.Key)
	if err != nil {
		p.add(levelFail, "tls", "%v", err)
		return
	}
	l := c.Leaf
	p.add(levelOK, "tls", "%s and its key load and match (subject %s, serial %s)", s.TLS.Cert, l.Subject, l.SerialNumber.Text(16))
	// Offline, check is the unit's start gate (ExecCondition): it fails
	// only on what stops serve. A gateway serving an expired pair still
	// audits, ships and picks up the renewed pair by itself; one kept
	// down waits for somebody to start it.
	clock := levelFail
	if p.offline {
		clock = levelWarn
	}
	switch left := l.NotAfter.Sub(p.now); {
	case left <= 0:
		p.add(clock, "tls", "the certificate expired on %s", l.NotAfter.UTC().Format(time.RFC3339))
	case left < certExpiryWarning:
		p.add(levelWarn, "tls", "the certificate expires on %s, in %d days", l.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
	default:
		p.add(levelOK, "tls", "the certificate is valid until %s", l.NotAfter.UTC().Format(time.RFC3339))
	}
	if p.now.Before(l.NotBefore) {
		p.add(clock, "tls", "the certificate is not valid before %s", l.NotBefore.UTC().Format(time.RFC3339))
	}
	hosts := []string{}
	seen := map[string]bool{}
	for _, raw := range append([]string{s.URL}, frontendURLs(p.cfg)...) {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || seen[u.Hostname()] {
			continue
		}
		seen[u.Hostname()] = true
		hosts = append(hosts, u.Hostname())
	}
	for _, h := range hosts {
		if err := l.VerifyHostname(h); err != nil {
			p.add(levelWarn, "tls", "the certificate does not cover %s (names: %s)", h, certNames(l))
		} else {
			p.add(levelOK, "tls", "the certificate covers %s", h)
		}
	}
}

func frontendURLs(cfg *Config) []string {
	out := make([]string, 0, len(cfg.Applications))
	for _, app := range cfg.Applications {
		out = append(out, app.FrontendURL)
	}
	return out
}

func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// checkProtocolVersion is what the upstream check asks for: the newest
// version with initialize. A server of another version still answers
// initialize with its own, or with a JSON-RPC error; both are MCP.
const checkProtocolVersion = "2025-11-25"

// maxCheckAnswer bounds what is read of an upstream's answer.
const maxCheckAnswer = 1 << 20

// upstream sends an MCP initialize to the application's upstream with its
// configured headers and accepts any JSON-RPC response (a result or an
// error), as JSON or as a server-sent event. A session it opened is
// closed again with DELETE.
func (p *preflight) upstream(ctx context.Context, app *ApplicationConfig) {
	what := "upstream " + app.Name
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + checkProtocolVersion +
		`","capabilities":{},"clientInfo":{"name":"mcpgw-check","version":"` + Version() + `"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.UpstreamURL, strings.NewReader(body))
	if err != nil {
		p.add(levelFail, what, "cannot make a request to %s", app.UpstreamURL)
		return
	}
	for name, v := range app.Headers {
		req.Header.Set(name, v.Reveal())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := p.client.Do(req)
	if err != nil {
		p.add(levelFail, what, "%s not reachable: %v", app.UpstreamURL, describeNetError(err))
		return
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		defer p.endSession(app, sid)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		p.add(levelFail, what, "%s refused the request with HTTP %d: check the application's headers", app.UpstreamURL, resp.StatusCode)
		return
	}
	// A server that does not take initialize (2026-07-28 only) answers
	// a JSON-RPC error, with a 4xx status or not: that is MCP too.
	msg, ok := readJSONRPCAnswer(resp)
	if !ok {
		p.add(levelFail, what, "%s answered HTTP %d with %q, not a JSON-RPC response", app.UpstreamURL, resp.StatusCode,
			resp.Header.Get("Content-Type"))
		return
	}
	switch {
	case msg.Result != nil && resp.StatusCode >= 300:
		p.add(levelFail, what, "%s answered HTTP %d with a result, not MCP", app.UpstreamURL, resp.StatusCode)
	case msg.Result != nil:
		var r struct {
			ProtocolVersion string `json:"protocolVersion"`
			ServerInfo      struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"serverInfo"`
		}
		_ = json.Unmarshal(msg.Result, &r)
		p.add(levelOK, what, "%s speaks MCP (protocol %s, server %q %s)", app.UpstreamURL, r.ProtocolVersion,
			r.ServerInfo.Name, r.ServerInfo.Version)
	default:
		p.add(levelOK, what, "%s speaks MCP (initialize answered with JSON-RPC error %d, HTTP %d)", app.UpstreamURL, msg.Error.Code, resp.StatusCode)
	}
}

// endSession closes the session the check's initialize opened.
func (p *preflight) endSession(app *ApplicationConfig, sid string) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, app.UpstreamURL, nil)
	if err != nil {
		return
	}
	for name, v := range app.Headers {
		req.Header.Set(name, v.Reveal())
	}
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", checkProtocolVersion)
	if resp, err := p.client.Do(req); err == nil {
		resp.Body.Close()
	}
}

type rpcAnswer struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code int `json:"code"`
	} `json:"error"`
}

// readJSONRPCAnswer reads a JSON-RPC 2.0 response from a JSON body or the
// first event of a stream that holds one.
func readJSONRPCAnswer(resp *http.Response) (rpcAnswer, bool) {
	body := io.LimitReader(resp.Body, maxCheckAnswer)
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	isAnswer := func(data []byte) (rpcAnswer, bool) {
		var m rpcAnswer
		if json.Unmarshal(data, &m) != nil || m.JSONRPC != "2.0" || (m.Result == nil) == (m.Error == nil) {
			return rpcAnswer{}, false
		}
		return m, true
	}
	if strings.HasPrefix(ct, "text/event-stream") {
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 0, 64<<10), maxCheckAnswer)
		var data bytes.Buffer
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "data:"):
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			case line == "":
				if m, ok := isAnswer(data.Bytes()); ok {
					return m, true
				}
				data.Reset()
			}
		}
		return isAnswer(data.Bytes())
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return rpcAnswer{}, false
	}
	return isAnswer(data)
}

// describeNetError shortens a client error to its cause.
func describeNetError(err error) string {
	var ue *url.Error
	if e, ok := err.(*url.Error); ok {
		ue = e
	}
	if ue != nil {
		if ue.Timeout() {
			return "no answer in time"
		}
		return ue.Err.Error()
	}
	return err.Error()
}

// identityProvider fetches the provider's metadata as serve does: the
// OIDC client's discovery in broker mode, the JWT issuer's in resource
// mode.
func (p *preflight) identityProvider(ctx context.Context) {
	id := &p.cfg.Identity
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	switch {
	case !hasOAuthApp(p.cfg):
		return
	case id.Mode == "resource":
		issuer := resourceIssuer(id)
		if issuer == "" {
			return
		}
		v, err := identity.NewJWTVerifier(ctx, identity.JWTConfig{Issuer: issuer, GroupsClaim: id.GroupsClaim, HTTPClient: p.client})
		if err != nil {
			p.add(levelFail, "identity provider", "%v", err)
			return
		}
		defer v.Close()
		p.discovered(issuer, v.Discover(ctx))
	case id.Env["OIDC_CLIENT_ID"].Reveal() != "":
		oc := oidcConfig(p.cfg)
		oc.HTTPClient = p.client
		up, err := identity.NewOIDCUpstream(ctx, oc)
		if err != nil {
			p.add(levelFail, "identity provider", "%v", redactSecrets(err, p.cfg))
			return
		}
		err = up.Discover(ctx)
		issuer := up.Issuer()
		switch {
		case issuer != "":
		case id.Issuer != "":
			issuer = id.Issuer
		default:
			issuer = "the issuer derived from OIDC_AUTH_URL"
		}
		p.discovered(issuer, err)
	}
}

func (p *preflight) discovered(issuer string, err error) {
	if err != nil {
		p.add(levelFail, "identity provider", "discovery at %s failed: %v", issuer, redactSecrets(err, p.cfg))
		return
	}
	p.add(levelOK, "identity provider", "%s answers discovery", issuer)
}
