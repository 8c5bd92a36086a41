package appliance

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole mcpgw.yaml (DESIGN.md section 3). Loaded by LoadConfig,
// which decodes strictly, applies the defaults documented on each field and
// validates. After a successful load a Config is never modified; it is safe
// for concurrent reads.
//
// Any string value may contain ${env:NAME} (an environment variable) and
// ${file:/absolute/path} (a file's contents, one trailing newline trimmed),
// expanded at load; "$${" is a literal "${". A reference that is unset,
// unreadable or empty is an error. Mapping keys are never expanded.
type Config struct {
	Server        ServerConfig        `yaml:"server"`
	Identity      IdentityConfig      `yaml:"identity"`
	Roles         RolesConfig         `yaml:"roles"`
	Applications  []ApplicationConfig `yaml:"applications"` // may be empty: every request is then refused
	Audit         AuditConfig         `yaml:"audit"`
	Approvals     ApprovalsConfig     `yaml:"approvals"`
	Observability ObservabilityConfig `yaml:"observability"`

	// Path is the file the config was loaded from (not a YAML key).
	Path string `yaml:"-"`
	// refs are the ${env:…} and ${file:…} references the load resolved,
	// each once, in file order (for check; never their values).
	refs []string
}

type ServerConfig struct {
	// URL is the public base URL, an absolute http or https URL. SERVER_URL
	// in the identity env file wins when set. Default: http://localhost:<port>
	// (https://localhost:<port> with TLS) from Listen, the port omitted when
	// it is the scheme's default. In broker mode with an OIDC client it must
	// be written: it is the OAuth issuer, <URL>/oauth/callback is the
	// redirect URI to register at the identity provider, and it must name
	// the scheme, host and port of an application with auth: oauth, without
	// a path (the OAuth endpoints live at the root of the frontend hosts).
	URL string `yaml:"url"`
	// Listen is the frontend address, host:port (default ":443" with TLS,
	// ":8080" without).
	Listen string `yaml:"listen"`
	// TLS is the certificate pair of the frontend listener. When the tls key
	// is absent and both /var/lib/procyon/ssl/mcpgw-cert.pem and
	// mcpgw-key.pem exist (the PingOne Privilege gateway layout), they are
	// used; write `tls: {}` to serve plain HTTP regardless.
	TLS   TLSConfig   `yaml:"tls"`
	Admin AdminConfig `yaml:"admin"`
	// DataDir holds state (default /var/lib/mcpgw): the session key
	// (session.key, from which the OAuth token key is derived), the state
	// store (state/: client registrations, refresh tokens, consent) and the
	// generated admin token. Relative paths here and in every other path field are
	// relative to the working directory of the process.
	DataDir string `yaml:"data_dir"`
	// MaxBody is the largest request or response message accepted (default 4MiB).
	MaxBody Size `yaml:"max_body"`
	// UpstreamTimeout bounds an upstream JSON exchange (default 60s); SSE
	// streams are bounded by IdleTimeout between events instead.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// KeepAlive is the interval of ":" comments on idle SSE streams (default 25s).
	KeepAlive time.Duration `yaml:"keepalive"`
	// ShutdownTimeout bounds the drain on SIGTERM (default 25s): in-flight
	// requests and streams get this long to finish before they are cut and
	// the audit log is flushed. Keep it below the service manager's stop
	// timeout (the packaged unit's TimeoutStopSec).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// TLSConfig names a PEM certificate chain and key; both or neither.
type TLSConfig struct {
	Cert string `yaml:"cert"` // no default (see ServerConfig.TLS)
	Key  string `yaml:"key"`  // no default (see ServerConfig.TLS)
}

type AdminConfig struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:9900; must differ from server.listen
	// TokenFile holds the admin API's bearer token (default
	// <data_dir>/admin.token, generated with mode 0600 when absent; an
	// existing file must not be readable by group or others).
	TokenFile string `yaml:"token_file"`
}

