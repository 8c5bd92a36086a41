package appliance

import "time"

// Config is the whole mcpgw.yaml (DESIGN.md section 3). Loaded by LoadConfig;
// every field is documented with its default. After a successful load a
// Config is never modified.
type Config struct {
	Server        ServerConfig        `yaml:"server"`
	Identity      IdentityConfig      `yaml:"identity"`
	Roles         RolesConfig         `yaml:"roles"`
	Applications  []ApplicationConfig `yaml:"applications"`
	Audit         AuditConfig         `yaml:"audit"`
	Observability ObservabilityConfig `yaml:"observability"`

	// Path is the file the config was loaded from (not a YAML key).
	Path string `yaml:"-"`
}

type ServerConfig struct {
	// URL is the public base URL (default: derived from listen; SERVER_URL in
	// the identity env file wins when set).
	URL string `yaml:"url"`
	// Listen is the frontend address (default ":443" with TLS, ":8080" without).
	Listen string      `yaml:"listen"`
	TLS    TLSConfig   `yaml:"tls"`
	Admin  AdminConfig `yaml:"admin"`
	// DataDir holds state: the session key, later the state store (default /var/lib/mcpgw).
	DataDir string `yaml:"data_dir"`
	// MaxBody is the largest request or response message accepted (default 4MiB).
	MaxBody Size `yaml:"max_body"`
	// UpstreamTimeout bounds an upstream JSON exchange (default 60s); SSE
	// streams are bounded by IdleTimeout between events instead.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// KeepAlive is the interval of ":" comments on idle SSE streams (default 25s).
	KeepAlive time.Duration `yaml:"keepalive"`
}

type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type AdminConfig struct {
	Listen    string `yaml:"listen"`     // default 127.0.0.1:9900
	TokenFile string `yaml:"token_file"` // default <data_dir>/admin.token
}

type IdentityConfig struct {
	EnvFile       string        `yaml:"env_file"`
	Issuer        string        `yaml:"issuer"`
	Mode          string        `yaml:"mode"`         // broker (default) | resource
	GroupsClaim   string        `yaml:"groups_claim"` // default "groups"
	TokenTTL      time.Duration `yaml:"token_ttl"`    // default 1h
	AllowDevUsers bool          `yaml:"allow_dev_users"`
	DevUsers      []DevUser     `yaml:"dev_users"`

	// Env holds the parsed env file (OIDC_*, SERVER_URL), if it existed.
	// Values are secrets where the key says so; never logged.
	Env map[string]Secret `yaml:"-"`
}

type DevUser struct {
	Token  Secret   `yaml:"token"`
	User   string   `yaml:"user"`
	Groups []string `yaml:"groups"`
}

type RolesConfig struct {
	AdminGroups   []string `yaml:"admin_groups"`
	AuditorGroups []string `yaml:"auditor_groups"`
}

type ApplicationConfig struct {
	Name           string            `yaml:"name"`
	FrontendURL    string            `yaml:"frontend_url"`
	UpstreamURL    string            `yaml:"upstream_url"`
	Headers        map[string]Secret `yaml:"headers"`
	Auth           string            `yaml:"auth"` // oauth (default) | none
	AllowedOrigins []string          `yaml:"allowed_origins"`
	Visibility     string            `yaml:"visibility"` // permitted (default) | all
	Rules          []RuleConfig      `yaml:"rules"`
}

type RuleConfig struct {
	Name          string            `yaml:"name"`
	Subjects      SubjectsConfig    `yaml:"subjects"`
	Tools         []string          `yaml:"tools"`
	Prompts       []string          `yaml:"prompts"`
	Resources     []string          `yaml:"resources"`
	DenyTools     []string          `yaml:"deny_tools"`
	DenyPrompts   []string          `yaml:"deny_prompts"`
	DenyResources []string          `yaml:"deny_resources"`
	Arguments     map[string]string `yaml:"arguments"`
	Mode          string            `yaml:"mode"` // enforce (default) | audit
	Approval      *ApprovalConfig   `yaml:"approval"`
}

type SubjectsConfig struct {
	Users     []string `yaml:"users"`
	Groups    []string `yaml:"groups"`
	Anonymous bool     `yaml:"anonymous"`
}

type ApprovalConfig struct {
	Levels     []ApprovalLevel `yaml:"levels"`
	GrantTTL   time.Duration   `yaml:"grant_ttl"`   // default 30m
	RequestTTL time.Duration   `yaml:"request_ttl"` // default 24h
}

type ApprovalLevel struct {
	Approvers SubjectsConfig `yaml:"approvers"`
	Count     int            `yaml:"count"` // default 1
}

type AuditConfig struct {
	Dir        string        `yaml:"dir"`
	Durability string        `yaml:"durability"` // sync (default) | async
	MaxSpool   Size          `yaml:"max_spool"`
	WhenFull   string        `yaml:"when_full"` // reject (default) | drop_oldest_shipped
	Arguments  string        `yaml:"arguments"` // full (default) | redacted | none
	Redact     []string      `yaml:"redact"`
	Retention  time.Duration `yaml:"retention"`
	Ship       ShipConfig    `yaml:"ship"`
}

type ShipConfig struct {
	URL      string        `yaml:"url"`
	Auth     string        `yaml:"auth"` // none | client_credentials
	Batch    int           `yaml:"batch"`
	Interval time.Duration `yaml:"interval"`
}

type ObservabilityConfig struct {
	LogFormat string          `yaml:"log_format"` // json (default) | text
	LogLevel  string          `yaml:"log_level"`  // info (default) | debug | warn | error
	Pyroscope PyroscopeConfig `yaml:"pyroscope"`
}

type PyroscopeConfig struct {
	ServerAddress   string `yaml:"server_address"`
	ApplicationName string `yaml:"application_name"`
}

// Size is a byte count written as a number or with a KiB/MiB/GiB suffix.
type Size int64

// Secret is a configuration value that may come from ${env:…} or ${file:…}.
// Its String and GoString never reveal the value; Reveal does.
type Secret struct{ value string }

func (s Secret) Reveal() string   { return s.value }
func (s Secret) String() string   { return "[redacted]" }
func (s Secret) GoString() string { return "[redacted]" }
