package appliance

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/policycache"
	"github.com/mcpgw/mcpgw/proxy"
)

// policySpecs turns the applications' rules into policycache input.
func policySpecs(cfg *Config) []policycache.AppSpec {
	specs := make([]policycache.AppSpec, 0, len(cfg.Applications))
	for _, app := range cfg.Applications {
		spec := policycache.AppSpec{Name: app.Name, VisibilityAll: app.Visibility == "all"}
		for _, r := range app.Rules {
			spec.Rules = append(spec.Rules, policycache.RuleSpec{
				Name:          r.Name,
				Users:         r.Subjects.Users,
				Groups:        r.Subjects.Groups,
				Anonymous:     r.Subjects.Anonymous,
				Tools:         r.Tools,
				Prompts:       r.Prompts,
				Resources:     r.Resources,
				DenyTools:     r.DenyTools,
				DenyPrompts:   r.DenyPrompts,
				DenyResources: r.DenyResources,
				Arguments:     r.Arguments,
				Audit:         r.Mode == "audit",
				Approval:      r.Approval != nil,
			})
		}
		specs = append(specs, spec)
	}
	return specs
}

// compiled is everything built from one Config; the Server swaps it in as a
// whole.
type compiled struct {
	cfg    *Config
	policy *policycache.Policy
	snap   *proxy.Snapshot
	// closers stop what identityRuntime.attach started for this snapshot.
	closers []func()
	// provider reports whether the identity provider's metadata is known
	// (nil when no provider is configured); see identityRuntime.readiness.
	provider func(context.Context) error
}

// close releases the policy and whatever attach started. Call it once,
// when no request can still use the snapshot.
func (c *compiled) close() {
	c.policy.Close()
	for _, f := range c.closers {
		f()
	}
}

// compile builds the policy and the data-plane snapshot. The Config has
// been validated by LoadConfig; errors here are reported against it.
func compile(cfg *Config) (*compiled, error) {
	pol, err := policycache.Compile(policySpecs(cfg), policycache.Options{})
	if err != nil {
		return nil, fmt.Errorf("cannot compile policy: %w", err)
	}
	snap := &proxy.Snapshot{
		Policy:              pol,
		AllowDevUsersRemote: cfg.Identity.AllowDevUsers,
		MaxBody:             int(cfg.Server.MaxBody),
		UpstreamTimeout:     cfg.Server.UpstreamTimeout,
		KeepAlive:           cfg.Server.KeepAlive,
		Audit:               auditPolicy(&cfg.Audit),
	}
	if len(cfg.Identity.DevUsers) > 0 {
		users := make([]identity.DevUser, 0, len(cfg.Identity.DevUsers))
		for _, u := range cfg.Identity.DevUsers {
			users = append(users, identity.DevUser{Token: u.Token.Reveal(), User: u.User, Groups: u.Groups})
		}
		snap.DevUsers = identity.NewDevUsers(users)
	}
	for _, app := range cfg.Applications {
		front, err := url.Parse(app.FrontendURL)
		if err != nil {
			pol.Close()
			return nil, fmt.Errorf("application %q: cannot parse frontend_url", app.Name)
		}
		up, err := url.Parse(app.UpstreamURL)
		if err != nil {
			pol.Close()
			return nil, fmt.Errorf("application %q: cannot parse upstream_url", app.Name)
		}
		a := proxy.Application{
			Name:           app.Name,
			Frontend:       front,
			Upstream:       up,
			AuthNone:       app.Auth == "none",
			AllowedOrigins: app.AllowedOrigins,
			VisibilityAll:  app.Visibility == "all",
		}
		names := make([]string, 0, len(app.Headers))
		for name := range app.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			a.Headers = append(a.Headers, proxy.Header{Name: name, Value: app.Headers[name].Reveal()})
		}
		snap.Applications = append(snap.Applications, a)
	}
	return &compiled{cfg: cfg, policy: pol, snap: snap}, nil
}

// auditPolicy is the reloadable part of the audit section. The patterns of
// audit.redact were checked at load; they are combined into one.
func auditPolicy(a *AuditConfig) proxy.AuditPolicy {
	p := proxy.AuditPolicy{RejectWhenFull: a.WhenFull == "reject"}
	switch a.Arguments {
	case "none":
		p.Arguments = proxy.ArgumentsNone
	case "redacted":
		p.Arguments = proxy.ArgumentsRedacted
		if len(a.Redact) > 0 {
			alts := make([]string, len(a.Redact))
			for i, r := range a.Redact {
				alts[i] = "(?:" + r + ")"
			}
			p.Redact = regexp.MustCompile(strings.Join(alts, "|"))
		}
	}
	return p
}
