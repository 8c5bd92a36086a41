package appliance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// sentinel is a secret value; no error or printed Config may contain it.
const sentinel = "s3ntinel-VALUE-7f3a9c"

// fixtureDir prepares a directory for the fixtures' @DIR@: the env file of
// testdata/config/pingone.env with @SECRET@ set to the sentinel, and the
// secret files the fixtures reference.
func fixtureDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	env, err := os.ReadFile("testdata/config/pingone.env")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"pingone.env":    strings.ReplaceAll(string(env), "@SECRET@", sentinel),
		"pingone.key":    sentinel + "\n",
		"alice.token":    "alice-token\n",
		"sentinel":       sentinel + "\n",
		"sentinel-crlf":  sentinel + "\r\nsecond line",
		"sentinel-regex": "(" + sentinel + "\n",
	}
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	return dir
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testLoader is the production loader with the default env file and TLS
// pair pointed at files that do not exist, so that tests do not depend on
// the machine's /var/lib/procyon.
func testLoader(t *testing.T) loader {
	l := newLoader()
	absent := filepath.Join(t.TempDir(), "absent")
	l.defaultEnvFile = absent + "/pingone.env"
	l.defaultTLSCert = absent + "/cert.pem"
	l.defaultTLSKey = absent + "/key.pem"
	return l
}

// parseFixture loads testdata/config/name with @DIR@ replaced by dir.
func parseFixture(t *testing.T, l loader, dir, name string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/config", name))
	if err != nil {
		t.Fatal(err)
	}
	return l.parse("testdata/config/"+name, []byte(strings.ReplaceAll(string(data), "@DIR@", dir)))
}

// errorLines returns the lines of a ConfigErrors, failing on any other error.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce ConfigErrors
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, want ConfigErrors: %v", err, err)
	}
	if len(ce) == 0 {
		t.Fatal("empty ConfigErrors returned as an error")
	}
	return strings.Split(ce.Error(), "\n")
}

var secretComparer = cmp.Comparer(func(a, b Secret) bool { return a.Reveal() == b.Reveal() })

