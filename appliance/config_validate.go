package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"time"
)

// check reads the identity env file, applies the defaults documented on the
// Config fields and validates cfg, recording every problem in d.errs.
func (d *decoder) check(cfg *Config) {
	env := d.readEnv(cfg)
	d.applyDefaults(cfg, env)
	v := validator{decoder: d, env: env, compiled: make(map[string]patternError)}
	v.server(cfg)
	v.identity(cfg)
	v.roles(&cfg.Roles)
	v.applications(cfg)
	v.audit(cfg)
	if w := cfg.Approvals.Webhook; w != "" {
		if msg := checkHTTPURL(w, urlRules{path: true, query: true}); msg != "" {
			v.errorKey("approvals.webhook", msg)
		}
	}
	v.observability(&cfg.Observability)
}

// loadedEnv is the identity env file as read, with the line of each key.
type loadedEnv struct {
	path    string
	entries map[string]envEntry
}

func (e loadedEnv) get(key string) string { return e.entries[key].value.Reveal() }

// readEnv reads identity.env_file (or the default path, when it exists) into
// cfg.Identity.Env and sets cfg.Identity.EnvFile to the path read, or ""
// when none was.
func (d *decoder) readEnv(cfg *Config) loadedEnv {
	id := &cfg.Identity
	explicit := d.has("identity.env_file")
	path := id.EnvFile
	if !explicit {
		path = d.defaultEnvFile
	}
	id.EnvFile = ""
	if path == "" {
		return loadedEnv{}
	}
	entries, errs, err := parseEnvFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return loadedEnv{}
		}
		msg := "cannot read: " + describeReadError(err)
		if !explicit {
			msg = fmt.Sprintf("cannot read the default env file %s: %s", path, describeReadError(err))
		}
		d.errorKey("identity.env_file", msg)
		return loadedEnv{}
	}
	d.errs = append(d.errs, errs...)
	id.EnvFile = path
	id.Env = make(map[string]Secret, len(entries))
	for k, e := range entries {
		id.Env[k] = e.value
	}
	return loadedEnv{path: path, entries: entries}
}

const (
	defaultDataDir       = "/var/lib/mcpgw"
	defaultMaxBody       = 4 << 20
	defaultMaxSpool      = 10 << 30
	minMaxSpool          = 64 << 20
	defaultAdminListen   = "127.0.0.1:9900"
	defaultUpstreamTO    = 60 * time.Second
	defaultKeepAlive     = 25 * time.Second
	defaultShutdownTO    = 25 * time.Second
	defaultTokenTTL      = time.Hour
	defaultGrantTTL      = 30 * time.Minute
	defaultRequestTTL    = 24 * time.Hour
	defaultRetention     = 720 * time.Hour
	defaultShipBatch     = 1000
	defaultShipInterval  = time.Second
	defaultPyroscopeName = "mcpgw"
)

