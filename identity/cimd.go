package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document;
// MCP-REQUIREMENTS.md 4.3.2): a client whose client_id is an https URL
// publishes its metadata there, and the authorization server fetches it
// instead of a registration. The fetch is a request to a URL that anyone
// chooses, made from inside the operator's network, so it is guarded
// against SSRF (4.6.3).

// Errors of CIMDFetcher.Fetch; each error wraps one of them.
var (
	// ErrCIMDClientID: the client_id is not a client ID metadata document
	// URL (https, a host, a path, no fragment, user info or dot segments).
	// The authorization server should look it up as a registered client.
	ErrCIMDClientID = errors.New("identity: client_id is not a metadata document URL")
	// ErrCIMDFetch: the document could not be fetched: the host is not a
	// public address, it did not answer in time, or answered with something
	// other than 200 and JSON (a redirect included).
	ErrCIMDFetch = errors.New("identity: cannot fetch client metadata document")
	// ErrCIMDInvalid: the document was fetched and is not acceptable: too
	// large, not a JSON object, client_id not the URL, no redirect_uris, a
	// shared-secret authentication method.
	ErrCIMDInvalid = errors.New("identity: invalid client metadata document")
)

// errCIMDNotPublic is the dialer's refusal; it wraps into ErrCIMDFetch.
var errCIMDNotPublic = errors.New("the address is not public (loopback, private, link-local or reserved)")

// Defaults of CIMDConfig.
const (
	// defaultCIMDMaxBytes: the draft recommends that servers cap the
	// document at 5 kilobytes (-00 section 6.6, "Maximum Response Size";
	// oauth-wg/draft-ietf-oauth-client-id-metadata-document#14: "typically
	// under 1kb"), but a 5120-byte cap was reported failing against
	// claude.ai's document (cloudflare/mcp#46), so mcpgw allows 16 KiB,
	// still far from anything that costs memory.
	defaultCIMDMaxBytes = 16 << 10
	defaultCIMDTimeout  = 5 * time.Second
	defaultCIMDTTL      = 5 * time.Minute
	defaultCIMDMinTTL   = time.Minute
	defaultCIMDMaxTTL   = 24 * time.Hour
	defaultCIMDNegTTL   = 10 * time.Second
	defaultCIMDEntries  = 1024

	maxCIMDURL          = 2048
	maxCIMDRedirectURIs = 32
	maxCIMDName         = 256
)

// CIMDConfig configures a CIMDFetcher. Zero values mean the defaults.
type CIMDConfig struct {
	// AllowPrivate lets documents be fetched from loopback, private and
	// other non-public addresses: for tests and lab setups only.
	AllowPrivate bool
	// Timeout bounds one fetch: connect, TLS, headers and body. Default 5 s.
	Timeout time.Duration
	// MaxBytes bounds the document. Default 16 KiB.
	MaxBytes int64
	// DefaultTTL is how long a document is cached when its response has no
	// Cache-Control max-age. Default 5 minutes.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL bound max-age (and no-store, no-cache, which count
	// as 0): a document is cached at least MinTTL, so a client cannot make
	// every authorization request a fetch, and at most MaxTTL. Defaults 1
	// minute and 24 hours.
	MinTTL, MaxTTL time.Duration
	// NegativeTTL is how long a failure is remembered before the URL is
	// fetched again. Default 10 s.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache. Default 1024.
	MaxEntries int
	// RootCAs verifies the servers' certificates; nil: the system roots.
	RootCAs *x509.CertPool
}

// CIMDFetcher fetches and caches client ID metadata documents (it
// implements ClientMetadataFetcher). It is safe for concurrent use;
// concurrent fetches of one URL share one request.
//
// Guards (MCP-REQUIREMENTS.md 4.6.3):
//   - only https URLs with a path, without user info, fragment or dot
//     segments (draft section 3);
//   - every address the client connects to is checked when it dials, after
//     DNS resolution (net.Dialer.Control), so a name that resolves to a
//     private address, or that changes its answer between a check and the
//     use (DNS rebinding), reaches nothing inside: loopback, RFC 1918 and
//     ULA private, link-local, CGNAT (100.64/10), unspecified, multicast,
//     broadcast, documentation, benchmarking and reserved ranges, IPv6
//     forms that embed such an IPv4 address (mapped, NAT64, 6to4) and
//     Teredo are refused unless AllowPrivate;
//   - no proxy from the environment (the check must see the real target),
//     no redirects (the draft: the server MUST NOT follow them), a time
//     limit, a size limit, 200 and a JSON media type only.
type CIMDFetcher struct {
	cfg    CIMDConfig
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex // guards the fields below
	cache    map[string]*cimdEntry
	inflight map[string]*cimdFetch
}

