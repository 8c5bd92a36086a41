package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpgw/mcpgw/internal/state"
)

// The consent page (MCP-REQUIREMENTS.md 4.6.1, confused deputy): before a
// client first gets a user's token, the user approves it on a page naming
// the client and where the login will be sent. The page cannot be framed
// (X-Frame-Options and CSP frame-ancestors) or cached, and its form is
// bound to the pending login twice: a CSRF token derived from the pending
// login's id is in the form, and a cookie derived from it too
// (SameSite=Lax, HttpOnly, __Host- and Secure on https), so that a form
// posted from another site, or from another browser, is refused. An
// approval is remembered per (user, client_id) together with the redirect
// host it was given for; a client that later asks to send the login
// elsewhere is asked about again.

// pendingRecord is a login waiting for the user's consent, stored under
// the hash of the pending id for loginTTL.
type pendingRecord struct {
	authRequest
	grantUser
}

// consentRecord is a remembered approval.
type consentRecord struct {
	RedirectTarget string // consentTarget of the redirect URI approved
	Approved       int64  // unix seconds
}

const (
	consentCookieSecure = "__Host-mcpgw-consent"
	consentCookiePlain  = "mcpgw-consent"
)

func consentKey(user, clientID string) string {
	return secretKey(keyConsent, user+"\x00"+clientID)
}

