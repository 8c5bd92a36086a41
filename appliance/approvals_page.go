package appliance

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mcpgw/mcpgw/access"
	"github.com/mcpgw/mcpgw/identity"
)

// The approval page of just-in-time access (issue 6), on the frontend
// listener of every application host (proxy Snapshot.ApprovalsHandler):
//
//	GET  /approvals            the user's own requests, those waiting for
//	                           their decision, and a form to request access
//	                           ahead of time
//	POST /approvals            that form: access.Service.Request as the user,
//	                           as POST /api/v1/approvals does
//	GET  /approvals/{id}       one request (the approval_url of a refusal)
//	POST /approvals/{id}       an approver's decision: approve (optionally
//	                           the whole tools, as whole_tool does in the
//	                           admin API) or deny
//	GET  /approvals/callback   the return from the login
//	POST /approvals/logout     sign out
//
// Who: a bearer token (Authorization: Bearer, as MCP clients, scripts and
// dev users send it), verified as the proxy does for one of the host's
// applications; or, in broker mode, a login through the gateway's own
// authorization server as its built-in first-party client (authorization
// code, PKCE S256, state bound to a login cookie; identity/firstparty.go),
// whose access token is then kept in an HttpOnly, SameSite=Lax cookie
// (__Host- and Secure over TLS) for the token's own lifetime and verified
// on every request. In resource mode the gateway has no authorization
// server: the page takes bearer tokens only and says so.
//
// A request is shown to its requester, to the approvers named at any of
// its levels, and to the admin and auditor roles; anyone else gets the
// same 404 as for an id that does not exist. Decisions follow access's
// rules (an approver of the current level, never the requester).
//
// Every POST carries a CSRF token derived from the caller's credential and
// is refused when Origin names another origin or Sec-Fetch-Site says
// cross-site. Origin "null" is accepted with the token: browsers send it
// for forms of pages served with Referrer-Policy: no-referrer. Pages are
// not framable, cacheable or scriptable (CSP default-src 'none').

//go:embed approvals_page.html
var approvalsPageFS embed.FS

var approvalsTemplates = template.Must(template.ParseFS(approvalsPageFS, "approvals_page.html"))

const (
	// pageKeyInfo derives the page's HMAC key (CSRF tokens, login state)
	// from the token key (HKDF info).
	pageKeyInfo = "mcpgw approvals page v1 HMAC-SHA256"
	// maxPageForm bounds a POST body of the page.
	maxPageForm = 32 << 10
	// pageLoginTTL bounds a login started on the page (the authorization
	// server's own logins last as long).
	pageLoginTTL = 10 * time.Minute
	// maxCookieToken is the longest access token kept in a cookie:
	// browsers drop cookies over about 4 KiB.
	maxCookieToken = 3800
	// maxRequestID bounds the id part of /approvals/{id}.
	maxRequestID = 128
)

// approvalsPage serves the page for one compiled configuration; a reload
// builds a new one. Safe for concurrent use.
type approvalsPage struct {
	comp     *compiled
	hosts    map[string]*pageHost // key: lower-case host:port, as the proxy routes
	tls      bool
	devUsers bool                       // dev-user tokens count (loopback listener or allow_dev_users)
	login    *identity.FirstPartyClient // nil: bearer tokens only
	key      []byte
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
}

// pageHost is one frontend host.
type pageHost struct {
	origin string // scheme://host[:port], the default port left out: what browsers send as Origin
	// resources are the frontend URLs of the host's applications that take
	// logins (auth: oauth), in configuration order: a token bound to any of
	// them is accepted, and a login asks for the first.
	resources []string
}

// attachApprovalsPage sets comp.snap.ApprovalsHandler. It runs after the
// rest of attach, so that it sees the token verifier; in broker mode it
// (re)stores the first-party client with this configuration's redirect
// URIs.
func (r *identityRuntime) attachApprovalsPage(comp *compiled) error {
	key, err := hkdf.Key(sha256.New, r.tokenKey, nil, pageKeyInfo, 32)
	if err != nil {
		return fmt.Errorf("cannot derive the approval page's key: %w", err)
	}
	pg := newApprovalsPage(comp, key, r.log)
	if as, ok := comp.snap.Tokens.(*identity.AuthServer); ok {
		var redirects []string
		for _, h := range pg.hosts {
			if len(h.resources) > 0 && !slices.Contains(redirects, h.origin+"/approvals/callback") {
				redirects = append(redirects, h.origin+"/approvals/callback")
			}
		}
		slices.Sort(redirects)
		if len(redirects) > 0 {
			if pg.login, err = as.FirstPartyClient(redirects); err != nil {
				return err
			}
		}
	}
	comp.snap.ApprovalsHandler = pg
	return nil
}