// cimdEntry is a cached result: a document or an error.
type cimdEntry struct {
	md      *ClientMetadata
	err     error
	expires time.Time
}

// cimdFetch is a fetch in progress; done is closed when res is set.
type cimdFetch struct {
	done chan struct{}
	res  *cimdEntry
}

// NewCIMDFetcher returns a fetcher with cfg's limits.
func NewCIMDFetcher(cfg CIMDConfig) *CIMDFetcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, defaultCIMDTimeout)
	def(&cfg.DefaultTTL, defaultCIMDTTL)
	def(&cfg.MinTTL, defaultCIMDMinTTL)
	def(&cfg.MaxTTL, defaultCIMDMaxTTL)
	def(&cfg.NegativeTTL, defaultCIMDNegTTL)
	cfg.MaxTTL = max(cfg.MaxTTL, cfg.MinTTL)
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = defaultCIMDMaxBytes
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = defaultCIMDEntries
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: cimdDialControl(cfg.AllowPrivate)}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &CIMDFetcher{
		cfg: cfg,
		client: &http.Client{
			Transport: transport, // the time limit is the request's context
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		now:      time.Now,
		cache:    make(map[string]*cimdEntry),
		inflight: make(map[string]*cimdFetch),
	}
}

// IsCIMDClientID reports whether clientID has the form of a client ID
// metadata document URL, without fetching anything: the authorization
// server's test for "fetch it" versus "look up a registration".
func IsCIMDClientID(clientID string) bool {
	_, err := parseCIMDClientID(clientID)
	return err == nil
}

// parseCIMDClientID checks the URL rules of the draft's section 3: https, a
// host, a path other than "/", no user info, no fragment, no "." or ".."
// path segments.
func parseCIMDClientID(clientID string) (*url.URL, error) {
	if len(clientID) > maxCIMDURL {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrCIMDClientID, maxCIMDURL)
	}
	u, err := url.Parse(clientID)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: not a URL", ErrCIMDClientID)
	case u.Scheme != "https":
		return nil, fmt.Errorf("%w: not https", ErrCIMDClientID)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: no host", ErrCIMDClientID)
	case u.User != nil:
		return nil, fmt.Errorf("%w: user info in the URL", ErrCIMDClientID)
	case u.Fragment != "" || strings.Contains(clientID, "#"):
		return nil, fmt.Errorf("%w: a fragment in the URL", ErrCIMDClientID)
	case u.Path == "" || u.Path == "/":
		return nil, fmt.Errorf("%w: no path", ErrCIMDClientID)
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") {
			return nil, fmt.Errorf("%w: a dot segment in the path", ErrCIMDClientID)
		}
	}
	return u, nil
}

// Fetch returns the metadata published at clientID, from the cache when it
// is fresh. The result is the caller's to keep and modify. Errors wrap
// ErrCIMDClientID, ErrCIMDFetch or ErrCIMDInvalid (or ctx's error), and are
// cached for NegativeTTL, except the caller's own cancellation.
func (f *CIMDFetcher) Fetch(ctx context.Context, clientID string) (*ClientMetadata, error) {
	u, err := parseCIMDClientID(clientID)
	if err != nil {
		return nil, err
	}
	if !f.cfg.AllowPrivate {
		// An address literal is refused before anything is sent; names are
		// checked when the connection is made.
		if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !cimdPublicAddr(a) {
			return nil, fmt.Errorf("%w: %s: %w", ErrCIMDFetch, u.Host, errCIMDNotPublic)
		}
	}
	for {
		f.mu.Lock()
		if e, ok := f.cache[clientID]; ok && f.now().Before(e.expires) {
			f.mu.Unlock()
			return e.result()
		}
		if fl, ok := f.inflight[clientID]; ok {
			f.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-fl.done:
			}
			if fl.res == nil {
				continue // its caller gave up; try again
			}
			return fl.res.result()
		}
		fl := &cimdFetch{done: make(chan struct{})}
		f.inflight[clientID] = fl
		f.mu.Unlock()

		md, ttl, err := f.fetch(ctx, u, clientID)
		f.mu.Lock()
		delete(f.inflight, clientID)
		if err != nil && ctx.Err() != nil {
			// The caller's cancellation says nothing about the document.
			f.mu.Unlock()
			close(fl.done)
			return nil, fmt.Errorf("identity: cannot fetch client metadata document: %w", ctx.Err())
		}
		if err != nil {
			ttl = f.cfg.NegativeTTL
		}
		e := &cimdEntry{md: md, err: err, expires: f.now().Add(ttl)}
		f.store(clientID, e)
		fl.res = e
		f.mu.Unlock()
		close(fl.done)
		return e.result()
	}
}