// applyDefaults fills what was not written. An empty string counts as not
// written, except identity.env_file (where "" reads no file) and server.tls
// (where writing the key turns off the default certificate pair).
func (d *decoder) applyDefaults(cfg *Config, env loadedEnv) {
	s := &cfg.Server
	if !d.has("server.tls") && regularFileExists(d.defaultTLSCert) && regularFileExists(d.defaultTLSKey) {
		s.TLS = TLSConfig{Cert: d.defaultTLSCert, Key: d.defaultTLSKey}
	}
	tls := s.TLS.Cert != "" || s.TLS.Key != ""
	if s.Listen == "" {
		s.Listen = ":8080"
		if tls {
			s.Listen = ":443"
		}
	}
	setString(&s.DataDir, defaultDataDir)
	if !d.has("server.max_body") {
		s.MaxBody = defaultMaxBody
	}
	setDuration(&s.UpstreamTimeout, defaultUpstreamTO)
	setDuration(&s.KeepAlive, defaultKeepAlive)
	setDuration(&s.ShutdownTimeout, defaultShutdownTO)
	setString(&s.Admin.Listen, defaultAdminListen)
	setString(&s.Admin.TokenFile, filepath.Join(s.DataDir, "admin.token"))
	if u := env.get("SERVER_URL"); u != "" {
		s.URL = u
	}
	if s.URL == "" {
		s.URL = defaultServerURL(s.Listen, tls)
	}

	id := &cfg.Identity
	setString(&id.Mode, "broker")
	setString(&id.GroupsClaim, "groups")
	setDuration(&id.TokenTTL, defaultTokenTTL)

	for i := range cfg.Applications {
		app := &cfg.Applications[i]
		setString(&app.Auth, "oauth")
		setString(&app.Visibility, "permitted")
		for j := range app.Rules {
			r := &app.Rules[j]
			setString(&r.Mode, "enforce")
			if a := r.Approval; a != nil {
				setDuration(&a.GrantTTL, defaultGrantTTL)
				setDuration(&a.RequestTTL, defaultRequestTTL)
				for k := range a.Levels {
					if !d.has(fmt.Sprintf("applications[%d].rules[%d].approval.levels[%d].count", i, j, k)) {
						a.Levels[k].Count = 1
					}
				}
			}
		}
	}

	a := &cfg.Audit
	setString(&a.Dir, filepath.Join(s.DataDir, "audit"))
	setString(&a.Durability, "sync")
	if !d.has("audit.max_spool") {
		a.MaxSpool = defaultMaxSpool
	}
	setString(&a.WhenFull, "reject")
	setString(&a.Arguments, "full")
	setDuration(&a.Retention, defaultRetention)
	if a.Ship.URL == "" {
		setString(&a.Ship.Auth, "none")
	} else {
		setString(&a.Ship.Auth, "client_credentials")
	}
	if !d.has("audit.ship.batch") {
		a.Ship.Batch = defaultShipBatch
	}
	setDuration(&a.Ship.Interval, defaultShipInterval)

	o := &cfg.Observability
	setString(&o.LogFormat, "json")
	setString(&o.LogLevel, "info")
	setString(&o.Pyroscope.ApplicationName, defaultPyroscopeName)
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDuration(p *time.Duration, def time.Duration) {
	if *p == 0 {
		*p = def
	}
}

func regularFileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// defaultServerURL is http(s)://localhost with the port of listen, left out
// when it is the scheme's default (so that it equals what clients send).
func defaultServerURL(listen string, tls bool) string {
	scheme, std := "http", "80"
	if tls {
		scheme, std = "https", "443"
	}
	_, port, err := net.SplitHostPort(listen)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || port == std {
		return scheme + "://localhost" // an invalid listen is reported on its own
	}
	return scheme + "://localhost:" + port
}

// validator checks a Config after defaults; positions come from the decoder.
type validator struct {
	*decoder
	env      loadedEnv
	compiled map[string]patternError // by pattern: each is compiled once
}

// envError reports a problem with an env file key at its line.
func (v validator) envError(key, msg string) {
	e := v.env.entries[key]
	v.errs = append(v.errs, ConfigError{File: v.env.path, Line: e.line, Key: key, Msg: msg})
}

func (v validator) oneOf(path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.errorKey(path, "must be one of "+strings.Join(allowed, ", "))
}

func (v validator) server(cfg *Config) {
	s := &cfg.Server
	if (s.TLS.Cert == "") != (s.TLS.Key == "") {
		v.errorKey("server.tls", "cert and key go together: set both or neither")
	}
	v.listen("server.listen", s.Listen)
	v.listen("server.admin.listen", s.Admin.Listen)
	if sameListener(s.Listen, s.Admin.Listen) {
		v.errorKey("server.admin.listen", "must differ from server.listen: the admin API never shares the frontend listener")
	}
	if msg := checkHTTPURL(s.URL, urlRules{path: true}); msg != "" {
		if v.env.get("SERVER_URL") != "" { // it replaced server.url
			v.envError("SERVER_URL", msg)
		} else {
			v.errorKey("server.url", msg)
		}
	}
	if s.MaxBody < 1<<10 {
		v.errorKey("server.max_body", "must be at least 1KiB")
	}
}

// listen checks a host:port listener address; port 0 picks a free port.
func (v validator) listen(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.errorKey(path, "must be host:port or :port")
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.errorKey(path, "the port must be a number from 0 to 65535")
	}
}

