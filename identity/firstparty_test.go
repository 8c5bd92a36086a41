package identity

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestFirstPartyClient: the gateway's own pages log in through the same
// authorize and callback as any client, without a consent page, and
// redeem the code in-process with PKCE, once, for the resource asked.
func TestFirstPartyClient(t *testing.T) {
	e := newASEnv(t)
	const redirect = "https://gw.example.com/approvals/callback"
	c, err := e.a.FirstPartyClient([]string{redirect})
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer() != asIssuer {
		t.Errorf("Issuer: got %q, want %q", c.Issuer(), asIssuer)
	}
	login := func(t *testing.T, verifier, redirectURI string) (code string) {
		t.Helper()
		u, _ := url.Parse(c.AuthCodeURL(redirectURI, asResource, "page-state", S256Challenge(verifier)))
		if got := u.Scheme + "://" + u.Host + u.Path; got != asIssuer+"/oauth/authorize" {
			t.Fatalf("AuthCodeURL: got %s, want the authorization endpoint", got)
		}
		st := e.toIdP(t, u.Query())
		w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
		q := clientRedirect(t, w, redirectURI) // straight back: no consent page
		if q.Get("state") != "page-state" || q.Get("iss") != asIssuer || q.Get("code") == "" {
			t.Fatalf("authorization response %v: want the state, iss and a code", q)
		}
		return q.Get("code")
	}
	ctx := context.Background()

	t.Run("login and exchange", func(t *testing.T) {
		code := login(t, asVerifier, redirect)
		tok, exp, err := c.Exchange(ctx, code, asVerifier, redirect, asResource)
		if err != nil {
			t.Fatal(err)
		}
		if want := e.clock.now().Add(DefaultTokenTTL); exp.After(want) || exp.Before(want.Add(-time.Second)) {
			t.Errorf("expiry: got %v, want %v", exp, want)
		}
		p, err := e.a.Verify([]byte(tok), asResource)
		if err != nil || p.User != "alice@example.com" {
			t.Fatalf("Verify: got %v, %v; want alice", p, err)
		}
		_, _, err = c.Exchange(ctx, code, asVerifier, redirect, asResource)
		if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("second redemption: got %v, want invalid_grant", err)
		}
		if strings.Contains(err.Error(), code) {
			t.Errorf("the error names the code")
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		code := login(t, asVerifier, redirect)
		if _, _, err := c.Exchange(ctx, code, strings.Repeat("v", 43), redirect, asResource); err == nil || !strings.Contains(err.Error(), "PKCE") {
			t.Errorf("got %v, want a PKCE failure", err)
		}
	})
	t.Run("another resource", func(t *testing.T) {
		code := login(t, asVerifier, redirect)
		if _, _, err := c.Exchange(ctx, code, asVerifier, redirect, "https://gw.example.com/other"); err == nil {
			t.Error("a code for one resource redeemed for another")
		}
	})
	t.Run("unregistered redirect URI is never redirected to", func(t *testing.T) {
		u, _ := url.Parse(c.AuthCodeURL("https://evil.example.com/approvals/callback", asResource, "s", S256Challenge(asVerifier)))
		w := e.get("/oauth/authorize?" + u.RawQuery)
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Errorf("got %d Location %q, want 400 without a redirect", w.Code, w.Header().Get("Location"))
		}
	})
	t.Run("other clients still get the consent page", func(t *testing.T) {
		id := e.register(t, asRedirect)
		st := e.toIdP(t, authParams(id))
		w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
		parseConsent(t, w)
	})
	t.Run("bad redirect URIs are refused", func(t *testing.T) {
		for _, r := range [][]string{nil, {"/approvals/callback"}, {"javascript:alert(1)"}, {"https://gw.example.com/cb#x"}} {
			if _, err := e.a.FirstPartyClient(r); err == nil {
				t.Errorf("FirstPartyClient(%q): got no error", r)
			}
		}
	})
}
