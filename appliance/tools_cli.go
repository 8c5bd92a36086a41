package appliance

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/policycache"
)

// runTools lists an application's upstream tools and, for each, the rules
// whose tool patterns match it (DESIGN.md section 2: a policy authoring
// aid). With --as it also says what that user would be decided, as
// `mcpgw explain` would. It talks to the upstream directly, with the
// application's configured headers, as the official Go SDK client.
func runTools(args []string, env Env) int {
	fs, cfgPath := newFlags("tools", env)
	app := fs.String("app", "", "application name")
	match := fs.String("match", "", "list only the tools whose name this RE2 pattern matches whole")
	as := fs.String("as", "", "a user: also say what each call of theirs would be decided")
	groups := fs.String("groups", "", "with --as: the user's comma-separated groups")
	timeout := fs.Duration("timeout", 10*time.Second, "bound of the whole exchange with the upstream")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *app == "" {
		fmt.Fprintln(env.Stderr, "mcpgw tools: --app is required")
		fs.Usage()
		return ExitUsage
	}
	var only *regexp.Regexp
	if *match != "" {
		re, err := regexp.Compile(`^(?:` + *match + `)$`)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mcpgw tools: --match: %v\n", err)
			return ExitUsage
		}
		only = re
	}
	comp, code := loadCompiled(*cfgPath, env)
	if comp == nil {
		return code
	}
	defer comp.policy.Close()
	appCfg := findApplication(comp.cfg, *app)
	if appCfg == nil {
		fmt.Fprintf(env.Stderr, "mcpgw tools: unknown application %q\n", *app)
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tools, err := listUpstreamTools(ctx, appCfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw tools: %s: %v\n", appCfg.UpstreamURL, err)
		return ExitConfig
	}
	rules := comp.policy.App(*app).Rules()
	matchers := toolMatchers(rules)
	shown := 0
	for _, name := range tools {
		if only != nil && !only.MatchString(name) {
			continue
		}
		shown++
		line := name + "  " + describeToolRules(rules, matchers, name)
		if *as != "" {
			e, err := Explain(comp.policy, ExplainQuery{App: *app, User: *as, Groups: splitList(*groups), Method: "tools/call", Name: name})
			if err != nil {
				fmt.Fprintln(env.Stderr, "mcpgw tools:", err)
				return ExitUsage
			}
			line += "  [" + *as + ": " + e.Effect
			if e.Rule != "" {
				line += " by " + e.Rule
			}
			line += "]"
		}
		fmt.Fprintln(env.Stdout, line)
	}
	fmt.Fprintf(env.Stdout, "%d of %d tools of %s (%s)\n", shown, len(tools), *app, appCfg.UpstreamURL)
	return ExitOK
}

func findApplication(cfg *Config, name string) *ApplicationConfig {
	for i := range cfg.Applications {
		if cfg.Applications[i].Name == name {
			return &cfg.Applications[i]
		}
	}
	return nil
}

// headerTransport adds an application's configured headers to every
// request, as the gateway does upstream.
type headerTransport struct {
	headers map[string]Secret
	base    http.RoundTripper
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for name, v := range t.headers {
		r.Header.Set(name, v.Reveal())
	}
	return t.base.RoundTrip(r)
}

// listUpstreamTools connects to the application's upstream and returns the
// names of all its tools, every page.
func listUpstreamTools(ctx context.Context, app *ApplicationConfig) ([]string, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpgw-tools", Version: Version()}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:   app.UpstreamURL,
		HTTPClient: &http.Client{Transport: headerTransport{headers: app.Headers, base: http.DefaultTransport}},
		MaxRetries: -1,
	}
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		names = append(names, tool.Name)
	}
	return names, nil
}

// toolMatchers compiles the tools and deny_tools patterns of every rule,
// whole-name as the policy matches them; the patterns were validated when
// the configuration was compiled.
func toolMatchers(rules []policycache.RuleSummary) map[string]*regexp.Regexp {
	m := map[string]*regexp.Regexp{}
	for _, r := range rules {
		for _, p := range r.Patterns {
			if p.Field == "tools" || p.Field == "deny_tools" {
				m[p.Pattern] = regexp.MustCompile(`^(?:` + p.Pattern + `)$`)
			}
		}
	}
	return m
}

// describeToolRules names the rules whose tools patterns allow name and
// those whose deny_tools patterns deny it, with who they are for.
func describeToolRules(rules []policycache.RuleSummary, matchers map[string]*regexp.Regexp, name string) string {
	var allow, deny []string
	for _, r := range rules {
		var allows, denies bool
		for _, p := range r.Patterns {
			switch {
			case p.Field == "tools" && matchers[p.Pattern].MatchString(name):
				allows = true
			case p.Field == "deny_tools" && matchers[p.Pattern].MatchString(name):
				denies = true
			}
		}
		who := describeSubjects(r.Users, r.Groups, r.Anonymous)
		var notes []string
		if r.Approval {
			notes = append(notes, "approval")
		}
		if r.Audit {
			notes = append(notes, "audit mode")
		}
		label := r.Name + " (" + strings.Join(append([]string{who}, notes...), ", ") + ")"
		if allows {
			allow = append(allow, label)
		}
		if denies {
			deny = append(deny, label)
		}
	}
	var parts []string
	if len(allow) > 0 {
		parts = append(parts, "allowed by "+strings.Join(allow, ", "))
	}
	if len(deny) > 0 {
		parts = append(parts, "denied by "+strings.Join(deny, ", "))
	}
	if len(parts) == 0 {
		return "no rule: nobody may call it"
	}
	return strings.Join(parts, "; ")
}