// sameListener reports whether two listen addresses would bind the same
// port on overlapping addresses.
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

// urlRules says what an http(s) URL may carry besides scheme and host.
type urlRules struct {
	path  bool // a path other than "" or "/"
	query bool
}

// checkHTTPURL returns "" for an acceptable absolute http or https URL, else
// the problem. It never quotes raw, which may have been expanded.
func checkHTTPURL(raw string, r urlRules) string {
	const want = "must be an absolute http or https URL"
	u, err := url.Parse(raw)
	if err != nil {
		return want
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return want
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return want + " with a host"
	case u.User != nil:
		return "must not carry credentials; inject them with headers"
	case !r.query && (u.RawQuery != "" || u.ForceQuery):
		return "must not have a query"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment"
	case !r.path && u.Path != "" && u.Path != "/":
		return "must not have a path"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return "the port must be a number from 1 to 65535"
		}
	}
	return ""
}

func (v validator) identity(cfg *Config) {
	id := &cfg.Identity
	v.oneOf("identity.mode", id.Mode, "broker", "resource")
	if id.Issuer != "" {
		if msg := checkHTTPURL(id.Issuer, urlRules{path: true}); msg != "" {
			v.errorKey("identity.issuer", msg)
		}
	}
	for _, key := range []string{"OIDC_AUTH_URL", "OIDC_TOKEN_URL", "OIDC_USER_URL"} {
		if u := v.env.get(key); u != "" {
			if msg := checkHTTPURL(u, urlRules{path: true, query: true}); msg != "" {
				v.envError(key, msg)
			}
		}
	}
	if v.env.get("OIDC_CLIENT_ID") != "" && id.Issuer == "" {
		for _, key := range []string{"OIDC_AUTH_URL", "OIDC_TOKEN_URL"} {
			if v.env.get(key) == "" {
				v.errs = append(v.errs, ConfigError{File: v.env.path, Key: key,
					Msg: "required with OIDC_CLIENT_ID unless identity.issuer is set"})
			}
		}
	}
	if id.Mode == "broker" && id.Issuer != "" && v.env.get("OIDC_CLIENT_ID") == "" {
		v.errorKey("identity.issuer", "broker mode logs users in with a client: it needs OIDC_CLIENT_ID in identity.env_file")
	}
	if hasOAuthApp(cfg) {
		switch {
		case id.Mode == "broker" && v.env.get("OIDC_CLIENT_ID") != "":
			v.brokerServerURL(cfg)
		case id.Mode == "resource" && id.Issuer == "" && v.env.get("OIDC_AUTH_URL") == "":
			v.errorKey("identity.mode", "resource mode verifies the identity provider's JWTs: set identity.issuer, or OIDC_AUTH_URL in identity.env_file to derive it")
		}
	}

	// Dev tokens: at least 8 characters rules out placeholders ("x",
	// "test") while keeping quickstart tokens such as "alice-token" short.
	const minDevToken = 8
	tokens := make(map[string]int, len(id.DevUsers))
	for i, u := range id.DevUsers {
		p := fmt.Sprintf("identity.dev_users[%d]", i)
		switch t := u.Token.Reveal(); {
		case t == "":
			v.errorKey(p+".token", "required")
		case len(t) < minDevToken:
			v.errorKey(p+".token", fmt.Sprintf("must be at least %d characters", minDevToken))
		default:
			if first, dup := tokens[t]; dup {
				v.errorKey(p+".token", fmt.Sprintf("the same token as identity.dev_users[%d]", first))
			} else {
				tokens[t] = i
			}
		}
		if strings.TrimSpace(u.User) == "" {
			v.errorKey(p+".user", "required")
		}
		v.names(p+".groups", u.Groups)
	}
}

