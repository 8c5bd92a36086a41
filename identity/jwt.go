package identity

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/dgraph-io/ristretto/v2"
)

// SourceJWT is the Source of principals from IdP-issued JWTs (resource mode).
const SourceJWT = "jwt"

// ErrInvalidJWT is wrapped by every error of JWTVerifier.Verify for a token
// that is not good for the request (malformed, bad signature, other issuer,
// other audience, expired, not yet valid, no usable user). A token that
// cannot be checked because the provider is down wraps ErrProviderDown
// instead.
var ErrInvalidJWT = errors.New("identity: invalid JWT")

// Preallocated errors of the cache-hit path, which must not allocate.
var (
	errJWTAudience = fmt.Errorf("%w: not issued for this application (aud)", ErrInvalidJWT)
	errJWTExpired  = fmt.Errorf("%w: expired", ErrInvalidJWT)
	errJWTTooLarge = fmt.Errorf("%w: longer than %d bytes", ErrInvalidJWT, maxJWTSize)
	errJWTEmpty    = fmt.Errorf("%w: empty", ErrInvalidJWT)
)

const (
	// maxJWTSize bounds a token before it is hashed or parsed. IdP access
	// tokens are 1-2 KiB; 16 KiB leaves room for large group claims.
	maxJWTSize = 16 << 10
	// defaultClockSkew is JWTConfig.ClockSkew's default.
	defaultClockSkew = 60 * time.Second
	// maxJWTCacheTTL bounds how long a verified token stays cached, whatever
	// its exp says.
	maxJWTCacheTTL = 24 * time.Hour
	// jwtCacheEntries bounds the cache (each entry costs 1).
	jwtCacheEntries = 100_000
)

// JWTConfig configures resource mode: clients bring JWT access tokens that
// the identity provider issued, and the gateway checks them.
type JWTConfig struct {
	// Issuer is the provider's issuer URL (identity.issuer), compared with
	// each token's iss and used to discover its jwks_uri: OpenID Connect
	// discovery first, then RFC 8414 authorization server metadata.
	Issuer string
	// GroupsClaim names the claim with the user's groups (a string or a
	// list of strings). Default "groups".
	GroupsClaim string
	// ClockSkew is the leeway for exp and nbf. Default 60 s.
	ClockSkew time.Duration
	// HTTPClient fetches the metadata and keys; nil: a client with 10 s
	// timeouts that honours HTTPS_PROXY.
	HTTPClient *http.Client
}

// JWTVerifier checks bearer JWTs from the identity provider (resource mode):
// the signature against the provider's JWKS (RS256, ES256, PS256 or EdDSA
// only; never "none" or HS*, RFC 8725 section 3.1), the issuer, the
// audience (the application's frontend URL), and exp and nbf with the
// configured clock skew. The user is the email claim unless email_verified
// is false, else preferred_username, else sub; groups come from the
// configured claim of the token.
//
// Verified tokens are cached, keyed by their SHA-256, until their exp: a
// token seen before costs a hash and a lookup and allocates nothing
// (jwt_test.go measures both). Keys are fetched with go-oidc's remote key
// set, which re-fetches the JWKS when a token names a key it does not hold,
// so a key rotation at the provider needs nothing here; a cached token stays
// accepted until its exp even if its key is withdrawn earlier. go-oidc also
// re-fetches when a signature does not verify, one fetch at a time, so
// forged tokens cost the provider at most one JWKS request in flight. (It
// hands a fetch's keys to the waiting checks a moment before storing them,
// so a token checked in that moment can meet the previous key set: a new
// key may fail once, a withdrawn one pass once, right after a fetch.)
//
// The provider need not be up at startup: discovery is retried as for
// OIDCUpstream, and until it succeeds Verify fails with ErrProviderDown.
//
// A JWTVerifier is safe for concurrent use. Close stops the cache's
// goroutines.
type JWTVerifier struct {
	issuer      string
	groupsClaim string
	skew        time.Duration
	client      *http.Client
	now         func() time.Time

	disc  discovered[oidc.IDTokenVerifier]
	cache *ristretto.Cache[uint64, *jwtEntry]

	// stats count Verify's cache lookups (CacheStats), sharded by token
	// so that concurrent Verify calls seldom write the same cache line,
	// and kept off the line of the fields above, which every Verify reads.
	_     [64]byte
	stats [jwtStatShards]jwtStats
}

// jwtStats is one shard of JWTVerifier's lookup counts, on a cache line of
// its own.
type jwtStats struct {
	hits, misses atomic.Uint64
	_            [48]byte
}

const jwtStatShards = 8 // a power of two

// jwtEntry is a verified token in the cache. The cache is keyed by the
// first 8 bytes of the token's SHA-256; the entry keeps all 32 and a hit
// compares them, so two tokens that share a key never share an entry.
type jwtEntry struct {
	sum [sha256.Size]byte
	// exp is the token's exp; it is accepted until exp + the clock skew,
	// and cached until exp.
	exp       time.Time
	audiences []string
	principal *Principal
}

