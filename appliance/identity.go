package appliance

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/internal/state"
)

// tokenKeyInfo is the HKDF info of the key the authorization server signs
// and seals its tokens with. It differs from every other use of the
// session key, so the two keys are independent (RFC 5869 section 3.2) and
// the session-id AES key is never used for anything else.
const tokenKeyInfo = "mcpgw oauth token key v1"

// identityRuntime is the part of identity that outlives reloads: the state
// store and the keys derived from data_dir's key material. attach builds,
// per configuration, what the proxy's Snapshot needs from it.
type identityRuntime struct {
	store    state.Store
	tokenKey []byte
	// cimd fetches client ID metadata documents for every authorization
	// server this process builds, so its cache survives reloads. Only
	// public https addresses are fetched (MCP-REQUIREMENTS.md 4.6.3).
	cimd *identity.CIMDFetcher
	log  *slog.Logger
}

// newIdentityRuntime derives the token key from the session key with HKDF
// (SHA-256, info tokenKeyInfo).
func newIdentityRuntime(sessionKey []byte, store state.Store, log *slog.Logger) (*identityRuntime, error) {
	k, err := deriveTokenKey(sessionKey)
	if err != nil {
		return nil, err
	}
	return &identityRuntime{
		store:    store,
		tokenKey: k,
		cimd:     identity.NewCIMDFetcher(identity.CIMDConfig{}),
		log:      log.With("component", "identity"),
	}, nil
}

func deriveTokenKey(sessionKey []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, sessionKey, nil, tokenKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("cannot derive the token key: %w", err)
	}
	return k, nil
}

// attach sets the identity parts of comp.snap for comp.cfg: the token
// verifier, the handler of the metadata documents and /oauth/*, and each
// application's resource metadata URL, and the approval page
// (approvals_page.go) over them. dev_users are compiled by compile;
// with no OIDC configuration they are all there is and nothing is set here.
//
//	broker    the AuthServer (mcpgw is the authorization server, issuer
//	          server.url) logs users in at the provider with OIDCUpstream;
//	          its access tokens are verified by the AuthServer
//	resource  bearer JWTs of the provider, verified by a JWTVerifier; the
//	          metadata points clients at the provider
//
// What attach starts is stopped by comp.close.
func (r *identityRuntime) attach(ctx context.Context, comp *compiled) (err error) {
	defer func() {
		if err == nil { // whichever way attach set identity up
			err = r.attachApprovalsPage(comp)
		}
	}()
	cfg := comp.cfg
	id := &cfg.Identity
	var apps []identity.OAuthApp
	for i, app := range cfg.Applications {
		if app.Auth != "oauth" {
			continue
		}
		// The audience the proxy verifies against: the parsed frontend
		// URL, as the proxy prints it.
		apps = append(apps, identity.OAuthApp{Name: app.Name, Resource: comp.snap.Applications[i].Frontend.String()})
	}
	if len(apps) == 0 {
		return nil
	}
	switch id.Mode {
	case "resource":
		issuer := resourceIssuer(id)
		if issuer == "" {
			return nil // dev users only; validation made sure they exist
		}
		v, err := identity.NewJWTVerifier(ctx, identity.JWTConfig{Issuer: issuer, GroupsClaim: id.GroupsClaim})
		if err != nil {
			return fmt.Errorf("cannot set up resource mode: %w", err)
		}
		if err := v.Discover(ctx); err != nil {
			r.log.Warn("identity provider not reachable yet; tokens are refused until it is", "error", err.Error())
		}
		comp.closers = append(comp.closers, v.Close)
		comp.provider = v.Discover
		comp.snap.Tokens = v
		// The metadata sends clients to the provider.
		comp.snap.IdentityHandler = identity.ProtectedResourceHandler(apps, []string{v.Issuer()})
	default: // broker
		if id.Env["OIDC_CLIENT_ID"].Reveal() == "" {
			return nil // dev users only
		}
		base := strings.TrimSuffix(cfg.Server.URL, "/")
		up, err := identity.NewOIDCUpstream(ctx, oidcConfig(cfg))
		if err != nil {
			return fmt.Errorf("cannot set up the login at the identity provider: %w", err)
		}
		if err := up.Discover(ctx); err != nil {
			r.log.Warn("identity provider not reachable yet; logins fail until it is", "error", err.Error())
		}
		comp.provider = up.Discover
		as, err := identity.NewAuthServer(identity.AuthServerConfig{
			Issuer:         base,
			Apps:           apps,
			Store:          r.store,
			Upstream:       up,
			ClientMetadata: r.cimd,
			Key:            r.tokenKey,
			TokenTTL:       id.TokenTTL,
			Log:            r.log,
		})
		if err != nil {
			return fmt.Errorf("cannot set up the authorization server: %w", err)
		}
		comp.closers = append(comp.closers, func() { as.Close() })
		comp.snap.Tokens = as
		// The authorization server serves the protected resource
		// metadata of its applications too, naming itself.
		comp.snap.IdentityHandler = as.Handler()
	}
	for i := range comp.snap.Applications {
		a := &comp.snap.Applications[i]
		if !a.AuthNone {
			a.ResourceMetadata = identity.ResourceMetadataURL(a.Frontend.String())
		}
	}
	return nil
}