// brokerServerURL checks server.url (or SERVER_URL) where mcpgw is the
// authorization server: it is the issuer clients see and the base of the
// callback registered at the identity provider, <url>/oauth/callback. The
// proxy serves /oauth/* at the root of the hosts that name applications, so
// the URL must be written (the localhost default is never what the provider
// knows), have no path, and name the host of an application with auth:
// oauth.
func (v validator) brokerServerURL(cfg *Config) {
	fromEnv := v.env.get("SERVER_URL") != ""
	fail := func(msg string) {
		if fromEnv {
			v.envError("SERVER_URL", msg)
		} else {
			v.errorKey("server.url", msg)
		}
	}
	if !fromEnv && !v.has("server.url") {
		v.errorKey("server.url", "required in broker mode (or SERVER_URL in identity.env_file): it is the OAuth issuer and "+
			"the base of the login callback <url>/oauth/callback registered at the identity provider")
		return
	}
	u, err := url.Parse(cfg.Server.URL)
	if err != nil || checkHTTPURL(cfg.Server.URL, urlRules{path: true}) != "" {
		return // reported by server()
	}
	if u.Path != "" && u.Path != "/" {
		fail("must not have a path in broker mode: the OAuth endpoints are served at the root of the host")
		return
	}
	host := hostKey(u)
	for _, app := range cfg.Applications {
		if app.Auth != "oauth" {
			continue
		}
		if f, err := url.Parse(app.FrontendURL); err == nil && f.Scheme == u.Scheme && hostKey(f) == host {
			return
		}
	}
	fail("must have the scheme, host and port of an application with auth: oauth: " +
		"the OAuth endpoints and the login callback are served only on the applications' hosts")
}

// hostKey is a URL's host, lower-cased, with the scheme's default port
// made explicit.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}

func hasOAuthApp(cfg *Config) bool {
	for _, app := range cfg.Applications {
		if app.Auth == "oauth" {
			return true
		}
	}
	return false
}

// oidcReady reports whether users can authenticate through the IdP in the
// configured mode: broker mode needs the gateway's client, resource mode an
// issuer to verify tokens against (written, or derived from OIDC_AUTH_URL).
func (v validator) oidcReady(cfg *Config) bool {
	if cfg.Identity.Mode == "resource" {
		return cfg.Identity.Issuer != "" || v.env.get("OIDC_AUTH_URL") != ""
	}
	return v.env.get("OIDC_CLIENT_ID") != ""
}

// names checks a list of user or group names: none may be blank.
func (v validator) names(path string, list []string) {
	for i, n := range list {
		if strings.TrimSpace(n) == "" {
			v.errorKey(joinIndex(path, i), "must not be empty")
		}
	}
}

func (v validator) roles(r *RolesConfig) {
	v.names("roles.admin_groups", r.AdminGroups)
	v.names("roles.auditor_groups", r.AuditorGroups)
}

var appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

