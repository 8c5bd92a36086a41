package appliance

import (
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/mcpgw/mcpgw/access"
	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/internal/state"
	"github.com/mcpgw/mcpgw/internal/subjectkey"
	"github.com/mcpgw/mcpgw/policycache"
	"github.com/mcpgw/mcpgw/proxy"
)

// Just-in-time access (issue 6): one access.Service for the whole of
// serve, over the state store, with the approval flows of the rules that
// have an `approval` section (replaced on reload). The proxy asks it on
// every approval-only call through proxyApprovals; every change it makes
// is an audit record (kind approval, or grant for grants).

// flowsOf returns the approval flows of cfg, one per rule with `approval`.
func flowsOf(cfg *Config) map[access.FlowKey]access.Flow {
	flows := make(map[access.FlowKey]access.Flow)
	for _, app := range cfg.Applications {
		for _, r := range app.Rules {
			if r.Approval == nil {
				continue
			}
			f := access.Flow{GrantTTL: r.Approval.GrantTTL, RequestTTL: r.Approval.RequestTTL}
			for _, l := range r.Approval.Levels {
				f.Levels = append(f.Levels, access.Level{Users: l.Approvers.Users, Groups: l.Approvers.Groups, Count: l.Count})
			}
			flows[access.FlowKey{App: app.Name, Rule: r.Name}] = f
		}
	}
	return flows
}

// startApprovals starts the access service. current gives the policy that
// resolves the approval rule of a tool requested ahead of time.
// hook, when not nil, is the approvals webhook.
func startApprovals(cfg *Config, store state.Store, current *atomic.Pointer[compiled], audit *auditlog.Log, hook *webhook, log *slog.Logger) (*access.Service, error) {
	return access.New(access.Options{
		Store: store,
		Flows: flowsOf(cfg),
		ApprovalRule: func(app, user string, groups []string, tool string) (string, bool) {
			pol := current.Load().policy.App(app)
			if pol == nil {
				return "", false
			}
			s := policycache.Subject{User: user, Groups: groups, Key: subjectkey.Key(user, groups, false)}
			d := pol.Decide(&s, policycache.KindTool, []byte(tool), nil)
			return d.Rule, d.Effect == policycache.NeedsApproval
		},
		OnEvent: func(ev access.Event) {
			auditAccessEvent(audit, log, ev)
			if hook != nil {
				hook.notify(ev, approvalURL(current.Load().cfg, ev.App, ev.RequestID))
			}
		},
		Log: log.With("component", "access"),
	})
}

// approvalURL is where the frontend host of app shows request id (the
// URL the proxy's refusals name).
func approvalURL(cfg *Config, app, id string) string {
	for _, a := range cfg.Applications {
		if a.Name != app {
			continue
		}
		u, err := url.Parse(a.FrontendURL)
		if err != nil {
			return ""
		}
		return u.Scheme + "://" + u.Host + "/approvals/" + id
	}
	return ""
}

// auditAccessEvent records a change of a request or grant: kind approval
// for requests and their decisions, grant for grants; method
// approvals/<event>, user the requester, name the tools, reason the actor
// and comment. Enqueued: the change is durable in the state store already.
func auditAccessEvent(l *auditlog.Log, log *slog.Logger, ev access.Event) {
	kind := auditlog.KindApproval
	switch ev.Kind {
	case access.EventGranted, access.EventRevoked, access.EventGrantExpired:
		kind = auditlog.KindGrant
	}
	r := auditlog.Record{
		Time:         ev.Time,
		Kind:         kind,
		App:          ev.App,
		User:         ev.User,
		ResourceType: auditlog.ResourceTypeMCP,
		Method:       "approvals/" + string(ev.Kind),
		Name:         strings.Join(ev.Tools, ","),
		Rule:         ev.RequestID,
	}
	if ev.GrantID != "" {
		r.Rule = ev.RequestID + " " + ev.GrantID
	}
	var reason []string
	if ev.Actor != "" {
		reason = append(reason, "by "+ev.Actor)
	}
	if ev.ArgumentsHash != "" {
		reason = append(reason, "arguments_hash "+ev.ArgumentsHash)
	}
	if ev.Comment != "" {
		reason = append(reason, ev.Comment)
	}
	r.Reason = strings.Join(reason, "; ")
	if _, err := l.Enqueue(&r); err != nil {
		log.Error("cannot record an approval event", "event", string(ev.Kind), "request", ev.RequestID, "error", err.Error())
	}
}

// proxyApprovals adapts the access service to what the proxy asks.
type proxyApprovals struct{ svc *access.Service }

var _ proxy.Approvals = proxyApprovals{}

func (a proxyApprovals) Check(user, app string, tool []byte, argsHash [32]byte) (string, bool) {
	return a.svc.Check(user, app, tool, &argsHash)
}

func (a proxyApprovals) Request(user string, _ []string, app, rule, tool string, argsHash *[32]byte) (string, error) {
	req, _, err := a.svc.RequestFor(user, app, rule, tool, argsHash)
	if err != nil {
		return "", err
	}
	return req.ID, nil
}