func (e *cimdEntry) result() (*ClientMetadata, error) {
	if e.err != nil {
		return nil, e.err
	}
	md := *e.md
	md.RedirectURIs = append([]string(nil), e.md.RedirectURIs...)
	md.GrantTypes = append([]string(nil), e.md.GrantTypes...)
	md.ResponseTypes = append([]string(nil), e.md.ResponseTypes...)
	return &md, nil
}

// store caches e; f.mu is held. When the cache is full, expired entries go
// first, then arbitrary ones (map order): the cache only saves fetches.
func (f *CIMDFetcher) store(key string, e *cimdEntry) {
	if len(f.cache) >= f.cfg.MaxEntries {
		now := f.now()
		for k, old := range f.cache {
			if !now.Before(old.expires) {
				delete(f.cache, k)
			}
		}
		for k := range f.cache {
			if len(f.cache) < f.cfg.MaxEntries {
				break
			}
			delete(f.cache, k)
		}
	}
	f.cache[key] = e
}

// cimdDocument is the document as published: the ClientMetadata fields and
// the ones whose presence is an error.
type cimdDocument struct {
	ClientID                string          `json:"client_id"`
	ClientName              string          `json:"client_name"`
	ClientURI               string          `json:"client_uri"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	ClientSecret            json.RawMessage `json:"client_secret"`
	ClientSecretExpiresAt   json.RawMessage `json:"client_secret_expires_at"`
}

// fetch GETs and checks one document, and says how long to cache it.
func (f *CIMDFetcher) fetch(ctx context.Context, u *url.URL, clientID string) (*ClientMetadata, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCIMDClientID, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mcpgw")
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, errCIMDNotPublic) {
			return nil, 0, fmt.Errorf("%w: %s: %w", ErrCIMDFetch, u.Host, errCIMDNotPublic)
		}
		if isTimeout(ctx, err) {
			return nil, 0, fmt.Errorf("%w: %s: no answer within %v", ErrCIMDFetch, u.Host, f.cfg.Timeout)
		}
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrCIMDFetch, u.Host, causeOf(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// Draft section 5 (-02): the server MUST NOT follow redirects.
		return nil, 0, fmt.Errorf("%w: %s answered %s; redirects are not followed", ErrCIMDFetch, u.Host, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, 0, fmt.Errorf("%w: %s answered %s", ErrCIMDFetch, u.Host, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil, 0, fmt.Errorf("%w: Content-Type %q, want application/json", ErrCIMDFetch, mt)
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", ErrCIMDInvalid, f.cfg.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		if isTimeout(ctx, err) {
			return nil, 0, fmt.Errorf("%w: %s: no whole answer within %v", ErrCIMDFetch, u.Host, f.cfg.Timeout)
		}
		return nil, 0, fmt.Errorf("%w: reading the answer: %v", ErrCIMDFetch, err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", ErrCIMDInvalid, f.cfg.MaxBytes)
	}
	md, err := parseCIMDDocument(body, clientID)
	if err != nil {
		return nil, 0, err
	}
	return md, f.cacheTTL(resp.Header), nil
}

// isTimeout reports whether err is the end of the fetch's time: ctx's
// deadline, or a dial, TLS or header timeout of the same length that fired
// first.
func isTimeout(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() == context.DeadlineExceeded || (errors.As(err, &ne) && ne.Timeout())
}

// parseCIMDDocument checks a document's content (draft sections 4 and 8).
func parseCIMDDocument(body []byte, clientID string) (*ClientMetadata, error) {
	var doc cimdDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object of client metadata: %v", ErrCIMDInvalid, err)
	}
	var errs []string
	if doc.ClientID != clientID {
		// Simple string comparison, no normalization (draft section 4).
		errs = append(errs, "its client_id is not the URL it was fetched from")
	}
	if len(doc.RedirectURIs) == 0 {
		errs = append(errs, "no redirect_uris")
	}
	if len(doc.RedirectURIs) > maxCIMDRedirectURIs {
		errs = append(errs, fmt.Sprintf("more than %d redirect_uris", maxCIMDRedirectURIs))
	}
	for _, r := range doc.RedirectURIs {
		if err := checkCIMDRedirectURI(r); err != nil {
			errs = append(errs, fmt.Sprintf("redirect_uri %q: %v", boundedText(r, 100), err))
		}
	}
	// No secret can be shared through a public document (draft section 4).
	if len(doc.ClientSecret) > 0 || len(doc.ClientSecretExpiresAt) > 0 {
		errs = append(errs, "it carries a client_secret")
	}
	switch doc.TokenEndpointAuthMethod {
	case "client_secret_basic", "client_secret_post", "client_secret_jwt":
		errs = append(errs, fmt.Sprintf("token_endpoint_auth_method %q needs a shared secret", doc.TokenEndpointAuthMethod))
	case "":
		doc.TokenEndpointAuthMethod = "none"
	}
	if len(doc.ClientName) > maxCIMDName || !printable(doc.ClientName) {
		errs = append(errs, fmt.Sprintf("client_name longer than %d bytes or not printable", maxCIMDName))
	}
	if doc.ClientURI != "" {
		if cu, err := url.Parse(doc.ClientURI); err != nil || cu.Scheme != "https" || cu.Host == "" || len(doc.ClientURI) > maxCIMDURL {
			errs = append(errs, "client_uri is not an https URL")
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrCIMDInvalid, strings.Join(errs, "; "))
	}
	if len(doc.GrantTypes) == 0 {
		doc.GrantTypes = []string{"authorization_code"} // RFC 7591 section 2
	}
	if len(doc.ResponseTypes) == 0 {
		doc.ResponseTypes = []string{"code"}
	}
	return &ClientMetadata{
		ClientID:                doc.ClientID,
		ClientName:              doc.ClientName,
		ClientURI:               doc.ClientURI,
		RedirectURIs:            doc.RedirectURIs,
		GrantTypes:              doc.GrantTypes,
		ResponseTypes:           doc.ResponseTypes,
		TokenEndpointAuthMethod: doc.TokenEndpointAuthMethod,
	}, nil
}

// checkCIMDRedirectURI accepts absolute URIs without a fragment (RFC 6749
// section 3.1.2): https, http only to a loopback host (RFC 8252 section
// 7.3; MCP-REQUIREMENTS.md 4.4.3), and private-use schemes of native apps
// (RFC 8252 section 7.1), but none a browser would run or read locally.
func checkCIMDRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > maxCIMDURL:
		return errors.New("not a URI")
	case u.Scheme == "":
		return errors.New("not absolute")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("has a fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Hostname() == "" { // "https://:443/cb" has a Host and no host
			return errors.New("no host")
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("http is allowed only to loopback hosts")
		}
	case "javascript", "data", "file", "vbscript", "blob", "about":
		return errors.New("scheme not allowed")
	}
	return nil
}

// cacheTTL reads Cache-Control (RFC 9111 section 5.2): max-age, or 0 for
// no-store and no-cache, clamped to [MinTTL, MaxTTL]; DefaultTTL without
// either.
func (f *CIMDFetcher) cacheTTL(h http.Header) time.Duration {
	ttl := f.cfg.DefaultTTL
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				ttl = 0
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64); err == nil && n >= 0 {
					ttl = time.Duration(min(n, int64(f.cfg.MaxTTL/time.Second))) * time.Second
				}
			}
		}
	}
	return min(max(ttl, f.cfg.MinTTL), f.cfg.MaxTTL)
}

// cimdDialControl refuses connections to addresses that are not public,
// unless allowPrivate. It runs for every address the dialer tries, after
// name resolution.
func cimdDialControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if allowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !cimdPublicAddr(ap.Addr()) {
			return errCIMDNotPublic
		}
		return nil
	}
}

// cimdBlocked are the special-purpose ranges that are not reachable public
// unicast (IANA IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890
// and successors), besides what netip's predicates catch.
var cimdBlocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791)
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space, CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1 (RFC 5737)
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (RFC 7526)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast (RFC 1112)
	netip.MustParsePrefix("::/96"),           // IPv4-compatible, deprecated (RFC 4291 2.5.5.1)
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (RFC 2765)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use IPv4/IPv6 translation (RFC 8215)
	netip.MustParsePrefix("100::/64"),        // discard-only (RFC 6666)
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments, Teredo (RFC 2928, 4380)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
	netip.MustParsePrefix("5f00::/16"),       // SRv6 SIDs (RFC 9602)
	netip.MustParsePrefix("fec0::/10"),       // site-local, deprecated (RFC 3879)
}

var (
	cimdNAT64 = netip.MustParsePrefix("64:ff9b::/96")
	cimd6to4  = netip.MustParsePrefix("2002::/16")
)

// cimdPublicAddr reports whether a is a public unicast address. IPv4-mapped
// addresses are judged by their IPv4 address, and so are NAT64 (RFC 6052)
// and 6to4 (RFC 3056) ones, which reach the IPv4 address they embed.
func cimdPublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case cimdNAT64.Contains(a):
			return cimdPublicAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case cimd6to4.Contains(a):
			return cimdPublicAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() || a.Zone() != "" {
		return false
	}
	for _, p := range cimdBlocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