// redirectTarget is what the consent page shows of a redirect URI: scheme
// and host (with port).
func redirectTarget(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// consentTarget is what an approval is bound to: redirectTarget, without
// the port on a loopback IP, where native apps pick a new port for every
// login (registeredRedirect).
func consentTarget(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme != "http" || !isLoopbackIP(u.Hostname()) {
		return redirectTarget(redirectURI)
	}
	return "http://" + u.Hostname()
}

func (a *AuthServer) hasConsent(user, clientID, redirectURI string) (bool, error) {
	if isFirstParty(clientID) {
		return true, nil // the gateway's own pages (firstparty.go)
	}
	var rec consentRecord
	if _, err := a.getJSON(consentKey(user, clientID), &rec); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return rec.RedirectTarget == consentTarget(redirectURI), nil
}

// csrfToken derives the form token (purpose "form") or the cookie value
// (purpose "cookie") of a pending login.
func (a *AuthServer) csrfToken(purpose, pendingID string) string {
	m := hmac.New(sha256.New, a.csrfKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(pendingID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *AuthServer) consentCookieName() string {
	if a.secure {
		return consentCookieSecure
	}
	return consentCookiePlain
}

// askConsent stores the pending login and shows the consent page.
func (a *AuthServer) askConsent(w http.ResponseWriter, c *clientRecord, req *authRequest, user *grantUser) {
	id := randomToken()
	if err := a.putJSON(secretKey(keyPending, id), &pendingRecord{*req, *user}, loginTTL); err != nil {
		a.log.Error("cannot store a pending consent", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The login cannot continue", "The gateway could not record the login.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     a.consentCookieName(),
		Value:    a.csrfToken("cookie", id),
		Path:     "/",
		MaxAge:   int(loginTTL.Seconds()),
		Secure:   a.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	appName := req.Resource
	for _, app := range a.apps {
		if app.Resource == req.Resource && app.Name != "" {
			appName = app.Name
		}
	}
	name := c.ClientName
	if name == "" {
		name = c.ClientID
	}
	a.page(w, http.StatusOK, consentTemplate, consentPage{
		Title:          "Allow " + name + "?",
		ClientName:     name,
		ClientID:       c.ClientID,
		ClientURI:      c.ClientURI,
		Dynamic:        c.Dynamic,
		App:            appName,
		Resource:       req.Resource,
		User:           user.User,
		RedirectTarget: redirectTarget(req.RedirectURI),
		Loopback:       isLoopbackRedirect(req.RedirectURI),
		Scope:          req.Scope,
		Login:          id,
		CSRF:           a.csrfToken("form", id),
	})
}

func isLoopbackRedirect(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.Scheme == "http" && isLoopbackHost(u.Hostname())
}

// serveConsent takes the consent form's answer.
func (a *AuthServer) serveConsent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		a.errorPage(w, http.StatusBadRequest, "The approval cannot be read", "The form was malformed. Start the login again from your application.")
		return
	}
	id, csrf := r.PostForm.Get("login"), r.PostForm.Get("csrf")
	cookie, _ := r.Cookie(a.consentCookieName())
	origin := r.Header.Get("Origin")
	switch {
	// Origin is "null" under Referrer-Policy: no-referrer in some
	// browsers; the form token and the SameSite cookie still bind the post.
	case origin != "" && origin != "null" && !sameResource(origin, a.issuer):
		a.refuseConsent(w, "it was sent from another site ("+truncate(origin, 100)+")")
		return
	case id == "" || !hmac.Equal([]byte(csrf), []byte(a.csrfToken("form", id))):
		a.refuseConsent(w, "its security token is missing or wrong")
		return
	case cookie == nil || !hmac.Equal([]byte(cookie.Value), []byte(a.csrfToken("cookie", id))):
		a.refuseConsent(w, "your browser did not send the login's cookie (cookies must be enabled, and the form must be sent from the page the gateway showed)")
		return
	}
	var p pendingRecord
	if err := a.take(secretKey(keyPending, id), &p); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			a.errorPage(w, http.StatusBadRequest, "This login has expired or was already answered",
				"A login must be approved within 10 minutes, and once. Start the login again from your application.")
			return
		}
		a.log.Error("cannot read a pending consent", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The login cannot continue", "The gateway could not read the login's record.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: a.consentCookieName(), Value: "", Path: "/", MaxAge: -1,
		Secure: a.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	switch r.PostForm.Get("action") {
	case "approve":
		rec := consentRecord{RedirectTarget: consentTarget(p.RedirectURI), Approved: a.now().Unix()}
		if err := a.putJSON(consentKey(p.User, p.ClientID), &rec, 0); err != nil {
			a.log.Error("cannot store a consent", "err", err)
		}
		a.log.Info("client approved", "client_id", p.ClientID, "user", p.User, "redirect", rec.RedirectTarget)
		a.issueCode(w, r, &p.authRequest, &p.grantUser)
	default:
		a.log.Info("client denied", "client_id", p.ClientID, "user", p.User)
		a.redirectToClient(w, r, p.RedirectURI, url.Values{"error": {"access_denied"},
			"error_description": {"the user denied the request"}}, p.State)
	}
}

func (a *AuthServer) refuseConsent(w http.ResponseWriter, why string) {
	a.log.Warn("consent form refused", "reason", why)
	a.errorPage(w, http.StatusForbidden, "The approval could not be verified",
		"The gateway refused the answer because "+why+". Nothing was approved. Start the login again from your application.")
}

// setPageHeaders marks an HTML page of the server as not frameable, not
// cacheable and not leaking its URL (which carries codes and states).
func setPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (a *AuthServer) page(w http.ResponseWriter, status int, t *template.Template, data any) {
	setPageHeaders(w.Header())
	w.WriteHeader(status)
	if err := t.Execute(w, data); err != nil {
		a.log.Error("cannot render a page", "err", err)
	}
}

// errorPage shows what went wrong in a login, in words for the user.
func (a *AuthServer) errorPage(w http.ResponseWriter, status int, title, detail string) {
	a.page(w, status, errorTemplate, errorPageData{Title: title, Detail: detail})
}

type errorPageData struct{ Title, Detail string }

type consentPage struct {
	Title, ClientName, ClientID, ClientURI string
	Dynamic                                bool
	App, Resource, User                    string
	RedirectTarget                         string
	Loopback                               bool
	Scope                                  string
	Login, CSRF                            string
}

const pageStyle = `<style>
body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.35em}.box{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
.warn{background:#fff6e0;border-color:#e0b040}code{background:#f2f2f2;padding:0 .2em;word-break:break-all}
button{font-size:1em;padding:.5em 1.4em;margin-right:.6em;border-radius:4px;border:1px solid #888;cursor:pointer}
button.ok{background:#0b5cad;color:#fff;border-color:#0b5cad}
</style>`

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} - mcpgw</title>` + pageStyle + `</head><body>
<h1>{{.Title}}</h1>
<p>{{.Detail}}</p>
</body></html>
`))

var consentTemplate = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} - mcpgw</title>` + pageStyle + `</head><body>
<h1>Allow <strong>{{.ClientName}}</strong> to use {{.App}} as you?</h1>
<div class="box">
<p>You are signed in as <strong>{{.User}}</strong>.</p>
<p><strong>{{.ClientName}}</strong> asks to call the tools of <strong>{{.App}}</strong> (<code>{{.Resource}}</code>) with your identity and permissions{{if .Scope}} (scopes: <code>{{.Scope}}</code>){{end}}.</p>
<p>If you allow it, your login is sent to <strong><code>{{.RedirectTarget}}</code></strong>{{if .Loopback}} (a program on this computer){{end}}.</p>
<p>Client id: <code>{{.ClientID}}</code>{{if .ClientURI}}; web site: <code>{{.ClientURI}}</code>{{end}}</p>
</div>
{{if .Dynamic}}<div class="box warn"><p>This application registered itself with the gateway. Allow it only if you started this login yourself just now, from an application you trust.</p></div>{{end}}
<form method="post" action="/oauth/consent">
<input type="hidden" name="login" value="{{.Login}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button class="ok" type="submit" name="action" value="approve">Allow</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>
<p>The gateway remembers your answer for this application; you will not be asked again unless it asks to send your login elsewhere.</p>
</body></html>
`))