// newApprovalsPage builds the page for comp without a login of its own
// (set pg.login for one).
func newApprovalsPage(comp *compiled, key []byte, log *slog.Logger) *approvalsPage {
	cfg := comp.cfg
	pg := &approvalsPage{
		comp:     comp,
		hosts:    make(map[string]*pageHost),
		tls:      cfg.Server.TLS.Cert != "",
		devUsers: cfg.Identity.AllowDevUsers || listenIsLoopback(cfg.Server.Listen),
		key:      key,
		log:      log.With("component", "approvals-page"),
		now:      time.Now,
	}
	for _, app := range comp.snap.Applications {
		for _, k := range pageHostKeys(app.Frontend) {
			h := pg.hosts[k]
			if h == nil {
				h = &pageHost{origin: originOfKey(app.Frontend.Scheme, k)}
				pg.hosts[k] = h
			}
			if !app.AuthNone {
				h.resources = append(h.resources, app.Frontend.String())
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /approvals", pg.withViewer(pg.serveList))
	mux.HandleFunc("GET /approvals/{$}", pg.withViewer(pg.serveList))
	mux.HandleFunc("POST /approvals", pg.withViewer(pg.serveCreate))
	mux.HandleFunc("POST /approvals/{$}", pg.withViewer(pg.serveCreate))
	mux.HandleFunc("GET /approvals/callback", pg.serveCallback)
	mux.HandleFunc("POST /approvals/logout", pg.withViewer(pg.serveLogout))
	mux.HandleFunc("GET /approvals/{id}", pg.withViewer(pg.serveDetail))
	mux.HandleFunc("POST /approvals/{id}", pg.withViewer(pg.serveDecide))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		pg.message(w, http.StatusNotFound, nil, "Not found", "There is no page here.")
	})
	pg.mux = mux
	return pg
}

func (pg *approvalsPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if pg.host(r) == nil {
		// The proxy routes only application hosts here.
		pg.message(w, http.StatusNotFound, nil, "Not found", "There is no page here.")
		return
	}
	pg.mux.ServeHTTP(w, r)
}

// host returns the frontend host r was sent to.
func (pg *approvalsPage) host(r *http.Request) *pageHost {
	return pg.hosts[requestHostKey(r.Host, pg.tls)]
}

// viewer is who is looking at the page.
type viewer struct {
	p        *identity.Principal
	cred     string // the token: the CSRF token is derived from it
	signedIn bool   // by the page's own login (a cookie): it can sign out
	role     adminRole
}

// withViewer serves h to an authenticated caller. Without credentials, a
// GET starts the login when the page has one; otherwise the caller is told
// how to sign in.
func (pg *approvalsPage) withViewer(h func(http.ResponseWriter, *http.Request, *pageHost, *viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host := pg.host(r)
		if authz := r.Header.Values("Authorization"); len(authz) > 0 {
			tok, ok := identity.BearerToken([]byte(authz[0]))
			var p *identity.Principal
			if ok && len(authz) == 1 {
				p = pg.verify(tok, host)
			}
			if p == nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mcpgw", error="invalid_token"`)
				pg.message(w, http.StatusUnauthorized, nil, "Not signed in", "The bearer token is not valid for this gateway.")
				return
			}
			h(w, r, host, pg.viewerOf(p, string(tok), false))
			return
		}
		if c, err := r.Cookie(pg.sessionCookie()); err == nil && c.Value != "" {
			if p := pg.verify([]byte(c.Value), host); p != nil {
				h(w, r, host, pg.viewerOf(p, c.Value, true))
				return
			}
			pg.setCookie(w, pg.sessionCookie(), "", -1) // expired or revoked
		}
		if r.Method == http.MethodGet && pg.login != nil && len(host.resources) > 0 {
			pg.startLogin(w, r, host)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpgw"`)
		lines := []string{"Send your access token as Authorization: Bearer, or use mcpgw approvals on the gateway."}
		switch {
		case pg.login != nil && r.Method != http.MethodGet:
			lines = []string{"Your sign-in has expired. Open the page again to sign in; nothing was changed."}
		case pg.comp.cfg.Identity.Mode == "resource":
			lines = []string{"This gateway accepts the access tokens of your identity provider, as your MCP client sends them; it does not sign browsers in itself.",
				"Send the token as Authorization: Bearer, or use mcpgw approvals on the gateway, to see and request approvals."}
		}
		pg.message(w, http.StatusUnauthorized, nil, "Sign in to see approvals", lines...)
	}
}

// verify checks a token as the proxy would for one of the host's
// applications; nil when it is not valid.
func (pg *approvalsPage) verify(tok []byte, host *pageHost) *identity.Principal {
	snap := pg.comp.snap
	if pg.devUsers && snap.DevUsers != nil {
		if p, ok := snap.DevUsers.Lookup(tok); ok {
			return p
		}
	}
	if snap.Tokens == nil {
		return nil
	}
	for _, res := range host.resources {
		if p, err := snap.Tokens.Verify(tok, res); err == nil && p != nil && !p.Anonymous && p.User != "" {
			return p
		}
	}
	return nil
}

func (pg *approvalsPage) viewerOf(p *identity.Principal, cred string, signedIn bool) *viewer {
	v := &viewer{p: p, cred: cred, signedIn: signedIn}
	roles := pg.comp.cfg.Roles
	for _, g := range p.Groups {
		switch {
		case slices.Contains(roles.AdminGroups, g):
			v.role = max(v.role, roleAdmin)
		case slices.Contains(roles.AuditorGroups, g):
			v.role = max(v.role, roleAuditor)
		}
	}
	return v
}

// maySee reports whether v may see req: its requester, an approver named
// at any of its levels, or the auditor or admin role.
func (v *viewer) maySee(req *access.Request) bool {
	if v.role >= roleAuditor || req.User == v.p.User {
		return true
	}
	for _, l := range req.Levels {
		if l.Allows(v.p.User, v.p.Groups) {
			return true
		}
	}
	return false
}

// mayDecide reports whether v is an approver of req's current level who
// is not its requester (the admin API's rule; access has the last word).
func (v *viewer) mayDecide(req *access.Request) bool {
	c := approvalsCaller{adminCaller: adminCaller{role: v.role, user: v.p.User}, groups: v.p.Groups}
	return req.Status == access.StatusPending && c.mayDecide(req)
}

// serviceFor returns the access service behind the snapshot (set by serve
// before the snapshot is served), or answers 503 and returns nil when
// there is none.
func (pg *approvalsPage) serviceFor(w http.ResponseWriter, v *viewer) *access.Service {
	if a, ok := pg.comp.snap.Approvals.(proxyApprovals); ok {
		return a.svc
	}
	pg.message(w, http.StatusServiceUnavailable, v, "Approvals are not available", "This gateway runs no approvals service.")
	return nil
}

// postService is serviceFor for a POST that checkPost accepts; nil when
// it answered.
func (pg *approvalsPage) postService(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) *access.Service {
	if !pg.checkPost(w, r, host, v) {
		return nil
	}
	return pg.serviceFor(w, v)
}

// pageData is what every template reads.
type pageData struct {
	Title    string
	User     string
	SignedIn bool
	CSRF     string
	Error    string

	// list
	Own, ToDecide []requestView
	Apps          []string
	Form          struct{ App, Tools, Reason string }
	// detail
	Request *requestView
	// message
	Lines          []string
	Link, LinkText string
}

func (pg *approvalsPage) data(v *viewer, title string) *pageData {
	d := &pageData{Title: title}
	if v != nil {
		d.User, d.SignedIn, d.CSRF = v.p.User, v.signedIn, pg.csrf(v)
	}
	return d
}

func (pg *approvalsPage) render(w http.ResponseWriter, status int, name string, d *pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := approvalsTemplates.ExecuteTemplate(w, name, d); err != nil {
		pg.log.Error("cannot render the approval page", "page", name, "error", err.Error())
	}
}

// message shows a page of text.
func (pg *approvalsPage) message(w http.ResponseWriter, status int, v *viewer, title string, lines ...string) {
	d := pg.data(v, title)
	d.Lines = lines
	if status != http.StatusNotFound || v != nil {
		d.Link, d.LinkText = "/approvals", "Your approval requests"
	}
	pg.render(w, status, "message", d)
}

func (pg *approvalsPage) notFound(w http.ResponseWriter, v *viewer) {
	// The same answer for an id that does not exist and for one the
	// viewer may not see.
	pg.message(w, http.StatusNotFound, v, "No such approval request", "There is no approval request here that you may see.")
}

func (pg *approvalsPage) serveList(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) {
	pg.showList(w, http.StatusOK, v, nil)
}

// showList renders the list page; form, when not nil, refills the request
// form after a refusal.
func (pg *approvalsPage) showList(w http.ResponseWriter, status int, v *viewer, form *url.Values) {
	svc := pg.serviceFor(w, v)
	if svc == nil {
		return
	}
	d := pg.data(v, "Approvals")
	all, err := svc.Requests("")
	if err != nil {
		pg.log.Error("cannot list approval requests", "error", err.Error())
		pg.message(w, http.StatusInternalServerError, v, "Approvals are not available", "The gateway could not read the approval requests.")
		return
	}
	for i := len(all) - 1; i >= 0; i-- { // newest first
		req := &all[i]
		switch {
		case req.User == v.p.User:
			d.Own = append(d.Own, pg.view(svc, req, v))
		case v.mayDecide(req):
			d.ToDecide = append(d.ToDecide, pg.view(svc, req, v))
		}
	}
	for _, app := range pg.comp.cfg.Applications {
		if slices.ContainsFunc(app.Rules, func(r RuleConfig) bool { return r.Approval != nil }) {
			d.Apps = append(d.Apps, app.Name)
		}
	}
	if form != nil {
		d.Form.App, d.Form.Tools, d.Form.Reason = form.Get("app"), form.Get("tools"), form.Get("reason")
		d.Error = form.Get("error")
	}
	pg.render(w, status, "list", d)
}

func (pg *approvalsPage) serveCreate(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) {
	svc := pg.postService(w, r, host, v)
	if svc == nil {
		return
	}
	f := r.PostForm
	tools := strings.FieldsFunc(f.Get("tools"), func(c rune) bool { return c == ',' || unicode.IsSpace(c) })
	req, created, err := svc.Request(v.p.User, v.p.Groups, f.Get("app"), tools, f.Get("reason"))
	if err != nil {
		status, _, msg := accessProblem(err)
		back := url.Values{"app": {f.Get("app")}, "tools": {f.Get("tools")}, "reason": {f.Get("reason")}, "error": {"The request was not made: " + msg}}
		pg.showList(w, status, v, &back)
		return
	}
	if created {
		pg.log.Info("approval requested on the page", "user", v.p.User, "app", req.App, "request", req.ID)
	}
	http.Redirect(w, r, "/approvals/"+req.ID, http.StatusSeeOther)
}

func (pg *approvalsPage) serveDetail(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) {
	pg.showDetail(w, r, http.StatusOK, v, "")
}

// showDetail renders request {id} of r's path, or the 404 page.
func (pg *approvalsPage) showDetail(w http.ResponseWriter, r *http.Request, status int, v *viewer, problem string) {
	svc := pg.serviceFor(w, v)
	if svc == nil {
		return
	}
	req, ok := pg.request(w, r, svc, v)
	if !ok {
		return
	}
	d := pg.data(v, "Approval request "+req.ID)
	rv := pg.view(svc, req, v)
	d.Request, d.Error = &rv, problem
	pg.render(w, status, "detail", d)
}

// request reads request {id} of r's path for v; false when it answered
// (404 for unknown and for invisible alike).
func (pg *approvalsPage) request(w http.ResponseWriter, r *http.Request, svc *access.Service, v *viewer) (*access.Request, bool) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxRequestID {
		pg.notFound(w, v)
		return nil, false
	}
	req, err := svc.Get(id)
	if err == nil && !v.maySee(req) {
		err = access.ErrUnknownRequest
	}
	if err != nil {
		if !errors.Is(err, access.ErrUnknownRequest) {
			pg.log.Error("cannot read an approval request", "error", err.Error())
			pg.message(w, http.StatusInternalServerError, v, "Approvals are not available", "The gateway could not read the approval request.")
			return nil, false
		}
		pg.notFound(w, v)
		return nil, false
	}
	return req, true
}