// NewJWTVerifier checks cfg and makes a first discovery attempt with ctx. It
// fails only for a configuration error; see JWTVerifier for a provider that
// is down.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("identity: JWT issuer is empty (identity.issuer)")
	}
	if err := checkProviderURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("identity: JWT issuer: %w", err)
	}
	if cfg.ClockSkew < 0 {
		return nil, errors.New("identity: JWT clock skew is negative")
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = defaultClockSkew
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	cache, err := ristretto.NewCache(&ristretto.Config[uint64, *jwtEntry]{
		NumCounters: 10 * jwtCacheEntries,
		MaxCost:     jwtCacheEntries,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("identity: cannot create the JWT cache: %w", err)
	}
	v := &JWTVerifier{
		issuer:      cfg.Issuer,
		groupsClaim: cfg.GroupsClaim,
		skew:        cfg.ClockSkew,
		client:      upstreamHTTPClient(cfg.HTTPClient),
		now:         time.Now,
		cache:       cache,
	}
	v.disc = discovered[oidc.IDTokenVerifier]{load: v.discover, now: time.Now}
	_ = v.Discover(ctx)
	return v, nil
}

// Issuer returns the configured issuer, for the protected resource
// metadata's authorization_servers.
func (v *JWTVerifier) Issuer() string { return v.issuer }

// Discover returns nil once the provider's keys can be fetched (its metadata
// is known), discovering it now when needed and no backoff is pending.
func (v *JWTVerifier) Discover(ctx context.Context) error {
	ctx, cancel := withUpstreamTimeout(ctx)
	defer cancel()
	_, err := v.disc.get(ctx)
	return err
}

// Close stops the cache's goroutines. Verify must not be called after.
func (v *JWTVerifier) Close() { v.cache.Close() }

func (v *JWTVerifier) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	md, err := discoverProvider(ctx, v.client, v.issuer, true)
	if err != nil {
		if errors.Is(err, ErrProviderDown) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: cannot discover the JWT issuer %s: %w", ErrProviderDown, v.issuer, err)
	}
	if md.JWKSURL == "" {
		return nil, fmt.Errorf("%w: the JWT issuer's metadata has no jwks_uri", ErrProviderDown)
	}
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), v.client), md.JWKSURL)
	return oidc.NewVerifier(md.Issuer, keys, &oidc.Config{
		SupportedSigningAlgs: jwtAlgs,
		// The audience is checked per request, and exp and nbf with this
		// verifier's skew: go-oidc allows none on exp and a fixed 5 minutes
		// on nbf.
		SkipClientIDCheck: true,
		SkipExpiryCheck:   true,
	}), nil
}

// Verify checks token for audience (the application's frontend URL) and
// returns its principal, shared and immutable. A token verified before (for
// any audience it names) is answered from the cache without allocating.
func (v *JWTVerifier) Verify(token []byte, audience string) (*Principal, error) {
	switch {
	case len(token) == 0:
		return nil, errJWTEmpty
	case len(token) > maxJWTSize:
		return nil, errJWTTooLarge
	}
	sum := sha256.Sum256(token)
	key := binary.LittleEndian.Uint64(sum[:8])
	now := v.now()
	if e, ok := v.cache.Get(key); ok && e.sum == sum {
		v.stats[key&(jwtStatShards-1)].hits.Add(1)
		switch {
		case now.After(e.exp.Add(v.skew)):
			return nil, errJWTExpired
		case !containsString(e.audiences, audience):
			return nil, errJWTAudience
		}
		return e.principal, nil
	}
	v.stats[key&(jwtStatShards-1)].misses.Add(1)
	e, err := v.verify(token, now)
	if err != nil {
		return nil, err
	}
	e.sum = sum
	// Cached until exp, bounded; a token within the skew after its exp
	// verifies but is not cached.
	if ttl := min(e.exp.Sub(now), maxJWTCacheTTL); ttl > 0 {
		v.cache.SetWithTTL(key, e, 1, ttl)
	}
	if !containsString(e.audiences, audience) {
		return nil, errJWTAudience
	}
	return e.principal, nil
}

// CacheStats returns how many Verify calls found their token in the cache
// (hits) and how many did not (misses: a token's first use, and every
// token that does not verify). Safe for concurrent use.
func (v *JWTVerifier) CacheStats() (hits, misses uint64) {
	for i := range v.stats {
		hits += v.stats[i].hits.Load()
		misses += v.stats[i].misses.Load()
	}
	return hits, misses
}

// jwtClaims are the registered claims go-oidc's IDToken does not expose.
type jwtClaims struct {
	NotBefore *float64 `json:"nbf"`
}

// verify does the full check (all but the audience) of a token not in the
// cache.
func (v *JWTVerifier) verify(token []byte, now time.Time) (*jwtEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), upstreamTimeout)
	defer cancel()
	verifier, err := v.disc.get(ctx)
	if err != nil {
		return nil, err
	}
	idt, err := verifier.Verify(oidc.ClientContext(ctx, v.client), string(token))
	if err != nil {
		// See OIDCUpstream.Exchange: a failed key fetch is only told apart
		// by go-oidc's text.
		if strings.Contains(err.Error(), "fetching keys") {
			return nil, fmt.Errorf("%w: cannot verify JWT: %v", ErrProviderDown, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidJWT, err)
	}
	if idt.Expiry.IsZero() {
		return nil, fmt.Errorf("%w: no exp claim", ErrInvalidJWT)
	}
	if now.After(idt.Expiry.Add(v.skew)) {
		return nil, errJWTExpired
	}
	var reg jwtClaims
	var claims map[string]json.RawMessage
	if err := idt.Claims(&reg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJWT, err)
	}
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJWT, err)
	}
	if reg.NotBefore != nil {
		nbf := time.Unix(0, int64(*reg.NotBefore*float64(time.Second)))
		if now.Add(v.skew).Before(nbf) {
			return nil, fmt.Errorf("%w: not valid yet (nbf)", ErrInvalidJWT)
		}
	}
	user, err := userFromClaims(claims)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJWT, err)
	}
	groups, err := parseGroups(claims[v.groupsClaim])
	if err != nil {
		return nil, fmt.Errorf("%w: claim %q: %v", ErrInvalidJWT, v.groupsClaim, err)
	}
	return &jwtEntry{
		exp:       idt.Expiry,
		audiences: idt.Audience,
		principal: NewPrincipal(user, groups, SourceJWT),
	}, nil
}
