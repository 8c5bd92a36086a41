package appliance

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/mcpgw/mcpgw/identity"
)

// The operations endpoints of the admin API (DESIGN.md sections 3 and 7),
// mounted by mountOps:
//
//	POST /api/v1/reload          (admin) reload as SIGHUP does; 200
//	                             {"status": "reloaded", "applications",
//	                             "identity", "restart_needed"} or 422 with
//	                             the refusal (file:line: key: reason)
//	GET  /api/v1/applications    (auditor) the configured applications
//	GET  /api/v1/explain?app=&user=&groups=&method=&name=&arguments=
//	                             (auditor) what mcpgw explain answers
//
// Nothing they answer holds a secret: no header values, no credentials,
// no upstream path (which some servers key by), and a refused reload's
// reason has the configuration's secret values replaced.

// mountOps serves the operations endpoints. reload runs one reload (it
// serializes with SIGHUP); current is the configuration serving now.
func (a *adminServer) mountOps(reload func() (reloadOutcome, error), current func() *compiled,
	verifyUser func(token []byte) (*identity.Principal, bool)) {
	ra := &roleAuth{adminToken: a.token, roles: func() RolesConfig { return current().cfg.Roles }, verifyUser: verifyUser}
	h := &opsAPI{reload: reload, current: current}
	a.mux.Handle("POST /api/v1/reload", ra.require(roleNone, h.reloadNow))
	a.mux.Handle("GET /api/v1/applications", ra.require(roleAuditor, h.applications))
	a.mux.Handle("GET /api/v1/explain", ra.require(roleAuditor, h.explain))
}

type opsAPI struct {
	reload  func() (reloadOutcome, error)
	current func() *compiled
}

func (h *opsAPI) reloadNow(w http.ResponseWriter, r *http.Request, c adminCaller) {
	if c.role < roleAdmin {
		writeAdminError(w, http.StatusForbidden, "forbidden", "this needs the admin role")
		return
	}
	if len(r.URL.Query()) > 0 {
		writeAdminError(w, http.StatusBadRequest, "bad_request", "reload takes no parameters")
		return
	}
	out, err := h.reload()
	if err != nil {
		writeAdminError(w, http.StatusUnprocessableEntity, "reload_refused",
			"the running configuration keeps serving: "+err.Error())
		return
	}
	if out.RestartNeeded == nil {
		out.RestartNeeded = []string{}
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		reloadOutcome
	}{"reloaded", out})
}

// appView is one application as GET /api/v1/applications shows it.
type appView struct {
	Name        string `json:"name"`
	FrontendURL string `json:"frontend_url"`
	// Upstream is the upstream's scheme, host and port only.
	Upstream   string     `json:"upstream"`
	Headers    []string   `json:"headers"` // names of the injected headers
	Auth       string     `json:"auth"`
	Visibility string     `json:"visibility"`
	RuleCount  int        `json:"rule_count"`
	Rules      []ruleView `json:"rules"`
}

type ruleView struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"`
	Approval bool   `json:"approval"`
}

func (h *opsAPI) applications(w http.ResponseWriter, r *http.Request, _ adminCaller) {
	if len(r.URL.Query()) > 0 {
		writeAdminError(w, http.StatusBadRequest, "bad_request", "applications takes no parameters")
		return
	}
	cfg := h.current().cfg
	items := make([]appView, 0, len(cfg.Applications))
	for _, app := range cfg.Applications {
		v := appView{Name: app.Name, FrontendURL: app.FrontendURL, Upstream: upstreamOrigin(app.UpstreamURL),
			Headers: []string{}, Auth: app.Auth, Visibility: app.Visibility, RuleCount: len(app.Rules), Rules: []ruleView{}}
		for name := range app.Headers {
			v.Headers = append(v.Headers, name)
		}
		sort.Strings(v.Headers)
		for _, rule := range app.Rules {
			v.Rules = append(v.Rules, ruleView{Name: rule.Name, Mode: rule.Mode, Approval: rule.Approval != nil})
		}
		items = append(items, v)
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Items      []appView `json:"items"`
		NextCursor string    `json:"next_cursor"`
	}{items, ""})
}

// upstreamOrigin is scheme://host[:port] of a validated upstream URL.
func upstreamOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

var explainParams = map[string]bool{"app": true, "user": true, "groups": true, "method": true, "name": true, "arguments": true}

func (h *opsAPI) explain(w http.ResponseWriter, r *http.Request, _ adminCaller) {
	q := r.URL.Query()
	for k, vs := range q {
		if !explainParams[k] {
			writeAdminError(w, http.StatusBadRequest, "bad_request", "unknown parameter "+k)
			return
		}
		if len(vs) != 1 {
			writeAdminError(w, http.StatusBadRequest, "bad_request", "parameter "+k+" given more than once")
			return
		}
	}
	eq := ExplainQuery{App: q.Get("app"), User: q.Get("user"), Groups: splitList(q.Get("groups")),
		Method: q.Get("method"), Name: q.Get("name"), Arguments: q.Get("arguments")}
	if eq.Method == "" {
		eq.Method = "tools/call"
	}
	if eq.App == "" || eq.Name == "" {
		writeAdminError(w, http.StatusBadRequest, "bad_request", "app and name are required")
		return
	}
	comp := h.current()
	if comp.policy.App(eq.App) == nil {
		writeAdminError(w, http.StatusNotFound, "not_found", "no application "+eq.App)
		return
	}
	e, err := Explain(comp.policy, eq)
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Explanation
		Text string `json:"text"`
	}{e, e.String()})
}

// redactSecrets returns err with every secret value of the configurations
// (injected header values, dev user tokens, the env file's values)
// replaced by "[redacted]". The loader never quotes a value; this guards
// what later steps (the identity provider's setup, the proxy) say.
func redactSecrets(err error, cfgs ...*Config) error {
	msg := err.Error()
	var secrets []string
	for _, cfg := range cfgs {
		if cfg != nil {
			secrets = append(secrets, secretValues(cfg)...)
		}
	}
	// Longest first, so that a secret containing another goes whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	out := msg
	for _, s := range secrets {
		if len(s) >= 4 {
			out = strings.ReplaceAll(out, s, "[redacted]")
		}
	}
	if out == msg {
		return err
	}
	return errors.New(out)
}

func secretValues(cfg *Config) []string {
	var out []string
	for _, app := range cfg.Applications {
		for _, v := range app.Headers {
			out = append(out, v.Reveal())
		}
	}
	for _, u := range cfg.Identity.DevUsers {
		out = append(out, u.Token.Reveal())
	}
	if v, ok := cfg.Identity.Env["OIDC_CLIENT_SECRET"]; ok {
		out = append(out, v.Reveal())
	}
	return out
}