func TestParseConfigValidFull(t *testing.T) {
	dir := fixtureDir(t)
	cfg, err := parseFixture(t, testLoader(t), dir, "valid-full.yaml")
	if err != nil {
		t.Fatalf("got error:\n%v\nwant none", err)
	}
	want := &Config{
		Server: ServerConfig{
			URL:             "https://mcpgw.example.com", // SERVER_URL in the env file (TestIdentityEnvFile: it wins)
			Listen:          ":443",
			TLS:             TLSConfig{Cert: dir + "/mcpgw-cert.pem", Key: dir + "/mcpgw-key.pem"},
			Admin:           AdminConfig{Listen: "127.0.0.1:9900", TokenFile: dir + "/admin.token"},
			DataDir:         dir + "/data",
			MaxBody:         4 << 20,
			UpstreamTimeout: 60 * time.Second,
			KeepAlive:       25 * time.Second,
			ShutdownTimeout: 20 * time.Second,
		},
		Identity: IdentityConfig{
			EnvFile:     dir + "/pingone.env",
			Mode:        "broker",
			GroupsClaim: "groups",
			TokenTTL:    time.Hour,
			DevUsers:    []DevUser{{Token: NewSecret("alice-token"), User: "alice@example.com", Groups: []string{"engineers"}}},
			Env: map[string]Secret{
				"OIDC_CLIENT_ID":     NewSecret("gateway-client"),
				"OIDC_CLIENT_SECRET": NewSecret(sentinel),
				"OIDC_AUTH_URL":      NewSecret("https://auth.pingone.example/as/authorize"),
				"OIDC_TOKEN_URL":     NewSecret("https://auth.pingone.example/as/token"),
				"OIDC_USER_URL":      NewSecret("https://auth.pingone.example/as/userinfo"),
				"OIDC_SCOPES":        NewSecret("openid profile email"),
				"SERVER_URL":         NewSecret("https://mcpgw.example.com"),
			},
		},
		Roles: RolesConfig{AdminGroups: []string{"mcpgw-admins"}, AuditorGroups: []string{"auditors"}},
		Applications: []ApplicationConfig{{
			Name:           "mcp-pingone-admin",
			FrontendURL:    "https://mcpgw.example.com/mcp",
			UpstreamURL:    "https://mcp-server-internal:8080/mcp",
			Headers:        map[string]Secret{"X-Api-Key": NewSecret(sentinel)},
			Auth:           "oauth",
			AllowedOrigins: []string{},
			Visibility:     "permitted",
			Rules: []RuleConfig{
				{
					Name:      "readers",
					Subjects:  SubjectsConfig{Groups: []string{"engineers"}},
					Tools:     []string{"list_.*", "get_.*"},
					Prompts:   []string{".*"},
					Resources: []string{"pingone://env/dev/.*"},
					DenyTools: []string{"get_secret.*"},
					Arguments: map[string]string{"/environment": "dev|staging"},
					Mode:      "enforce",
				},
				{
					Name:     "prod-writes",
					Subjects: SubjectsConfig{Groups: []string{"sre"}},
					Tools:    []string{"update_.*", "delete_.*"},
					Mode:     "enforce",
					Approval: &ApprovalConfig{
						Levels: []ApprovalLevel{
							{Approvers: SubjectsConfig{Groups: []string{"secops"}}, Count: 1},
							{Approvers: SubjectsConfig{Users: []string{"cab-lead@example.com"}}, Count: 1},
						},
						GrantTTL:   30 * time.Minute,
						RequestTTL: 24 * time.Hour,
					},
				},
			},
		}},
		Audit: AuditConfig{
			Dir:        dir + "/audit",
			Durability: "sync",
			MaxSpool:   10 << 30,
			WhenFull:   "reject",
			Arguments:  "full",
			Redact:     []string{"(?i)pass(word)?", "(?i)secret", "(?i)token"},
			Retention:  720 * time.Hour,
			Ship:       ShipConfig{Auth: "client_credentials", Batch: 1000, Interval: time.Second},
		},
		Observability: ObservabilityConfig{
			LogFormat: "json",
			LogLevel:  "info",
			Pyroscope: PyroscopeConfig{ApplicationName: "mcpgw"},
		},
		Path: "testdata/config/valid-full.yaml",
		refs: []string{"${file:" + dir + "/alice.token}", "${file:" + dir + "/pingone.key}"},
	}
	if diff := cmp.Diff(want, cfg, secretComparer, cmp.AllowUnexported(Config{})); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseFixture(t, testLoader(t), fixtureDir(t), "minimal.yaml")
	if err != nil {
		t.Fatalf("got error:\n%v\nwant none", err)
	}
	want := &Config{
		Server: ServerConfig{
			URL:             "http://localhost:8080",
			Listen:          ":8080",
			Admin:           AdminConfig{Listen: "127.0.0.1:9900", TokenFile: "/var/lib/mcpgw/admin.token"},
			DataDir:         "/var/lib/mcpgw",
			MaxBody:         4 << 20,
			UpstreamTimeout: 60 * time.Second,
			KeepAlive:       25 * time.Second,
			ShutdownTimeout: 25 * time.Second,
		},
		Identity: IdentityConfig{Mode: "broker", GroupsClaim: "groups", TokenTTL: time.Hour},
		Applications: []ApplicationConfig{{
			Name:        "open-demo",
			FrontendURL: "http://localhost:8080/mcp",
			UpstreamURL: "http://127.0.0.1:3001/mcp",
			Auth:        "none",
			Visibility:  "permitted",
			Rules: []RuleConfig{{
				Name:     "everyone",
				Subjects: SubjectsConfig{Anonymous: true},
				Tools:    []string{".*"},
				Mode:     "enforce",
			}},
		}},
		Audit: AuditConfig{
			Dir:        "/var/lib/mcpgw/audit",
			Durability: "sync",
			MaxSpool:   10 << 30,
			WhenFull:   "reject",
			Arguments:  "full",
			Retention:  720 * time.Hour,
			Ship:       ShipConfig{Auth: "none", Batch: 1000, Interval: time.Second},
		},
		Observability: ObservabilityConfig{LogFormat: "json", LogLevel: "info", Pyroscope: PyroscopeConfig{ApplicationName: "mcpgw"}},
		Path:          "testdata/config/minimal.yaml",
	}
	if diff := cmp.Diff(want, cfg, secretComparer, cmp.AllowUnexported(Config{})); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Setenv("MCPGW_TEST_SENTINEL", sentinel)
	tests := []struct {
		fixture string
		want    []string // @DIR@ is the fixture directory
	}{
		{"unknown-key.yaml", []string{
			"testdata/config/unknown-key.yaml:1: servr: unknown key",
			"testdata/config/unknown-key.yaml:5: identity.dev_users[0].grops: unknown key",
			"testdata/config/unknown-key.yaml:10: applications[0].rulez: unknown key",
		}},
		{"bad-regex.yaml", []string{
			"testdata/config/bad-regex.yaml:12: applications[0].rules[0].tools[1]: invalid RE2 pattern: missing closing ): `(get`",
			"testdata/config/bad-regex.yaml:13: applications[0].rules[0].deny_prompts[0]: invalid RE2 pattern: invalid character class range: `z-a`",
			`testdata/config/bad-regex.yaml:15: applications[0].rules[0].arguments["/environment"]: invalid RE2 pattern: missing argument to repetition operator: ` + "`*`",
			`testdata/config/bad-regex.yaml:16: applications[0].rules[0].arguments.environment: not a JSON pointer (RFC 6901): must be empty or start with "/"`,
			`testdata/config/bad-regex.yaml:17: applications[0].rules[0].arguments["/a~2b"]: not a JSON pointer (RFC 6901): "~" must be followed by 0 or 1`,
			"testdata/config/bad-regex.yaml:19: audit.redact[0]: invalid RE2 pattern: missing closing ): `(?i)pass(word`",
			"testdata/config/bad-regex.yaml:19: audit.redact[1]: empty pattern: it matches only an empty name",
		}},
		{"missing-refs.yaml", []string{
			"testdata/config/missing-refs.yaml:3: identity.dev_users[0].token: ${env:MCPGW_TEST_UNSET}: environment variable is not set",
			"testdata/config/missing-refs.yaml:10: applications[0].headers.X-Api-Key: ${file:@DIR@/missing.key}: cannot read: no such file or directory",
			"testdata/config/missing-refs.yaml:11: applications[0].headers.X-Two: ${file:relative.key}: the path must be absolute",
			`testdata/config/missing-refs.yaml:11: applications[0].headers.X-Two: ${vault:x}: unknown reference (want ${env:NAME} or ${file:/path}; write "$${" for a literal "${")`,
			`testdata/config/missing-refs.yaml:12: applications[0].headers.X-Three: unterminated reference: "${" without "}" (write "$${" for a literal "${")`,
		}},
		{"types.yaml", []string{
			"testdata/config/types.yaml:2: server.listen: must be a string, got a list",
			"testdata/config/types.yaml:4: server.upstream_timeout: must be a duration such as 90s, 15m or 1h30m: a number needs a unit",
			"testdata/config/types.yaml:5: server.keepalive: must be a duration such as 90s, 15m or 1h30m",
			"testdata/config/types.yaml:6: server.data_dir: must be a string, got a mapping",
			"testdata/config/types.yaml:8: identity.token_ttl: must be a positive duration",
			"testdata/config/types.yaml:9: identity.allow_dev_users: must be true or false",
			"testdata/config/types.yaml:10: identity.dev_users: must be a list, got a mapping",
			"testdata/config/types.yaml:18: applications[0].rules[0].subjects: required: an application with auth: none names subjects: {anonymous: true}",
			"testdata/config/types.yaml:18: applications[0].rules[0].subjects.anonymous: must be true or false",
			"testdata/config/types.yaml:19: applications[0].rules[0].tools: must be a list, got a string",
			"testdata/config/types.yaml:21: audit.max_spool: invalid size: must not be negative",
			"testdata/config/types.yaml:23: audit.ship.batch: must be an integer",
			"testdata/config/types.yaml:24: audit.ship.interval: must be a duration such as 90s, 15m or 1h30m",
		}},
		{"many-errors.yaml", []string{
			"testdata/config/many-errors.yaml:2: server.url: must be an absolute http or https URL",
			"testdata/config/many-errors.yaml:4: server.tls: cert and key go together: set both or neither",
			"testdata/config/many-errors.yaml:5: server.admin.listen: must differ from server.listen: the admin API never shares the frontend listener",
			"testdata/config/many-errors.yaml:7: identity.mode: must be one of broker, resource",
			"testdata/config/many-errors.yaml:9: identity.dev_users[0].token: must be at least 8 characters",
			"testdata/config/many-errors.yaml:10: identity.dev_users[1].user: required",
			"testdata/config/many-errors.yaml:11: identity.dev_users[2].token: the same token as identity.dev_users[1]",
			"testdata/config/many-errors.yaml:13: applications[0].name: must match [a-z0-9][a-z0-9._-]*",
			"testdata/config/many-errors.yaml:15: applications[0].upstream_url: must not carry credentials; inject them with headers",
			"testdata/config/many-errors.yaml:16: applications[0].auth: must be one of oauth, none",
			"testdata/config/many-errors.yaml:17: applications[0].visibility: must be one of permitted, all",
			"testdata/config/many-errors.yaml:18: applications[0].allowed_origins[0]: must be an origin: scheme://host[:port], without path, query or trailing slash",
			"testdata/config/many-errors.yaml:20: applications[0].headers.Host: set by the proxy itself; it cannot be injected",
			`testdata/config/many-errors.yaml:22: applications[0].headers["Bad Header"]: not a valid header name (RFC 9110 token)`,
			"testdata/config/many-errors.yaml:24: applications[0].headers.X-Api-Key: the same header as applications[0].headers.x-api-key (names are case-insensitive)",
			"testdata/config/many-errors.yaml:27: applications[0].rules[0].subjects: required: at least one of users or groups",
			"testdata/config/many-errors.yaml:28: applications[0].rules[0].mode: must be one of enforce, audit",
			"testdata/config/many-errors.yaml:29: applications[0].rules[1].name: duplicate rule name in this application (first at line 26)",
			"testdata/config/many-errors.yaml:30: applications[0].rules[1].subjects.anonymous: only allowed in applications with auth: none",
			"testdata/config/many-errors.yaml:33: applications[0].rules[1].approval.levels[0].count: needs 2 approvals but only 1 approver users are named",
			"testdata/config/many-errors.yaml:34: applications[0].rules[1].approval.levels[1].approvers: required: at least one of users or groups",
			"testdata/config/many-errors.yaml:34: applications[0].rules[1].approval.levels[1].count: must be at least 1",
			"testdata/config/many-errors.yaml:36: applications[1].frontend_url: the same host and path as applications[0] (line 14)",
			"testdata/config/many-errors.yaml:37: applications[1].upstream_url: must be an absolute http or https URL",
			"testdata/config/many-errors.yaml:38: applications[2].name: duplicate application name (first at line 35)",
			"testdata/config/many-errors.yaml:39: applications[2].frontend_url: must not have a fragment",
			"testdata/config/many-errors.yaml:44: applications[2].rules[0].subjects.groups: an application with auth: none has no logged-in users; name subjects: {anonymous: true}",
			"testdata/config/many-errors.yaml:45: applications[2].rules[0].approval: an application with auth: none has no users to request or grant approval",
			"testdata/config/many-errors.yaml:45: applications[2].rules[0].approval.levels: required: at least one level",
			"testdata/config/many-errors.yaml:47: audit.durability: must be one of sync, async",
			"testdata/config/many-errors.yaml:48: audit.when_full: must be one of reject, drop_oldest_shipped",
			"testdata/config/many-errors.yaml:49: audit.arguments: must be one of full, redacted, none",
			"testdata/config/many-errors.yaml:50: audit.ship.auth: must be one of none, client_credentials",
			"testdata/config/many-errors.yaml:50: audit.ship.batch: must be at least 1",
			"testdata/config/many-errors.yaml:52: observability.log_format: must be one of json, text",
			"testdata/config/many-errors.yaml:53: observability.log_level: must be one of debug, info, warn, error",
		}},
		{"no-identity.yaml", []string{
			"testdata/config/no-identity.yaml:2: applications[0]: application admin-api needs identity: configure identity.env_file or dev_users or set auth: none",
		}},
		{"syntax.yaml", []string{
			"testdata/config/syntax.yaml:2: invalid YAML: did not find expected key",
		}},
		{"two-docs.yaml", []string{
			"testdata/config/two-docs.yaml:2: a second YAML document; the config is one document",
		}},
		{"duplicate-key.yaml", []string{
			"testdata/config/duplicate-key.yaml:3: server.listen: duplicate key (first at line 2)",
			"testdata/config/duplicate-key.yaml:9: applications[0].headers.X-A: duplicate key (first at line 9)",
		}},
		{"alias-bomb.yaml", []string{
			"testdata/config/alias-bomb.yaml:9: applications[59].rules[17].tools[60]: the document expands to more than 262144 nodes (aliases?)",
		}},
		{"secrets.yaml", []string{
			"testdata/config/secrets.yaml:4: server.listen: must be host:port or :port",
			"testdata/config/secrets.yaml:5: server.max_body: " + errSizeSyntax,
			"testdata/config/secrets.yaml:6: server.keepalive: must be a duration such as 90s, 15m or 1h30m",
			"testdata/config/secrets.yaml:8: identity.mode: must be one of broker, resource",
			"testdata/config/secrets.yaml:9: identity.token_ttl: must be a duration such as 90s, 15m or 1h30m",
			"testdata/config/secrets.yaml:12: identity.dev_users[1].token: the same token as identity.dev_users[0]",
			"testdata/config/secrets.yaml:15: applications[0].frontend_url: must be an absolute http or https URL",
			"testdata/config/secrets.yaml:16: applications[0].upstream_url: must not have a query",
			"testdata/config/secrets.yaml:18: applications[0].headers.X-Api-Key: the value must not contain CR, LF or NUL",
			"testdata/config/secrets.yaml:22: applications[0].rules[0].tools[0]: invalid RE2 pattern: missing closing )",
			`testdata/config/secrets.yaml:23: applications[0].rules[0].arguments["/a"]: invalid RE2 pattern: missing closing )`,
			"testdata/config/secrets.yaml:25: applications[0].rules[0].approval.levels[0].count: must be an integer in range",
			"testdata/config/secrets.yaml:27: audit.ship.auth: client_credentials needs OIDC_TOKEN_URL, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET in identity.env_file",
			"testdata/config/secrets.yaml:27: audit.ship.url: must be an absolute http or https URL",
			"testdata/config/secrets.yaml:28: audit.redact[0]: invalid RE2 pattern: missing closing )",
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.fixture, ".yaml"), func(t *testing.T) {
			dir := fixtureDir(t)
			cfg, err := parseFixture(t, testLoader(t), dir, tt.fixture)
			if cfg != nil {
				t.Errorf("got a Config with the errors, want nil")
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "@DIR@", dir)
			}
			if diff := cmp.Diff(want, errorLines(t, err)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			assertNoSentinel(t, fmt.Sprintf("%v %+v %#v %s", err, err, err, err))
		})
	}
}

