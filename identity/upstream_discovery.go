package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Provider discovery, shared by the OIDC login (upstream.go) and the
// resource-mode JWT verifier (jwt.go): fetch the provider's metadata
// document, and keep trying with backoff while the provider is down, so that
// the gateway starts without it and says "provider down" until it answers.

const (
	// maxProviderMetadata bounds a discovery document. Real ones are a few
	// KiB (PingOne's is about 3 KiB); the bound only stops a broken or hostile
	// endpoint from filling memory.
	maxProviderMetadata = 1 << 20
	// discoveryMinBackoff and discoveryMaxBackoff bound the wait between
	// discovery attempts after a failure: doubling from the minimum, so that
	// a provider back from an outage is used again within half a minute,
	// while requests in between fail at once instead of each waiting for a
	// timeout.
	discoveryMinBackoff = time.Second
	discoveryMaxBackoff = 30 * time.Second
	// upstreamTimeout bounds one request to the provider when the caller's
	// context has no earlier deadline and the configured client none.
	upstreamTimeout = 10 * time.Second
)

// providerMetadata is the part of an OpenID Provider's discovery document
// (OpenID Connect Discovery 1.0 section 3) or of RFC 8414 authorization
// server metadata that mcpgw uses.
type providerMetadata struct {
	Issuer      string   `json:"issuer"`
	AuthURL     string   `json:"authorization_endpoint"`
	TokenURL    string   `json:"token_endpoint"`
	UserInfoURL string   `json:"userinfo_endpoint"`
	JWKSURL     string   `json:"jwks_uri"`
	Algorithms  []string `json:"id_token_signing_alg_values_supported"`
}

// errMetadataNotFound marks a discovery URL that answered, but without a
// usable document there (404, not JSON, another issuer): the next candidate
// location may have it.
var errMetadataNotFound = errors.New("no provider metadata")

// upstreamHTTPClient returns client, or when it is nil a client with bounded
// waits that honours the environment's HTTPS_PROXY (appliances often reach
// their IdP through an egress proxy).
func upstreamHTTPClient(client *http.Client) *http.Client {
	if client != nil {
		return client
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = upstreamTimeout
	t.TLSHandshakeTimeout = 5 * time.Second
	return &http.Client{Transport: t, Timeout: upstreamTimeout}
}

// fetchProviderMetadata GETs the metadata document at docURL and checks that
// it names issuer (a trailing "/" aside: the document's own spelling wins,
// since ID tokens carry that one). A network failure, a timeout or a 5xx
// answer wraps ErrProviderDown; a document that is missing, malformed or
// names another issuer wraps errMetadataNotFound.
func fetchProviderMetadata(ctx context.Context, client *http.Client, docURL, issuer string) (*providerMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errMetadataNotFound, docURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot fetch %s: %v", ErrProviderDown, docURL, causeOf(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: %s answered %s", ErrProviderDown, docURL, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s answered %s", errMetadataNotFound, docURL, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil, fmt.Errorf("%w: %s is not JSON (Content-Type %q)", errMetadataNotFound, docURL, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderMetadata+1))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read %s: %v", ErrProviderDown, docURL, causeOf(err))
	}
	if len(body) > maxProviderMetadata {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errMetadataNotFound, docURL, maxProviderMetadata)
	}
	var md providerMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errMetadataNotFound, docURL, err)
	}
	if strings.TrimSuffix(md.Issuer, "/") != strings.TrimSuffix(issuer, "/") || md.Issuer == "" {
		return nil, fmt.Errorf("%w: %s names issuer %q, want %q", errMetadataNotFound, docURL, md.Issuer, issuer)
	}
	return &md, nil
}

// discoverProvider finds the metadata of issuer: OpenID Connect discovery
// (issuer + "/.well-known/openid-configuration") first, then, when oauth is
// set, RFC 8414 section 3 (the well-known path inserted between host and
// issuer path), for authorization servers that are not OpenID Providers.
// Errors wrap ErrProviderDown when the provider could not be asked, else
// errMetadataNotFound.
func discoverProvider(ctx context.Context, client *http.Client, issuer string, oauth bool) (*providerMetadata, error) {
	locations := []string{strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"}
	if oauth {
		if u, err := url.Parse(issuer); err == nil {
			locations = append(locations, u.Scheme+"://"+u.Host+"/.well-known/oauth-authorization-server"+strings.TrimSuffix(u.EscapedPath(), "/"))
		}
	}
	var errs []error
	for _, loc := range locations {
		md, err := fetchProviderMetadata(ctx, client, loc, issuer)
		if err == nil {
			return md, nil
		}
		if errors.Is(err, ErrProviderDown) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// issuerCandidates lists the issuers that OIDCConfig.Issuer == "" derives
// from an authorization endpoint, most specific first: the endpoint with its
// last path segment removed, then with the last two, and so on down to the
// bare origin. PingOne's https://auth.pingone.com/<env>/as/authorize gives
// https://auth.pingone.com/<env>/as first; Okta's /oauth2/default/v1/authorize
// yields /oauth2/default on the second try, Keycloak's /realms/r/protocol/
// openid-connect/auth /realms/r on the third, Google's and Auth0's the
// origin. Providers whose issuer is not a prefix of their authorization
// endpoint (Entra ID's /<tenant>/v2.0) need identity.issuer set.
func issuerCandidates(authURL string) []string {
	u, err := url.Parse(authURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil
	}
	origin := u.Scheme + "://" + u.Host
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	var out []string
	for n := len(segs) - 1; n > 0; n-- {
		out = append(out, origin+"/"+strings.Join(segs[:n], "/"))
	}
	return append(out, origin)
}

// causeOf returns the cause inside a *url.Error (its operation and URL
// are said otherwise), "timeout" for a timeout.
func causeOf(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timeout")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// discovered runs a discovery function until it first succeeds, then keeps
// its result forever. After a failure further attempts wait for a backoff
// (doubling from discoveryMinBackoff to discoveryMaxBackoff); calls in
// between return the last error at once. Safe for concurrent use: the
// result is read without locking, and one attempt runs at a time.
type discovered[T any] struct {
	load func(ctx context.Context) (*T, error)
	now  func() time.Time

	done atomic.Pointer[T]

	mu      sync.Mutex // guards the fields below; held during an attempt
	lastErr error
	next    time.Time
	backoff time.Duration
}

// get returns the discovered value, discovering it first when needed.
func (d *discovered[T]) get(ctx context.Context) (*T, error) {
	if v := d.done.Load(); v != nil {
		return v, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := d.done.Load(); v != nil {
		return v, nil
	}
	now := d.now()
	if d.lastErr != nil && now.Before(d.next) {
		return nil, d.lastErr
	}
	v, err := d.load(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up: say nothing about the provider.
			return nil, err
		}
		d.backoff = min(max(2*d.backoff, discoveryMinBackoff), discoveryMaxBackoff)
		d.next = d.now().Add(d.backoff)
		d.lastErr = err
		return nil, err
	}
	d.done.Store(v)
	d.lastErr = nil
	return v, nil
}

// withUpstreamTimeout bounds ctx by upstreamTimeout unless it already ends
// sooner.
func withUpstreamTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < upstreamTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, upstreamTimeout)
}
