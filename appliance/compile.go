package appliance

import (
	"context"
	"fmt"
	"net/url"
	"sort"

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