func (v validator) applications(cfg *Config) {
	names := make(map[string]string)     // name → path of its first use
	frontends := make(map[string]string) // host+path → path of its first use
	identityReady := v.oidcReady(cfg) || len(cfg.Identity.DevUsers) > 0
	for i := range cfg.Applications {
		app := &cfg.Applications[i]
		p := joinIndex("applications", i)
		switch {
		case app.Name == "":
			v.errorKey(p+".name", "required")
		case !appNameRE.MatchString(app.Name):
			v.errorKey(p+".name", "must match [a-z0-9][a-z0-9._-]*")
		default:
			if first, dup := names[app.Name]; dup {
				v.errorKey(p+".name", fmt.Sprintf("duplicate application name (first at line %d)", v.posOf(first).line))
			} else {
				names[app.Name] = p + ".name"
			}
		}

		if app.FrontendURL == "" {
			v.errorKey(p+".frontend_url", "required")
		} else if msg := checkHTTPURL(app.FrontendURL, urlRules{path: true}); msg != "" {
			v.errorKey(p+".frontend_url", msg)
		} else {
			key := frontendKey(app.FrontendURL)
			if first, dup := frontends[key]; dup {
				v.errorKey(p+".frontend_url", fmt.Sprintf("the same host and path as %s (line %d)", parentPath(first), v.posOf(first).line))
			} else {
				frontends[key] = p + ".frontend_url"
			}
		}
		if app.UpstreamURL == "" {
			v.errorKey(p+".upstream_url", "required")
		} else if msg := checkHTTPURL(app.UpstreamURL, urlRules{path: true}); msg != "" {
			v.errorKey(p+".upstream_url", msg)
		}

		v.oneOf(p+".auth", app.Auth, "oauth", "none")
		v.oneOf(p+".visibility", app.Visibility, "permitted", "all")
		if app.Auth == "oauth" && !identityReady {
			at := p
			if v.has(p + ".auth") {
				at = p + ".auth"
			}
			name := app.Name
			if name == "" || v.posOf(p+".name").expanded {
				name = p
			}
			v.errorKey(at, fmt.Sprintf("application %s needs identity: configure identity.env_file or dev_users or set auth: none", name))
		}
		v.headers(p+".headers", app.Headers)
		for j, o := range app.AllowedOrigins {
			if msg := checkOrigin(o); msg != "" {
				v.errorKey(joinIndex(p+".allowed_origins", j), msg)
			}
		}
		v.rules(p, app)
	}
}

// frontendKey is the (host, path) pair that routes to an application:
// host lower-cased with the scheme's default port made explicit, path
// without a trailing slash.
func frontendKey(raw string) string {
	u, _ := url.Parse(raw) // checked by checkHTTPURL
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path == "" {
		path = "/"
	}
	return strings.ToLower(u.Hostname()) + ":" + port + path
}

// checkOrigin accepts a browser origin, scheme://host[:port] (RFC 6454).
func checkOrigin(o string) string {
	const want = "must be an origin: scheme://host[:port], without path, query or trailing slash"
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(o, "#") {
		return want
	}
	return ""
}

// forbiddenHeaders are headers the proxy owns: framing, hop-by-hop
// (RFC 9110 section 7.6.1), routing, and the MCP transport's own
// (MCP-REQUIREMENTS.md: session id and protocol version are per session).
// Authorization is allowed: injecting a backend credential is the point.
var forbiddenHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "content-encoding": true,
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"te": true, "trailer": true, "upgrade": true, "proxy-authenticate": true,
	"proxy-authorization": true, "mcp-session-id": true, "mcp-protocol-version": true,
	"last-event-id": true,
}

func (v validator) headers(path string, h map[string]Secret) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	// In file order, so a duplicate is reported at its second spelling.
	sort.Slice(names, func(i, j int) bool {
		return v.posOf(joinMapKey(path, names[i])).line < v.posOf(joinMapKey(path, names[j])).line ||
			v.posOf(joinMapKey(path, names[i])).line == v.posOf(joinMapKey(path, names[j])).line && names[i] < names[j]
	})
	seen := make(map[string]string, len(h))
	for _, name := range names {
		p := joinMapKey(path, name)
		lower := strings.ToLower(name)
		switch {
		case !isHTTPToken(name):
			v.errorKey(p, "not a valid header name (RFC 9110 token)")
			continue
		case forbiddenHeaders[lower]:
			v.errorKey(p, "set by the proxy itself; it cannot be injected")
			continue
		}
		if first, dup := seen[lower]; dup {
			v.errorKey(p, fmt.Sprintf("the same header as %s (names are case-insensitive)", first))
			continue
		}
		seen[lower] = p
		val := h[name].Reveal()
		if val == "" {
			v.errorKey(p, "the value must not be empty")
		} else if strings.ContainsAny(val, "\r\n\x00") {
			v.errorKey(p, "the value must not contain CR, LF or NUL")
		}
	}
}