func (pg *approvalsPage) serveDecide(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) {
	svc := pg.postService(w, r, host, v)
	if svc == nil {
		return
	}
	req, ok := pg.request(w, r, svc, v)
	if !ok {
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != access.DecisionApprove && decision != access.DecisionDeny {
		pg.showDetail(w, r, http.StatusBadRequest, v, "Choose Approve or Deny.")
		return
	}
	var err error
	if decision == access.DecisionApprove && r.PostForm.Get("whole_tool") == "1" {
		_, err = svc.ApproveWholeTool(req.ID, v.p.User, v.p.Groups, r.PostForm.Get("comment"))
	} else {
		_, err = svc.Decide(req.ID, v.p.User, v.p.Groups, decision == access.DecisionApprove, r.PostForm.Get("comment"))
	}
	if err != nil {
		status, _, msg := accessProblem(err)
		pg.showDetail(w, r, status, v, "Your decision was not recorded: "+msg)
		return
	}
	pg.log.Info("approval decided on the page", "user", v.p.User, "request", req.ID, "decision", decision)
	http.Redirect(w, r, "/approvals/"+req.ID, http.StatusSeeOther)
}

func (pg *approvalsPage) serveLogout(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) {
	if !pg.checkPost(w, r, host, v) {
		return
	}
	pg.setCookie(w, pg.sessionCookie(), "", -1)
	pg.message(w, http.StatusOK, nil, "Signed out", "You are signed out of the approval page.")
}

// accessProblem is the status, the admin API's error code and the words
// for an access error (the mapping of access/types.go): writeAccessError
// answers with them, the page shows the words.
func accessProblem(err error) (status int, code, msg string) {
	msg = strings.TrimPrefix(err.Error(), "access: ")
	switch {
	case errors.Is(err, access.ErrUnknownRequest):
		return http.StatusNotFound, "not_found", "no such approval request"
	case errors.Is(err, access.ErrUnknownGrant):
		return http.StatusNotFound, "not_found", "no such grant"
	case errors.Is(err, access.ErrNotApprover), errors.Is(err, access.ErrSelfApproval):
		return http.StatusForbidden, "forbidden", msg
	case errors.Is(err, access.ErrAlreadyDecided), errors.Is(err, access.ErrNotPending):
		return http.StatusConflict, "conflict", msg
	case errors.Is(err, access.ErrUnknownFlow), errors.Is(err, access.ErrNoApproval),
		errors.Is(err, access.ErrMixedFlows), errors.Is(err, access.ErrBadRequest):
		return http.StatusBadRequest, "bad_request", msg
	case errors.Is(err, access.ErrBusy):
		return http.StatusServiceUnavailable, "unavailable", msg
	}
	return http.StatusInternalServerError, "internal", "cannot read or change the approval state"
}

// checkPost reads a POST's form and refuses it (403, nothing changed)
// unless it carries the viewer's CSRF token and comes from this origin.
func (pg *approvalsPage) checkPost(w http.ResponseWriter, r *http.Request, host *pageHost, v *viewer) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxPageForm)
	if err := r.ParseForm(); err != nil {
		pg.message(w, http.StatusBadRequest, v, "The form cannot be read", "Nothing was changed.")
		return false
	}
	why := ""
	origin := r.Header.Get("Origin")
	switch site := r.Header.Get("Sec-Fetch-Site"); {
	case origin != "" && origin != "null" && !strings.EqualFold(origin, host.origin):
		why = "it was sent from another site"
	case site != "" && site != "same-origin" && site != "none":
		why = "it was sent from another site"
	case !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(pg.csrf(v))):
		why = "its security token is missing or wrong"
	}
	if why != "" {
		pg.log.Warn("approval page form refused", "user", v.p.User, "reason", why)
		pg.message(w, http.StatusForbidden, v, "The form could not be verified",
			"The gateway refused it because "+why+". Nothing was changed. Open the page again and send the form from there.")
		return false
	}
	return true
}