func assertNoSentinel(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, sentinel) {
		t.Errorf("secret value leaked into output:\n%s", out)
	}
}

// TestSecretsNeverPrinted loads a valid config whose header and env file
// hold the sentinel and prints it every way a caller might.
func TestSecretsNeverPrinted(t *testing.T) {
	cfg, err := parseFixture(t, testLoader(t), fixtureDir(t), "valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Applications[0].Headers["X-Api-Key"].Reveal(); got != sentinel {
		t.Fatalf("header: got %q, want the sentinel", got)
	}
	assertNoSentinel(t, fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg))
	assertNoSentinel(t, fmt.Sprintf("%v %+v %#v", *cfg, *cfg, *cfg))
	s := cfg.Identity.Env["OIDC_CLIENT_SECRET"]
	assertNoSentinel(t, fmt.Sprintf("%v %+v %#v %s %q %x %X %d %10.3v", s, s, s, s, s, s, s, s, s))
	assertNoSentinel(t, fmt.Sprint(s, &s, []Secret{s}, map[string]Secret{"k": s}))

	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSentinel(t, string(js))
	ys, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSentinel(t, string(ys))
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("config", "secret", s, "cfg", cfg.Identity)
	}
	assertNoSentinel(t, buf.String())
	if !strings.Contains(buf.String(), "[redacted]") {
		t.Errorf("slog output %q: want [redacted]", buf.String())
	}
}

