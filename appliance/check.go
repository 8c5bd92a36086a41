package appliance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/policycache"
	"github.com/mcpgw/mcpgw/proxy"
)

// runCheck validates the configuration and prints each application's
// compiled rules; exit 1 with every problem as file:line: key: reason.
// Then the preflight (preflight.go): one ok, warn or FAIL line per check of
// what serve needs from the machine and the network; exit 1 on any FAIL.
func runCheck(args []string, env Env) int {
	fs, cfgPath := newFlags("check", env)
	offline := fs.Bool("offline", false, "skip the network checks (upstreams, identity provider) and fail only on what stops serve (an expired certificate is then a warning)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of each network check")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintln(env.Stderr, "mcpgw check: --timeout must be positive")
		return ExitUsage
	}
	comp, code := loadCompiled(*cfgPath, env)
	if comp == nil {
		return code
	}
	defer comp.policy.Close()
	cfg := comp.cfg
	printIdentity(env.Stdout, cfg)
	printCompiled(env.Stdout, cfg, comp.policy)
	pf := &preflight{cfg: cfg, now: time.Now(), offline: *offline, timeout: *timeout,
		client: &http.Client{Timeout: *timeout}}
	fmt.Fprintln(env.Stdout, "preflight")
	fails, warns := 0, 0
	for _, l := range pf.run(context.Background()) {
		fmt.Fprintf(env.Stdout, "  %s\n", l)
		switch l.level {
		case levelFail:
			fails++
		case levelWarn:
			warns++
		}
	}
	if fails > 0 {
		fmt.Fprintf(env.Stdout, "%s: FAIL (%d failed, %d warnings)\n", cfg.Path, fails, warns)
		return ExitConfig
	}
	fmt.Fprintf(env.Stdout, "%s: ok (%d applications); %d warnings\n", cfg.Path, len(cfg.Applications), warns)
	return ExitOK
}

// printIdentity says how users log in: the mode, the identity provider's
// issuer and whether the env file was read (its keys, never its values).
func printIdentity(w io.Writer, cfg *Config) {
	id := &cfg.Identity
	fmt.Fprintf(w, "identity\n  mode %s", id.Mode)
	switch {
	case id.Mode == "broker" && id.Env["OIDC_CLIENT_ID"].Reveal() != "":
		fmt.Fprintf(w, " (mcpgw is the authorization server at %s)\n", cfg.Server.URL)
	case id.Mode == "broker":
		fmt.Fprintf(w, " (no OIDC client: only dev users log in)\n")
	default:
		fmt.Fprintf(w, " (clients bring the identity provider's JWTs)\n")
	}
	switch {
	case id.Issuer != "":
		fmt.Fprintf(w, "  issuer %s\n", id.Issuer)
	case id.Mode == "resource" && id.Env["OIDC_AUTH_URL"].Reveal() != "":
		// The issuer is no secret: every token names it.
		fmt.Fprintf(w, "  issuer %s (from OIDC_AUTH_URL; set identity.issuer if tokens name another)\n", resourceIssuer(id))
	case id.Env["OIDC_AUTH_URL"].Reveal() != "":
		fmt.Fprintf(w, "  issuer derived from OIDC_AUTH_URL by discovery\n")
	default:
		fmt.Fprintf(w, "  issuer none\n")
	}
	if id.EnvFile == "" {
		fmt.Fprintf(w, "  env file none read\n")
	} else {
		keys := make([]string, 0, len(id.Env))
		for k := range id.Env {
			keys = append(keys, k)
		}
		fmt.Fprintf(w, "  env file %s read (%s; values hidden)\n", id.EnvFile, strings.Join(sortedStrings(keys), ", "))
	}
	if n := len(id.DevUsers); n > 0 {
		fmt.Fprintf(w, "  dev users %d\n", n)
	}
}

func printCompiled(w io.Writer, cfg *Config, pol *policycache.Policy) {
	for _, app := range cfg.Applications {
		ap := pol.App(app.Name)
		auth := app.Auth
		fmt.Fprintf(w, "application %s\n  frontend %s\n  upstream %s\n  auth %s, visibility %s\n",
			app.Name, app.FrontendURL, app.UpstreamURL, auth, app.Visibility)
		if len(app.Headers) > 0 {
			names := make([]string, 0, len(app.Headers))
			for name := range app.Headers {
				names = append(names, name)
			}
			fmt.Fprintf(w, "  injected headers %s (values hidden)\n", strings.Join(sortedStrings(names), ", "))
		}
		for _, r := range ap.Rules() {
			fmt.Fprintf(w, "  rule %s (%s%s)\n", r.Name, r.Mode(), map[bool]string{true: ", approval", false: ""}[r.Approval])
			fmt.Fprintf(w, "    subjects %s\n", describeSubjects(r.Users, r.Groups, r.Anonymous))
			for _, p := range r.Patterns {
				fmt.Fprintf(w, "    %-14s %-24q %s\n", p.Field, p.Pattern, p.Class)
			}
			for _, a := range r.Arguments {
				fmt.Fprintf(w, "    argument %s must match %q (%s)\n", a.Key, a.Pattern, a.Class)
			}
		}
	}
}