// mac is HMAC-SHA256 of purpose and data under the page key, base64url.
func (pg *approvalsPage) mac(purpose, data string) string {
	m := hmac.New(sha256.New, pg.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrf is the form token of v's credential: it changes with every login
// and is unknown to other sites.
func (pg *approvalsPage) csrf(v *viewer) string {
	sum := sha256.Sum256([]byte(v.cred))
	return pg.mac("csrf", string(sum[:]))
}

func (pg *approvalsPage) sessionCookie() string {
	if pg.tls {
		return "__Host-mcpgw-approvals"
	}
	return "mcpgw-approvals"
}

func (pg *approvalsPage) loginCookie() string {
	if pg.tls {
		return "__Host-mcpgw-approvals-login"
	}
	return "mcpgw-approvals-login"
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) a cookie of the page:
// host-only, Path=/ (the __Host- prefix needs it), HttpOnly, SameSite=Lax
// (sent when a link from a chat or a mail opens the page), Secure over
// TLS.
func (pg *approvalsPage) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: pg.tls, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// startLogin sends the browser to the authorization server to log in for
// the host's first application, remembering in a login cookie the secret
// the state and the PKCE verifier derive from, and where to return.
func (pg *approvalsPage) startLogin(w http.ResponseWriter, r *http.Request, host *pageHost) {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	next := r.URL.Path
	if !safeNext(next) {
		next = "/approvals"
	}
	pg.setCookie(w, pg.loginCookie(), secret+"."+next, int(pageLoginTTL/time.Second))
	state, verifier := pg.mac("state", secret), pg.mac("verifier", secret)
	u := pg.login.AuthCodeURL(host.origin+"/approvals/callback", host.resources[0], state, identity.S256Challenge(verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// safeNext reports whether a path is one the login may return to: a page
// of the approvals, never another site or path.
func safeNext(p string) bool {
	if p == "/approvals" {
		return true
	}
	id, ok := strings.CutPrefix(p, "/approvals/")
	if !ok || id == "" || id == "callback" || id == "logout" || len(id) > maxRequestID {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// serveCallback is where the authorization server returns the browser: the
// state must be the one the login cookie's secret gives, the response must
// name our issuer (RFC 9207), and the code is redeemed with the secret's
// verifier for the host's first application.
func (pg *approvalsPage) serveCallback(w http.ResponseWriter, r *http.Request) {
	host := pg.host(r)
	if pg.login == nil || len(host.resources) == 0 {
		pg.message(w, http.StatusNotFound, nil, "Not found", "This gateway does not sign browsers in.")
		return
	}
	var secret, next string
	if c, err := r.Cookie(pg.loginCookie()); err == nil {
		secret, next, _ = strings.Cut(c.Value, ".")
	}
	pg.setCookie(w, pg.loginCookie(), "", -1) // single use
	q := r.URL.Query()
	if secret == "" || !safeNext(next) || !hmac.Equal([]byte(q.Get("state")), []byte(pg.mac("state", secret))) {
		pg.log.Info("approval page sign-in refused", "reason", "unknown or expired login")
		pg.loginFailed(w, http.StatusBadRequest, "This sign-in has expired, was already used, or was started in another browser.")
		return
	}
	if e := q.Get("error"); e != "" {
		detail := "The gateway's sign-in answered: " + truncateText(e, 100)
		if d := q.Get("error_description"); d != "" {
			detail += " (" + truncateText(d, 300) + ")"
		}
		pg.loginFailed(w, http.StatusForbidden, detail+".")
		return
	}
	if q.Get("iss") != pg.login.Issuer() {
		pg.loginFailed(w, http.StatusBadRequest, "The sign-in did not come from this gateway's authorization server.")
		return
	}
	resource := host.resources[0]
	tok, expires, err := pg.login.Exchange(r.Context(), q.Get("code"), pg.mac("verifier", secret), host.origin+"/approvals/callback", resource)
	if err != nil {
		pg.log.Warn("approval page sign-in failed", "error", err.Error())
		pg.loginFailed(w, http.StatusBadGateway, "The sign-in could not be completed.")
		return
	}
	p := pg.verify([]byte(tok), host)
	if p == nil {
		pg.loginFailed(w, http.StatusBadGateway, "The sign-in gave a token this page cannot use.")
		return
	}
	if len(tok) > maxCookieToken {
		pg.loginFailed(w, http.StatusBadRequest, "Your sign-in is too large for a browser cookie (you are in very many groups). "+
			"Use mcpgw approvals, or send your access token as Authorization: Bearer.")
		return
	}
	maxAge := int(expires.Sub(pg.now()) / time.Second)
	if maxAge <= 0 {
		pg.loginFailed(w, http.StatusBadGateway, "The sign-in gave a token that has already expired.")
		return
	}
	pg.setCookie(w, pg.sessionCookie(), tok, maxAge)
	pg.log.Info("signed in on the approval page", "user", p.User)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (pg *approvalsPage) loginFailed(w http.ResponseWriter, status int, detail string) {
	d := pg.data(nil, "Sign-in failed")
	d.Lines = []string{detail, "Open the approval page again to sign in once more."}
	d.Link, d.LinkText = "/approvals", "Sign in again"
	pg.render(w, status, "message", d)
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// requestView is a request as the templates show it.
type requestView struct {
	ID, App, User, Tools, ArgumentsHash, Reason string
	Status                                      access.Status
	Summary                                     string
	Level, Levels, Count, Approved              int
	Approvers                                   string
	Created, Expires                            string
	GrantID, GrantExpires                       string
	Denial                                      *decisionView
	Decisions                                   []decisionView
	MayDecide, OwnPending                       bool
}

type decisionView struct {
	Level                       int
	Approver, Decision, Comment string
	WholeTool                   bool
	Time                        string
}

func (pg *approvalsPage) view(svc *access.Service, req *access.Request, v *viewer) requestView {
	rv := requestView{
		ID: req.ID, App: req.App, User: req.User, Tools: strings.Join(req.Tools, ", "),
		ArgumentsHash: req.ArgumentsHash, Reason: req.Reason, Status: req.Status,
		Level: req.Level, Levels: len(req.Levels),
		Created: pageTime(req.Created), Expires: pageTime(req.Expires), GrantID: req.GrantID,
		MayDecide:  v.mayDecide(req),
		OwnPending: req.User == v.p.User && req.Status == access.StatusPending,
	}
	for _, d := range req.Decisions {
		dv := decisionView{Level: d.Level, Approver: d.Approver, Decision: d.Decision, Comment: d.Comment, WholeTool: d.WholeTool, Time: pageTime(d.Time)}
		rv.Decisions = append(rv.Decisions, dv)
		if d.Decision == access.DecisionDeny {
			rv.Denial = &dv
		}
		if d.Level == req.Level && d.Decision == access.DecisionApprove {
			rv.Approved++
		}
	}
	switch req.Status {
	case access.StatusPending:
		rv.Summary = "Pending: level " + strconv.Itoa(req.Level) + " of " + strconv.Itoa(len(req.Levels))
		if req.Level >= 1 && req.Level <= len(req.Levels) {
			l := req.Levels[req.Level-1]
			rv.Count = l.Count
			var who []string
			if len(l.Users) > 0 {
				who = append(who, "users "+strings.Join(l.Users, ", "))
			}
			if len(l.Groups) > 0 {
				who = append(who, "members of "+strings.Join(l.Groups, ", "))
			}
			rv.Approvers = strings.Join(who, " or ")
		}
	case access.StatusApproved:
		rv.Summary = "Approved"
		for _, g := range svc.Grants(req.User, req.App) {
			if g.ID == req.GrantID {
				rv.GrantExpires = pageTime(g.Expires)
				rv.Summary = "Approved: granted until " + rv.GrantExpires
			}
		}
	case access.StatusDenied:
		rv.Summary = "Denied"
	case access.StatusExpired:
		rv.Summary = "Expired"
	}
	return rv
}

func pageTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// pageHostKeys are the routing keys of a frontend URL, as the proxy's
// (lower-case host:port, the default port explicit; loopback names
// interchangeable).
func pageHostKeys(u *url.URL) []string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = schemePort(u.Scheme)
	}
	switch ip := net.ParseIP(host); {
	case host == "localhost" || (ip != nil && ip.IsLoopback()):
		return []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port}
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	return []string{host + ":" + port}
}

// requestHostKey is the routing key of a Host header.
func requestHostKey(host string, tls bool) string {
	host = strings.ToLower(host)
	if i := strings.LastIndexByte(host, ':'); i < 0 || strings.HasSuffix(host, "]") {
		if tls {
			return host + ":443"
		}
		return host + ":80"
	}
	return host
}

// originOfKey is the browser's origin for a routing key: the default port
// of the scheme left out.
func originOfKey(scheme, key string) string {
	scheme = strings.ToLower(scheme)
	return scheme + "://" + strings.TrimSuffix(key, ":"+schemePort(scheme))
}

func schemePort(scheme string) string {
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// listenIsLoopback reports whether server.listen names a loopback address
// (as serve binds it): dev-user tokens are then accepted without
// identity.allow_dev_users.
func listenIsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