// loadInline parses src as inline.yaml with loader l. When wantErr is set
// (lines joined by "\n") it checks that the errors are exactly those and
// returns nil; otherwise it fails on any error.
func loadInline(t *testing.T, l loader, src, wantErr string) *Config {
	t.Helper()
	cfg, err := l.parse("inline.yaml", []byte(src))
	assertNoSentinel(t, fmt.Sprintf("%v %+v %#v", err, err, err))
	if wantErr != "" {
		if diff := cmp.Diff(strings.Split(wantErr, "\n"), errorLines(t, err)); diff != "" {
			t.Errorf("errors mismatch (-want +got):\n%s", diff)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("got error:\n%v\nwant none", err)
	}
	return cfg
}

// openApp is a valid application for inline cases to append to.
const openApp = `
applications:
  - name: app
    frontend_url: https://gw.example.com/mcp
    upstream_url: https://backend.example.com/mcp
    auth: none
`

// TestDurationsAndSizes decodes server.upstream_timeout (a time.Duration)
// and server.max_body (a Size) from the values as written.
func TestDurationsAndSizes(t *testing.T) {
	const (
		dur  = "inline.yaml:2: server.upstream_timeout: "
		size = "inline.yaml:2: server.max_body: "
	)
	tests := []struct {
		name, key, value string
		want             int64
		wantErr          string
	}{
		{"go syntax", "upstream_timeout", "90s", int64(90 * time.Second), ""},
		{"compound", "upstream_timeout", "1h30m", int64(90 * time.Minute), ""},
		{"quoted", "upstream_timeout", `"2m"`, int64(2 * time.Minute), ""},
		{"bare number", "upstream_timeout", "60", 0, dur + "must be a duration such as 90s, 15m or 1h30m: a number needs a unit"},
		{"float", "upstream_timeout", "1.5", 0, dur + "must be a duration such as 90s, 15m or 1h30m: a number needs a unit"},
		{"zero", "upstream_timeout", "0s", 0, dur + "must be a positive duration"},
		{"negative", "upstream_timeout", "-1m", 0, dur + "must be a positive duration"},
		{"days", "upstream_timeout", "1d", 0, dur + "must be a duration such as 90s, 15m or 1h30m"},
		{"list", "upstream_timeout", "[1s]", 0, dur + "must be a duration such as 90s, 15m or 1h30m, got a list"},
		{"bool", "upstream_timeout", "true", 0, dur + "must be a duration such as 90s, 15m or 1h30m"},
		{"integer bytes", "max_body", "1048576", 1 << 20, ""},
		{"binary unit", "max_body", "16MiB", 16 << 20, ""},
		{"decimal unit", "max_body", "16MB", 16_000_000, ""},
		{"zero size", "max_body", "0", 0, size + "must be at least 1KiB"},
		{"too small", "max_body", "100B", 0, size + "must be at least 1KiB"},
		{"negative size", "max_body", "-1", 0, size + "invalid size: must not be negative"},
		{"fraction", "max_body", "0.5GiB", 0, size + errSizeSyntax},
		{"float size", "max_body", "1.5", 0, size + "must be a size such as 4MiB, got a number"},
		{"mapping", "max_body", "{mib: 4}", 0, size + "must be a size such as 4MiB, got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadInline(t, testLoader(t), "server:\n  "+tt.key+": "+tt.value+"\n", tt.wantErr)
			if cfg == nil {
				return
			}
			got := int64(cfg.Server.MaxBody)
			if tt.key == "upstream_timeout" {
				got = int64(cfg.Server.UpstreamTimeout)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"4194304", 4 << 20, ""},
		{"512B", 512, ""},
		{"4KiB", 4 << 10, ""},
		{"4MiB", 4 << 20, ""},
		{"4 MiB", 4 << 20, ""},
		{"4mib", 4 << 20, ""},
		{"10GiB", 10 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"4KB", 4000, ""},
		{"4MB", 4_000_000, ""},
		{"10GB", 10_000_000_000, ""},
		{"1TB", 1_000_000_000_000, ""},
		{"8388607TiB", 8388607 << 40, ""},
		{"8388608TiB", 0, "invalid size: larger than 9223372036854775807 bytes"},
		{"9223372036854775808", 0, "invalid size: larger than 9223372036854775807 bytes"},
		{"99999999999999999999999", 0, "invalid size: larger than 9223372036854775807 bytes"},
		{"-1", 0, "invalid size: must not be negative"},
		{"-4MiB", 0, "invalid size: must not be negative"},
		{"+4MiB", 0, errSizeSyntax},
		{"1.5GiB", 0, errSizeSyntax},
		{"4 M", 0, errSizeSyntax},
		{"4  MiB", 0, errSizeSyntax},
		{"MiB", 0, errSizeSyntax},
		{"", 0, errSizeSyntax},
		{"0x10", 0, errSizeSyntax},
		{"1_000", 0, errSizeSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tt.want || gotErr != tt.wantErr {
				t.Errorf("ParseSize(%q) = %d, %q; want %d, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	for in, want := range map[Size]string{
		0: "0B", 512: "512B", 1536: "1536B", 4 << 10: "4KiB", 4 << 20: "4MiB",
		10 << 30: "10GiB", 3 << 40: "3TiB", 4_000_000: "4000000B",
	} {
		if got := in.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(in), got, want)
		}
	}
}

func TestExpansion(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	oneNL := write("one-newline", "value\n")
	twoNL := write("two-newlines", "value\n\n")
	crlf := write("crlf", "value\r\n")
	empty := write("empty", "\n")
	t.Setenv("MCPGW_TEST_HOST", "backend.example.com")
	t.Setenv("MCPGW_TEST_BATCH", "250")
	t.Setenv("MCPGW_TEST_BOOL", "true")
	t.Setenv("MCPGW_TEST_EMPTY", "")

	tests := []struct {
		name    string
		value   string // the X-Test header's value as written
		want    string
		wantErr string
	}{
		{"no reference", `"plain $ and $$ and {}"`, "plain $ and $$ and {}", ""},
		{"env", `"${env:MCPGW_TEST_HOST}"`, "backend.example.com", ""},
		{"two references", `"${env:MCPGW_TEST_HOST}/${env:MCPGW_TEST_BATCH}"`, "backend.example.com/250", ""},
		{"inside text", `"Bearer ${file:` + oneNL + `}"`, "Bearer value", ""},
		{"escaped", `"$${env:MCPGW_TEST_HOST} is ${env:MCPGW_TEST_HOST}"`, "${env:MCPGW_TEST_HOST} is backend.example.com", ""},
		{"one newline trimmed", `"${file:` + oneNL + `}"`, "value", ""},
		{"only one newline trimmed", `"${file:` + twoNL + `}"`, "", "the value must not contain CR, LF or NUL"},
		{"crlf trimmed", `"${file:` + crlf + `}"`, "value", ""},
		{"empty env", `"${env:MCPGW_TEST_EMPTY}"`, "", "${env:MCPGW_TEST_EMPTY}: environment variable is empty"},
		{"empty file", `"${file:` + empty + `}"`, "", "${file:" + empty + "}: file is empty"},
		{"bad env name", `"${env:1X}"`, "", "${env:1X}: invalid variable name (want [A-Za-z_][A-Za-z0-9_]*)"},
		{"directory", `"${file:` + dir + `}"`, "", "${file:" + dir + "}: cannot read: not a regular file"},
		{"device", `"${file:/dev/zero}"`, "", "${file:/dev/zero}: cannot read: not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := openApp + "    headers:\n      X-Test: " + tt.value + "\n"
			wantErr := tt.wantErr
			if wantErr != "" {
				wantErr = "inline.yaml:8: applications[0].headers.X-Test: " + wantErr
			}
			cfg := loadInline(t, testLoader(t), src, wantErr)
			if cfg == nil {
				return
			}
			if got := cfg.Applications[0].Headers["X-Test"].Reveal(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("non-string fields", func(t *testing.T) {
		src := openApp + "    upstream_url: https://${env:MCPGW_TEST_HOST}/mcp\n" +
			"audit: {ship: {batch: \"${env:MCPGW_TEST_BATCH}\"}}\n" +
			"identity: {allow_dev_users: \"${env:MCPGW_TEST_BOOL}\"}\n"
		src = strings.Replace(src, "    upstream_url: https://backend.example.com/mcp\n", "", 1)
		cfg := loadInline(t, testLoader(t), src, "")
		if got, want := cfg.Applications[0].UpstreamURL, "https://backend.example.com/mcp"; got != want {
			t.Errorf("upstream_url: got %q, want %q", got, want)
		}
		if got := cfg.Audit.Ship.Batch; got != 250 {
			t.Errorf("batch: got %d, want 250", got)
		}
		if !cfg.Identity.AllowDevUsers {
			t.Errorf("allow_dev_users: got false, want true")
		}
	})

	t.Run("literal string is not a number", func(t *testing.T) {
		loadInline(t, testLoader(t), "audit: {ship: {batch: \"250\"}}\n", "inline.yaml:1: audit.ship.batch: must be an integer")
	})

	t.Run("keys are not expanded", func(t *testing.T) {
		loadInline(t, testLoader(t), "${env:MCPGW_TEST_HOST}: 1\n", `inline.yaml:1: ["${env:MCPGW_TEST_HOST}"]: unknown key`)
	})
}

func TestIdentityEnvFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	good := write("good.env", "OIDC_CLIENT_ID=client\nOIDC_AUTH_URL=https://idp.example/authorize\nOIDC_TOKEN_URL=https://idp.example/token\nSERVER_URL=https://from-env.example.com\n")
	badURL := write("bad-url.env", "OIDC_CLIENT_ID=client\nOIDC_AUTH_URL=https://idp.example/authorize\nOIDC_TOKEN_URL=https://idp.example/token\n\nSERVER_URL=not a url "+sentinel+"\n")
	noURLs := write("no-urls.env", "OIDC_CLIENT_ID=client\n")
	malformed := write("malformed.env", "# PingOne\nOIDC_CLIENT_ID=client\n"+sentinel+"\nOIDC_CLIENT_SECRET=\"unterminated "+sentinel+"\n")
	const oauthApp = `
applications:
  - name: app
    frontend_url: https://from-env.example.com/mcp
    upstream_url: https://backend.example.com/mcp
    rules: [{name: r, subjects: {groups: [g]}, tools: [".*"]}]
`
	tests := []struct {
		name       string
		defaultEnv string // the loader's default env file
		src        string
		wantURL    string
		wantEnv    string // Identity.EnvFile after load
		wantErrs   []string
	}{
		{
			name:       "default missing is fine",
			defaultEnv: filepath.Join(dir, "absent.env"),
			src:        "server: {url: https://cfg.example.com}\n",
			wantURL:    "https://cfg.example.com",
		},
		{
			name:       "default present is read and SERVER_URL wins",
			defaultEnv: good,
			src:        "server: {url: https://cfg.example.com}\n" + oauthApp,
			wantURL:    "https://from-env.example.com",
			wantEnv:    good,
		},
		{
			name:       "explicit empty reads none",
			defaultEnv: good,
			src:        "identity: {env_file: \"\", dev_users: [{token: alice-token, user: alice}]}\n",
			wantURL:    "http://localhost:8080",
		},
		{
			name:       "explicit path",
			defaultEnv: filepath.Join(dir, "absent.env"),
			src:        "identity: {env_file: " + good + "}\n" + oauthApp,
			wantURL:    "https://from-env.example.com",
			wantEnv:    good,
		},
		{
			name:       "explicit missing is an error",
			defaultEnv: good,
			src:        "identity:\n  env_file: " + dir + "/missing.env\n" + oauthApp,
			wantErrs: []string{
				"inline.yaml:2: identity.env_file: cannot read: no such file or directory",
				"inline.yaml:5: applications[0]: application app needs identity: configure identity.env_file or dev_users or set auth: none",
			},
		},
		{
			name:       "default unreadable is an error",
			defaultEnv: dir,
			src:        "{}\n",
			wantErrs:   []string{"inline.yaml:1: identity.env_file: cannot read the default env file " + dir + ": not a regular file"},
		},
		{
			name:       "bad SERVER_URL at its line",
			defaultEnv: badURL,
			src:        "server: {url: https://cfg.example.com}\n",
			wantErrs:   []string{badURL + ":5: SERVER_URL: must be an absolute http or https URL"},
		},
		{
			name:       "client without endpoints",
			defaultEnv: noURLs,
			src:        "{}\n",
			wantErrs: []string{
				noURLs + ": OIDC_AUTH_URL: required with OIDC_CLIENT_ID unless identity.issuer is set",
				noURLs + ": OIDC_TOKEN_URL: required with OIDC_CLIENT_ID unless identity.issuer is set",
			},
		},
		{
			name:       "client with issuer",
			defaultEnv: noURLs,
			src:        "server: {url: https://from-env.example.com}\nidentity: {issuer: https://idp.example/as}\n" + oauthApp,
			wantURL:    "https://from-env.example.com",
			wantEnv:    noURLs,
		},
		{
			name:       "broker needs a written server URL",
			defaultEnv: noURLs,
			src:        "identity: {issuer: https://idp.example/as}\n" + oauthApp,
			wantErrs: []string{"inline.yaml:1: server.url: required in broker mode (or SERVER_URL in identity.env_file): " +
				"it is the OAuth issuer and the base of the login callback <url>/oauth/callback registered at the identity provider"},
		},
		{
			name:       "broker server URL on another host",
			defaultEnv: noURLs,
			src:        "server: {url: https://other.example.com}\nidentity: {issuer: https://idp.example/as}\n" + oauthApp,
			wantErrs: []string{"inline.yaml:1: server.url: must have the scheme, host and port of an application with auth: oauth: " +
				"the OAuth endpoints and the login callback are served only on the applications' hosts"},
		},
		{
			name:       "broker server URL with a path",
			defaultEnv: noURLs,
			src:        "server: {url: https://from-env.example.com/gw}\nidentity: {issuer: https://idp.example/as}\n" + oauthApp,
			wantErrs:   []string{"inline.yaml:1: server.url: must not have a path in broker mode: the OAuth endpoints are served at the root of the host"},
		},
		{
			name:       "broker SERVER_URL on another port is reported in the env file",
			defaultEnv: good,
			src:        strings.Replace(oauthApp, "from-env.example.com", "from-env.example.com:8443", 1),
			wantErrs: []string{good + ":4: SERVER_URL: must have the scheme, host and port of an application with auth: oauth: " +
				"the OAuth endpoints and the login callback are served only on the applications' hosts"},
		},
		{
			name:       "broker without client: dev users only",
			defaultEnv: filepath.Join(dir, "absent.env"),
			src:        "identity: {dev_users: [{token: alice-token, user: alice}]}\n" + oauthApp,
			wantURL:    "http://localhost:8080",
		},
		{
			name:       "resource mode derives the issuer from OIDC_AUTH_URL",
			defaultEnv: good,
			src:        "identity: {mode: resource}\n" + oauthApp,
			wantURL:    "https://from-env.example.com",
			wantEnv:    good,
		},
		{
			name:       "resource mode without an issuer",
			defaultEnv: filepath.Join(dir, "absent.env"),
			src:        "identity: {mode: resource, dev_users: [{token: alice-token, user: alice}]}\n" + oauthApp,
			wantErrs: []string{"inline.yaml:1: identity.mode: resource mode verifies the identity provider's JWTs: " +
				"set identity.issuer, or OIDC_AUTH_URL in identity.env_file to derive it"},
		},
		{
			name:       "malformed lines",
			defaultEnv: malformed,
			src:        "{}\n",
			wantErrs: []string{
				malformed + ":3: expected KEY=VALUE",
				malformed + ":4: OIDC_CLIENT_SECRET: unterminated double quote (values are single-line)",
				malformed + ": OIDC_AUTH_URL: required with OIDC_CLIENT_ID unless identity.issuer is set",
				malformed + ": OIDC_TOKEN_URL: required with OIDC_CLIENT_ID unless identity.issuer is set",
			},
		},
		{
			name:       "shipping needs client credentials",
			defaultEnv: good,
			src:        "audit:\n  ship: {url: https://ingest.example.com}\n",
			wantErrs:   []string{"inline.yaml:2: audit.ship.auth: client_credentials needs OIDC_CLIENT_SECRET in identity.env_file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLoader(t)
			l.defaultEnvFile = tt.defaultEnv
			cfg := loadInline(t, l, tt.src, strings.Join(tt.wantErrs, "\n"))
			if cfg == nil {
				return
			}
			if cfg.Server.URL != tt.wantURL {
				t.Errorf("server.url: got %q, want %q", cfg.Server.URL, tt.wantURL)
			}
			if cfg.Identity.EnvFile != tt.wantEnv {
				t.Errorf("identity.env_file: got %q, want %q", cfg.Identity.EnvFile, tt.wantEnv)
			}
			if tt.wantEnv == "" && cfg.Identity.Env != nil {
				t.Errorf("identity.Env: got %d keys, want none", len(cfg.Identity.Env))
			}
		})
	}
}

func TestServerDefaults(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeFile(t, dir, "cert.pem", "pem"), writeFile(t, dir, "key.pem", "pem")
	tests := []struct {
		name        string
		defaultPair bool
		src         string
		wantListen  string
		wantURL     string
		wantTLS     TLSConfig
	}{
		{"plain", false, "{}", ":8080", "http://localhost:8080", TLSConfig{}},
		{"explicit tls", false, "server: {tls: {cert: /c.pem, key: /k.pem}}", ":443", "https://localhost", TLSConfig{Cert: "/c.pem", Key: "/k.pem"}},
		{"tls on another port", false, "server: {listen: \"127.0.0.1:8443\", tls: {cert: /c.pem, key: /k.pem}}", "127.0.0.1:8443", "https://localhost:8443", TLSConfig{Cert: "/c.pem", Key: "/k.pem"}},
		{"plain on port 80", false, "server: {listen: \":80\"}", ":80", "http://localhost", TLSConfig{}},
		{"default pair present", true, "{}", ":443", "https://localhost", TLSConfig{Cert: cert, Key: key}},
		{"default pair turned off", true, "server: {tls: {}}", ":8080", "http://localhost:8080", TLSConfig{}},
		{"explicit url kept", true, "server: {url: https://gw.example.com/base}", ":443", "https://gw.example.com/base", TLSConfig{Cert: cert, Key: key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLoader(t)
			if tt.defaultPair {
				l.defaultTLSCert, l.defaultTLSKey = cert, key
			}
			s := loadInline(t, l, tt.src, "").Server
			if s.Listen != tt.wantListen || s.URL != tt.wantURL || s.TLS != tt.wantTLS {
				t.Errorf("got listen %q, url %q, tls %+v; want %q, %q, %+v", s.Listen, s.URL, s.TLS, tt.wantListen, tt.wantURL, tt.wantTLS)
			}
		})
	}
}

// TestValidation covers rules not exercised by the fixtures, one error each.
func TestValidation(t *testing.T) {
	const devUser = "identity: {dev_users: [{token: alice-token, user: alice}]}\n"
	const oauthApp = devUser + `
applications:
  - name: app
    frontend_url: https://gw.example.com/mcp
    upstream_url: https://backend.example.com/mcp
`
	tests := []struct {
		name, src string
		want      string // "" for a valid config
	}{
		{"authorization header allowed", oauthApp + "    headers: {Authorization: Bearer xyz}\n", ""},
		{"mcp session header refused", oauthApp + "    headers: {Mcp-Session-Id: x}\n", "inline.yaml:7: applications[0].headers.Mcp-Session-Id: set by the proxy itself; it cannot be injected"},
		{"protocol header refused", oauthApp + "    headers: {MCP-Protocol-Version: x}\n", "inline.yaml:7: applications[0].headers.MCP-Protocol-Version: set by the proxy itself; it cannot be injected"},
		{"transfer-encoding refused", oauthApp + "    headers: {transfer-encoding: x}\n", "inline.yaml:7: applications[0].headers.transfer-encoding: set by the proxy itself; it cannot be injected"},
		{"empty header value", oauthApp + "    headers: {X-A: }\n", "inline.yaml:7: applications[0].headers.X-A: the value must not be empty"},
		{"no name", devUser + "applications: [{frontend_url: https://a.example/mcp, upstream_url: https://b.example/mcp}]\n", "inline.yaml:2: applications[0].name: required"},
		{"no urls", devUser + "applications:\n  - name: app\n", "inline.yaml:3: applications[0].frontend_url: required\ninline.yaml:3: applications[0].upstream_url: required"},
		{"relative url", oauthApp + "    allowed_origins: [\"https://app.example.com:8443\"]\n", ""},
		{"url without host", strings.Replace(oauthApp, "https://backend.example.com/mcp", "https:///mcp", 1), "inline.yaml:6: applications[0].upstream_url: must be an absolute http or https URL with a host"},
		{"port out of range", strings.Replace(oauthApp, "backend.example.com", "backend.example.com:70000", 1), "inline.yaml:6: applications[0].upstream_url: the port must be a number from 1 to 65535"},
		{"frontend root path duplicates", oauthApp + "  - {name: b, frontend_url: \"https://GW.example.com:443/mcp\", upstream_url: https://c.example/mcp}\n", "inline.yaml:7: applications[1].frontend_url: the same host and path as applications[0] (line 5)"},
		{"different ports differ", oauthApp + "  - {name: b, frontend_url: \"https://gw.example.com:8443/mcp\", upstream_url: https://c.example/mcp}\n", ""},
		{"rule without name", oauthApp + "    rules: [{subjects: {users: [a]}}]\n", "inline.yaml:7: applications[0].rules[0].name: required"},
		{"blank group", oauthApp + "    rules: [{name: r, subjects: {groups: [\" \"]}}]\n", "inline.yaml:7: applications[0].rules[0].subjects.groups[0]: must not be empty"},
		{"audit mode", oauthApp + "    rules: [{name: r, subjects: {users: [a]}, mode: audit}]\n", ""},
		{"anonymous approver", oauthApp + "    rules: [{name: r, subjects: {users: [a]}, approval: {levels: [{approvers: {anonymous: true}}]}}]\n",
			"inline.yaml:7: applications[0].rules[0].approval.levels[0].approvers: required: at least one of users or groups\n" +
				"inline.yaml:7: applications[0].rules[0].approval.levels[0].approvers.anonymous: an approver must be a user or a group"},
		{"approval count with groups", oauthApp + "    rules: [{name: r, subjects: {users: [a]}, approval: {levels: [{approvers: {groups: [g]}, count: 3}]}}]\n", ""},
		{"approval ttl", oauthApp + "    rules: [{name: r, subjects: {users: [a]}, approval: {levels: [{approvers: {groups: [g]}}], grant_ttl: 0s}}]\n",
			"inline.yaml:7: applications[0].rules[0].approval.grant_ttl: must be a positive duration"},
		{"approval not a mapping", oauthApp + "    rules: [{name: r, subjects: {users: [a]}, approval: [x]}]\n",
			"inline.yaml:7: applications[0].rules[0].approval: must be a mapping, got a list"},
		{"root pointer", oauthApp + "    rules: [{name: r, subjects: {users: [a]}, arguments: {\"\": \".*\", \"/a~0b~1c\": \"\"}}]\n", ""},
		{"admin on another port", "server: {listen: \":8080\", admin: {listen: \"127.0.0.1:8080\"}}\n", "inline.yaml:1: server.admin.listen: must differ from server.listen: the admin API never shares the frontend listener"},
		{"admin on another address", "server: {listen: \"10.0.0.1:8080\", admin: {listen: \"127.0.0.1:8080\"}}\n", ""},
		{"listen port", "server: {listen: \":http\"}\n", "inline.yaml:1: server.listen: the port must be a number from 0 to 65535"},
		{"issuer", "identity: {issuer: \"idp.example\"}\n", "inline.yaml:1: identity.issuer: must be an absolute http or https URL"},
		{"broker issuer without client", "identity: {issuer: \"https://idp.example\"}\n", "inline.yaml:1: identity.issuer: broker mode logs users in with a client: it needs OIDC_CLIENT_ID in identity.env_file"},
		{"resource mode with issuer", "identity: {mode: resource, issuer: \"https://idp.example\"}\n" + strings.Replace(oauthApp, devUser, "", 1), ""},
		{"pyroscope", "observability: {pyroscope: {server_address: \"localhost:4040\"}}\n", "inline.yaml:1: observability.pyroscope.server_address: must be an absolute http or https URL"},
		{"spool too small", "audit: {max_spool: 1KiB}\n", "inline.yaml:1: audit.max_spool: must be at least 64MiB"},
		{"approvals webhook not http", "approvals: {webhook: \"ftp://hooks.example.com/x\"}\n", "inline.yaml:1: approvals.webhook: must be an absolute http or https URL"},
		{"ship without auth", "audit: {ship: {url: \"https://ingest.example\", auth: none}}\n", ""},
		{"merge key", "server:\n  <<: {listen: \":1\"}\n", "inline.yaml:2: server.<<: merge keys are not supported"},
		{"custom tag", "server: {listen: !secret x}\n", `inline.yaml:1: server.listen: unsupported YAML tag "!secret"`},
		{"non-string key", "server: {[a]: 1}\n", "inline.yaml:1: server: a key must be a string, got a list"},
		{"top level list", "- a\n", "inline.yaml:1: the top level must be a mapping, got a list"},
		{"null sections", "server:\nidentity: ~\napplications:\n", ""},
		{"alias", "roles: {admin_groups: &g [admins], auditor_groups: *g}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadInline(t, testLoader(t), tt.src, tt.want)
		})
	}
}

func TestEmptyConfig(t *testing.T) {
	for name, src := range map[string]string{"empty": "", "comments": "# nothing yet\n", "empty mapping": "{}\n", "document marker": "---\n"} {
		t.Run(name, func(t *testing.T) {
			cfg := loadInline(t, testLoader(t), src, "")
			if cfg.Server.Listen != ":8080" || len(cfg.Applications) != 0 || cfg.Audit.Ship.Batch != 1000 {
				t.Errorf("got listen %q, %d applications, batch %d; want defaults", cfg.Server.Listen, len(cfg.Applications), cfg.Audit.Ship.Batch)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "mcpgw.yaml", "identity: {env_file: \"\"}\nserver: {data_dir: "+dir+"}\n")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("got error:\n%v\nwant none", err)
	}
	if cfg.Path != path || cfg.Audit.Dir != filepath.Join(dir, "audit") || cfg.Server.Admin.TokenFile != filepath.Join(dir, "admin.token") {
		t.Errorf("got path %q, audit.dir %q, token_file %q", cfg.Path, cfg.Audit.Dir, cfg.Server.Admin.TokenFile)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the loader created files: %v", entries)
	}

	_, err = LoadConfig(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}

func TestConfigErrorFormat(t *testing.T) {
	tests := []struct {
		e    ConfigError
		want string
	}{
		{ConfigError{File: "f.yaml", Line: 3, Column: 5, Key: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{ConfigError{File: "f.yaml", Line: 3, Msg: "bad"}, "f.yaml:3: bad"},
		{ConfigError{File: "f.env", Key: "K", Msg: "bad"}, "f.env: K: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	es := ConfigErrors{tests[0].e, tests[1].e}
	if got, want := es.Error(), "f.yaml:3: a.b: bad\nf.yaml:3: bad"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParentPath(t *testing.T) {
	for path, want := range map[string]string{
		"applications[0].rules[1].tools[2]":   "applications[0].rules[1].tools",
		"applications[0].rules[1].tools":      "applications[0].rules[1]",
		"applications[0]":                     "applications",
		"server":                              "",
		`a.arguments["/x[0]"]`:                "a.arguments",
		`a.arguments["/x\"]"]`:                "a.arguments",
		`a.headers.X-Api-Key`:                 "a.headers",
		`identity.dev_users[0].token`:         "identity.dev_users[0]",
		`applications[0].headers["A B"].x[1]`: `applications[0].headers["A B"].x`,
	} {
		if got := parentPath(path); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", path, got, want)
		}
	}
}