func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func (v validator) rules(appPath string, app *ApplicationConfig) {
	ruleNames := make(map[string]string)
	open := app.Auth == "none"
	for j := range app.Rules {
		r := &app.Rules[j]
		p := joinIndex(appPath+".rules", j)
		if strings.TrimSpace(r.Name) == "" {
			v.errorKey(p+".name", "required")
		} else if first, dup := ruleNames[r.Name]; dup {
			v.errorKey(p+".name", fmt.Sprintf("duplicate rule name in this application (first at line %d)", v.posOf(first).line))
		} else {
			ruleNames[r.Name] = p + ".name"
		}

		v.ruleSubjects(p+".subjects", r.Subjects, open)
		for _, l := range []struct {
			key      string
			patterns []string
		}{
			{"tools", r.Tools}, {"prompts", r.Prompts}, {"resources", r.Resources},
			{"deny_tools", r.DenyTools}, {"deny_prompts", r.DenyPrompts}, {"deny_resources", r.DenyResources},
		} {
			v.patterns(p+"."+l.key, l.patterns)
		}
		for ptr, pat := range r.Arguments {
			ap := joinMapKey(p+".arguments", ptr)
			if msg := checkJSONPointer(ptr); msg != "" {
				v.errorKey(ap, msg)
				continue
			}
			v.pattern(ap, pat, true)
		}
		v.oneOf(p+".mode", r.Mode, "enforce", "audit")
		if r.Approval != nil {
			v.approval(p+".approval", r.Approval, open)
		}
	}
}

func (v validator) ruleSubjects(path string, s SubjectsConfig, open bool) {
	v.names(path+".users", s.Users)
	v.names(path+".groups", s.Groups)
	if open {
		// auth: none has no users to match: nobody logs in.
		if len(s.Users) > 0 {
			v.errorKey(path+".users", "an application with auth: none has no logged-in users; name subjects: {anonymous: true}")
		}
		if len(s.Groups) > 0 {
			v.errorKey(path+".groups", "an application with auth: none has no logged-in users; name subjects: {anonymous: true}")
		}
		if !s.Anonymous && len(s.Users) == 0 && len(s.Groups) == 0 {
			v.errorKey(path, "required: an application with auth: none names subjects: {anonymous: true}")
		}
		return
	}
	if s.Anonymous {
		v.errorKey(path+".anonymous", "only allowed in applications with auth: none")
	}
	if len(s.Users) == 0 && len(s.Groups) == 0 && !s.Anonymous {
		v.errorKey(path, "required: at least one of users or groups")
	}
}

func (v validator) approval(path string, a *ApprovalConfig, open bool) {
	if open {
		v.errorKey(path, "an application with auth: none has no users to request or grant approval")
	}
	if len(a.Levels) == 0 {
		v.errorKey(path+".levels", "required: at least one level")
	}
	for k, l := range a.Levels {
		lp := joinIndex(path+".levels", k)
		ap := lp + ".approvers"
		v.names(ap+".users", l.Approvers.Users)
		v.names(ap+".groups", l.Approvers.Groups)
		if l.Approvers.Anonymous {
			v.errorKey(ap+".anonymous", "an approver must be a user or a group")
		}
		if len(l.Approvers.Users) == 0 && len(l.Approvers.Groups) == 0 {
			v.errorKey(ap, "required: at least one of users or groups")
		}
		switch {
		case l.Count < 1:
			v.errorKey(lp+".count", "must be at least 1")
		case len(l.Approvers.Groups) == 0 && len(l.Approvers.Users) > 0 && l.Count > len(l.Approvers.Users):
			v.errorKey(lp+".count", fmt.Sprintf("needs %d approvals but only %d approver users are named", l.Count, len(l.Approvers.Users)))
		}
	}
}

// patterns checks a list of name patterns; an empty pattern would only match
// an empty name and is a mistake.
func (v validator) patterns(path string, list []string) {
	for i, p := range list {
		v.pattern(joinIndex(path, i), p, false)
	}
}