// oidcConfig is the broker's login at the identity provider, from the
// identity section and its env file. check's preflight builds the same.
func oidcConfig(cfg *Config) identity.OIDCConfig {
	id := &cfg.Identity
	env := id.Env
	return identity.OIDCConfig{
		Issuer:       id.Issuer,
		ClientID:     env["OIDC_CLIENT_ID"].Reveal(),
		ClientSecret: env["OIDC_CLIENT_SECRET"].Reveal(),
		AuthURL:      env["OIDC_AUTH_URL"].Reveal(),
		TokenURL:     env["OIDC_TOKEN_URL"].Reveal(),
		UserURL:      env["OIDC_USER_URL"].Reveal(),
		Scopes:       []string{env["OIDC_SCOPES"].Reveal()},
		RedirectURL:  strings.TrimSuffix(cfg.Server.URL, "/") + "/oauth/callback",
		GroupsClaim:  id.GroupsClaim,
	}
}

// resourceIssuer is identity.issuer or, when it is not written, derived
// from OIDC_AUTH_URL by dropping the endpoint's last path segment
// (PingOne: https://auth.pingone.com/<env>/as/authorize gives
// https://auth.pingone.com/<env>/as). Providers whose issuer is not the
// parent of the authorization endpoint need identity.issuer.
func resourceIssuer(id *IdentityConfig) string {
	if id.Issuer != "" {
		return id.Issuer
	}
	auth := id.Env["OIDC_AUTH_URL"].Reveal()
	u, err := url.Parse(auth)
	if auth == "" || err != nil {
		return ""
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = path.Dir(strings.TrimSuffix(u.Path, "/"))
	if u.Path == "/" || u.Path == "." {
		u.Path = ""
	}
	u.RawPath = ""
	return u.String()
}

// describe names the identity setup for the startup log line.
func (r *identityRuntime) describe(comp *compiled) string {
	id := &comp.cfg.Identity
	switch {
	case comp.snap.Tokens == nil:
		return id.Mode + " (dev users only)"
	case id.Mode == "resource":
		return "resource (issuer " + resourceIssuer(id) + ")"
	}
	return "broker (authorization server " + comp.cfg.Server.URL + ")"
}

// readiness is what /readyz reports: the configuration is loaded and the
// state store answers. Whether the identity provider's metadata has been
// discovered is reported too (once it has, it is kept, so this does not
// tell whether the provider answers now), without deciding readiness: a gateway whose provider is down still serves every
// token it issued, and taking every node out of rotation for it would make
// an outage of the provider one of the gateway. Asking identity costs a
// network request at most once per its retry backoff (1 s to 30 s).
func (r *identityRuntime) readiness(ctx context.Context, comp *compiled) readiness {
	rd := readiness{Ready: true, Checks: map[string]string{}}
	if comp == nil {
		rd.Ready = false
		rd.Checks["config"] = "not loaded"
	} else {
		rd.Checks["config"] = "loaded"
	}
	if _, err := r.store.Get("readyz"); err != nil && !errors.Is(err, state.ErrNotFound) {
		rd.Ready = false
		rd.Checks["state"] = "unavailable"
	} else {
		rd.Checks["state"] = "open"
	}
	if comp != nil && comp.provider != nil {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := comp.provider(ctx); err != nil {
			rd.Checks["identity_provider"] = "not discovered: logins fail until it is; issued tokens still work"
		} else {
			rd.Checks["identity_provider"] = "discovered"
		}
	}
	return rd
}