func describeSubjects(users, groups []string, anonymous bool) string {
	var parts []string
	if anonymous {
		parts = append(parts, "anonymous")
	}
	if len(users) > 0 {
		parts = append(parts, "users "+strings.Join(users, ", "))
	}
	if len(groups) > 0 {
		parts = append(parts, "groups "+strings.Join(groups, ", "))
	}
	return strings.Join(parts, "; ")
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// runExplain answers "would this be allowed, by which rule, and why"
// without sending anything upstream.
func runExplain(args []string, env Env) int {
	fs, cfgPath := newFlags("explain", env)
	app := fs.String("app", "", "application name")
	user := fs.String("user", "", "user name (empty with an auth: none application: anonymous)")
	groups := fs.String("groups", "", "comma-separated groups")
	method := fs.String("method", "tools/call", "MCP method: tools/call, prompts/get, resources/read, ...")
	name := fs.String("name", "", "tool or prompt name, or resource URI")
	argsJSON := fs.String("arguments", "", "tools/call arguments as a JSON object (for argument constraints)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *app == "" || *name == "" {
		fmt.Fprintln(env.Stderr, "mcpgw explain: --app and --name are required")
		fs.Usage()
		return ExitUsage
	}
	comp, code := loadCompiled(*cfgPath, env)
	if comp == nil {
		return code
	}
	defer comp.policy.Close()
	e, err := Explain(comp.policy, ExplainQuery{
		App: *app, User: *user, Groups: splitList(*groups), Method: *method, Name: *name, Arguments: *argsJSON,
	})
	if err != nil {
		fmt.Fprintln(env.Stderr, "mcpgw explain:", err)
		return ExitUsage
	}
	fmt.Fprintln(env.Stdout, e.String())
	if e.Effect != policycache.Allow.String() {
		return ExitConfig
	}
	return ExitOK
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ExplainQuery is one "would this be allowed" question.
type ExplainQuery struct {
	App, User string
	Groups    []string
	Method    string
	Name      string
	Arguments string // JSON object, optional
}

// Explanation answers an ExplainQuery.
type Explanation struct {
	App    string `json:"app"`
	User   string `json:"user"`
	Method string `json:"method"`
	Name   string `json:"name"`
	Effect string `json:"effect"`
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Shadow string `json:"shadow,omitempty"`
}

func (e Explanation) String() string {
	s := fmt.Sprintf("%s %s %q for %s in %s (%s", e.Effect, e.Method, e.Name, e.User, e.App, e.Reason)
	if e.Rule != "" {
		s += ", rule " + e.Rule
	}
	s += ")"
	if e.Shadow != "" {
		s += "; " + e.Shadow
	}
	return s
}

// Explain evaluates policy for one query.
func Explain(pol *policycache.Policy, q ExplainQuery) (Explanation, error) {
	ap := pol.App(q.App)
	if ap == nil {
		return Explanation{}, fmt.Errorf("unknown application %q", q.App)
	}
	kind, ok := proxy.NameKind([]byte(q.Method))
	if !ok {
		return Explanation{}, fmt.Errorf("method %q is not checked by name (checked: tools/call, prompts/get, resources/read, resources/subscribe, resources/unsubscribe)", q.Method)
	}
	var subj policycache.Subject
	user := q.User
	if user == "" {
		p := identity.AnonymousPrincipal
		subj = policycache.Subject{User: p.User, Anonymous: true, Key: p.Key}
		user = p.User
	} else {
		p := identity.NewPrincipal(q.User, q.Groups, "explain")
		subj = policycache.Subject{User: p.User, Groups: p.Groups, Key: p.Key}
	}
	var args policycache.Args
	if q.Arguments != "" {
		a, err := newJSONArgs(q.Arguments)
		if err != nil {
			return Explanation{}, err
		}
		args = a
	}
	d := ap.Decide(&subj, kind, []byte(q.Name), args)
	e := Explanation{App: q.App, User: user, Method: q.Method, Name: q.Name,
		Effect: d.Effect.String(), Rule: d.Rule, Reason: d.Reason.String()}
	if d.Shadow {
		e.Shadow = fmt.Sprintf("audit-mode rule %s would decide %s", d.ShadowRule, d.ShadowEffect)
	}
	return e, nil
}

// loadCompiled loads and compiles the configuration for a subcommand that
// only reads it; on failure it prints the problems and returns the exit
// code.
func loadCompiled(path string, env Env) (*compiled, int) {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return nil, ExitConfig
	}
	comp, err := compile(cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", cfg.Path, err)
		return nil, ExitConfig
	}
	return comp, ExitOK
}