// pattern checks that p compiles as RE2, anchored as the policy compiler
// anchors it (^(?:p)$). The message shows the offending fragment only when p
// was written literally in the file.
func (v validator) pattern(path, p string, emptyOK bool) {
	if p == "" && !emptyOK {
		v.errorKey(path, "empty pattern: it matches only an empty name")
		return
	}
	pe, done := v.compiled[p]
	if !done {
		pe = compilePattern(p)
		v.compiled[p] = pe
	}
	if pe.msg == "" {
		return
	}
	msg := pe.msg
	if pe.fragment != "" && !v.posOf(path).expanded {
		msg += ": `" + pe.fragment + "`"
	}
	v.errorKey(path, msg)
}

// patternError is why a pattern does not compile; msg is "" when it does.
type patternError struct {
	msg      string
	fragment string // the offending part of the pattern, when known
}

func compilePattern(p string) patternError {
	if _, err := regexp.Compile(p); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return patternError{msg: "invalid RE2 pattern: " + string(se.Code), fragment: se.Expr}
		}
		return patternError{msg: "invalid RE2 pattern"}
	}
	if _, err := regexp.Compile(`^(?:` + p + `)$`); err != nil {
		return patternError{msg: "invalid RE2 pattern once anchored as ^(?:pattern)$"}
	}
	return patternError{}
}

// checkJSONPointer accepts RFC 6901 pointers: "" or "/"-separated tokens in
// which "~" is always followed by "0" or "1" (section 3).
func checkJSONPointer(p string) string {
	if p == "" {
		return ""
	}
	if p[0] != '/' {
		return `not a JSON pointer (RFC 6901): must be empty or start with "/"`
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || p[i+1] != '0' && p[i+1] != '1') {
			return `not a JSON pointer (RFC 6901): "~" must be followed by 0 or 1`
		}
	}
	return ""
}

func (v validator) audit(cfg *Config) {
	a := &cfg.Audit
	v.oneOf("audit.durability", a.Durability, "sync", "async")
	v.oneOf("audit.when_full", a.WhenFull, "reject", "drop_oldest_shipped")
	v.oneOf("audit.arguments", a.Arguments, "full", "redacted", "none")
	v.patterns("audit.redact", a.Redact)
	if a.MaxSpool < minMaxSpool {
		// Pebble's own files (the write-ahead log of the memtables not
		// yet flushed, the manifest) take some 16 MiB whatever is pruned:
		// a smaller limit would stay reached.
		v.errorKey("audit.max_spool", "must be at least 64MiB")
	}
	if a.Ship.URL != "" {
		if msg := checkHTTPURL(a.Ship.URL, urlRules{path: true, query: true}); msg != "" {
			v.errorKey("audit.ship.url", msg)
		}
	}
	v.oneOf("audit.ship.auth", a.Ship.Auth, "none", "client_credentials")
	if a.Ship.Auth == "client_credentials" {
		var missing []string
		for _, key := range []string{"OIDC_TOKEN_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"} {
			if v.env.get(key) == "" {
				missing = append(missing, key)
			}
		}
		if len(missing) > 0 {
			v.errorKey("audit.ship.auth", "client_credentials needs "+strings.Join(missing, ", ")+" in identity.env_file")
		}
	}
	if a.Ship.Batch < 1 {
		v.errorKey("audit.ship.batch", "must be at least 1")
	}
}

func (v validator) observability(o *ObservabilityConfig) {
	v.oneOf("observability.log_format", o.LogFormat, "json", "text")
	v.oneOf("observability.log_level", o.LogLevel, "debug", "info", "warn", "error")
	if o.Pyroscope.ServerAddress != "" {
		if msg := checkHTTPURL(o.Pyroscope.ServerAddress, urlRules{path: true}); msg != "" {
			v.errorKey("observability.pyroscope.server_address", msg)
		}
	}
}