type IdentityConfig struct {
	// EnvFile is a dotenv file with OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
	// OIDC_AUTH_URL, OIDC_TOKEN_URL, OIDC_USER_URL, OIDC_SCOPES and
	// SERVER_URL (see LoadEnvFile). Default
	// /var/lib/procyon/config/pingone.env, read only if it exists; a path
	// written here must exist, and `env_file: ""` reads none. After a load
	// it is the path that was read, or "" when none was.
	EnvFile string `yaml:"env_file"`
	// Issuer is an optional OIDC issuer for discovery (no default: derived
	// from the env file's URLs).
	Issuer string `yaml:"issuer"`
	// Mode is broker (default: mcpgw is the OAuth authorization server and
	// logs users in at the provider with the env file's client) or resource
	// (clients bring the provider's JWTs; needs Issuer or OIDC_AUTH_URL).
	Mode        string        `yaml:"mode"`
	GroupsClaim string        `yaml:"groups_claim"` // default "groups"
	TokenTTL    time.Duration `yaml:"token_ttl"`    // lifetime of issued access tokens, default 1h
	// AllowDevUsers accepts dev_users on non-loopback listeners (default false).
	AllowDevUsers bool `yaml:"allow_dev_users"`
	// DevUsers are static bearer tokens for quickstarts and tests (default none).
	DevUsers []DevUser `yaml:"dev_users"`

	// Env holds the parsed env file (OIDC_*, SERVER_URL), if one was read.
	// Every value is a Secret; never logged.
	Env map[string]Secret `yaml:"-"`
}

// DevUser is a static bearer token. Tokens are at least 8 characters (long
// enough to rule out placeholders such as "x" or "test", short enough for
// quickstarts) and unique.
type DevUser struct {
	Token  Secret   `yaml:"token"`  // required
	User   string   `yaml:"user"`   // required
	Groups []string `yaml:"groups"` // default none
}

type RolesConfig struct {
	AdminGroups   []string `yaml:"admin_groups"`   // default none: only the admin token
	AuditorGroups []string `yaml:"auditor_groups"` // default none
}

type ApplicationConfig struct {
	// Name is required, unique, [a-z0-9][a-z0-9._-]*.
	Name string `yaml:"name"`
	// FrontendURL is where clients connect: an absolute http or https URL
	// without query or fragment; its host and path select the application
	// and are unique across applications. Required.
	FrontendURL string `yaml:"frontend_url"`
	// UpstreamURL is the MCP server: an absolute http or https URL without
	// credentials, query or fragment. Required.
	UpstreamURL string `yaml:"upstream_url"`
	// Headers are injected into every upstream request (default none). Names
	// are HTTP tokens; Authorization is allowed, headers the proxy owns
	// (Host, Content-Length, hop-by-hop, MCP session and protocol) are not.
	Headers map[string]Secret `yaml:"headers"`
	Auth    string            `yaml:"auth"` // oauth (default) | none
	// AllowedOrigins are browser origins (scheme://host[:port]) allowed
	// besides the frontend's own (default none).
	AllowedOrigins []string     `yaml:"allowed_origins"`
	Visibility     string       `yaml:"visibility"` // permitted (default) | all
	Rules          []RuleConfig `yaml:"rules"`      // default none: everything is denied
}

// RuleConfig grants (and denies) names to subjects. Every pattern is an RE2
// expression that must match the whole name.
type RuleConfig struct {
	Name          string         `yaml:"name"`     // required, unique within the application
	Subjects      SubjectsConfig `yaml:"subjects"` // required: a user, a group or anonymous
	Tools         []string       `yaml:"tools"`
	Prompts       []string       `yaml:"prompts"`
	Resources     []string       `yaml:"resources"`
	DenyTools     []string       `yaml:"deny_tools"`
	DenyPrompts   []string       `yaml:"deny_prompts"`
	DenyResources []string       `yaml:"deny_resources"`
	// Arguments maps RFC 6901 JSON pointers into params.arguments to RE2
	// patterns the value must match whole (default none).
	Arguments map[string]string `yaml:"arguments"`
	Mode      string            `yaml:"mode"`     // enforce (default) | audit
	Approval  *ApprovalConfig   `yaml:"approval"` // default nil: no approval step
}

// SubjectsConfig names users and groups; Anonymous is only allowed (and is
// then the only subject allowed) in applications with auth: none.
type SubjectsConfig struct {
	Users     []string `yaml:"users"`
	Groups    []string `yaml:"groups"`
	Anonymous bool     `yaml:"anonymous"` // default false
}

type ApprovalConfig struct {
	Levels     []ApprovalLevel `yaml:"levels"`      // at least one
	GrantTTL   time.Duration   `yaml:"grant_ttl"`   // default 30m
	RequestTTL time.Duration   `yaml:"request_ttl"` // default 24h
}

type ApprovalLevel struct {
	Approvers SubjectsConfig `yaml:"approvers"` // users and/or groups; not anonymous
	Count     int            `yaml:"count"`     // approvals needed, default 1
}

type AuditConfig struct {
	Dir        string        `yaml:"dir"`        // default <data_dir>/audit
	Durability string        `yaml:"durability"` // sync (default) | async
	MaxSpool   Size          `yaml:"max_spool"`  // default 10GiB
	WhenFull   string        `yaml:"when_full"`  // reject (default) | drop_oldest_shipped
	Arguments  string        `yaml:"arguments"`  // full (default) | redacted | none
	Redact     []string      `yaml:"redact"`     // RE2 patterns of argument keys whose values are replaced (arguments: redacted); they match anywhere in a key ("token" covers "access_token"); default none
	Retention  time.Duration `yaml:"retention"`  // default 720h
	Ship       ShipConfig    `yaml:"ship"`
}

type ShipConfig struct {
	URL string `yaml:"url"` // default "": keep records local only
	// Auth is none | client_credentials (default: none when URL is empty,
	// else client_credentials, which needs OIDC_TOKEN_URL, OIDC_CLIENT_ID
	// and OIDC_CLIENT_SECRET in the env file).
	Auth     string        `yaml:"auth"`
	Batch    int           `yaml:"batch"`    // records per POST, default 1000
	Interval time.Duration `yaml:"interval"` // default 1s
}

// ApprovalsConfig holds what approval flows share (the flows themselves are
// the rules' `approval` sections).
type ApprovalsConfig struct {
	// Webhook is POSTed a JSON document on every new request and decision
	// (created, approved, denied, granted, expired, revoked), so that chat
	// or ticketing can be wired in; default "": none. It often carries a
	// secret in its path or query (chat webhooks do), so it is never
	// logged.
	Webhook string `yaml:"webhook"`
}

type ObservabilityConfig struct {
	LogFormat string          `yaml:"log_format"` // json (default) | text
	LogLevel  string          `yaml:"log_level"`  // info (default) | debug | warn | error
	Pyroscope PyroscopeConfig `yaml:"pyroscope"`
}

type PyroscopeConfig struct {
	ServerAddress   string `yaml:"server_address"`   // default "": profiling off
	ApplicationName string `yaml:"application_name"` // default mcpgw
}

// Size is a byte count. In YAML it is a whole number of bytes (4194304) or a
// whole number with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB,
// GB, TB (powers of 1000, as the SI prefixes say), case-insensitive, with an
// optional space ("4MiB", "4 MiB"). Fractions, signs and values above
// math.MaxInt64 are rejected.
type Size int64

// String formats s with the largest binary unit that divides it exactly.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// sizeUnits maps lower-case unit names to their multiplier.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// errSizeSyntax never quotes the input: it may have come from ${env:…}.
const errSizeSyntax = "invalid size: want a whole number of bytes, optionally with a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)"

// ParseSize parses the size syntax described on Size.
func ParseSize(s string) (Size, error) {
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("invalid size: must not be negative")
		}
		return 0, fmt.Errorf("%s", errSizeSyntax)
	}
	unit := strings.ToLower(strings.TrimPrefix(s[digits:], " "))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%s", errSizeSyntax)
	}
	n, err := strconv.ParseInt(s[:digits], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size: larger than %d bytes", int64(math.MaxInt64))
	}
	return Size(n * mult), nil
}

// UnmarshalYAML decodes a scalar in the syntax described on Size. It takes
// the scalar as written: LoadConfig expands references before calling it.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a size such as 4MiB, got %s", nodeKindName(n))
	}
	switch n.ShortTag() {
	case "!!int", "!!str":
	default:
		return fmt.Errorf("must be a size such as 4MiB, got %s", nodeKindName(n))
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Secret is a configuration value that may come from ${env:…} or ${file:…}.
// Every way of printing it (String, GoString, any fmt verb, slog, JSON or
// YAML marshalling) gives "[redacted]"; only Reveal returns the value.
// Safe for concurrent use (it is immutable).
type Secret struct{ value string }

// NewSecret wraps v, for tests and for values read outside the config file.
func NewSecret(v string) Secret { return Secret{value: v} }

func (s Secret) Reveal() string   { return s.value }
func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// Format makes every fmt verb (including %d and %x, which would otherwise
// print the struct's field) print "[redacted]".
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue keeps the value out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps the value out of JSON and YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalYAML takes any non-null scalar as written: LoadConfig expands
// references before calling it.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || !isPlainScalarTag(n.ShortTag()) {
		return fmt.Errorf("must be a string, got %s", nodeKindName(n))
	}
	s.value = n.Value
	return nil
}

const redacted = "[redacted]"
