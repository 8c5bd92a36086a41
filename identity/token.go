package identity

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Errors of Verify. The proxy answers each with 401 and a challenge; they
// differ only for logs and tests. They are preallocated: Verify is on the
// hot path.
var (
	// ErrBadToken: not an access token of this server (forged, garbled,
	// sealed with another key, or of another format).
	ErrBadToken = errors.New("identity: invalid access token")
	// ErrTokenExpired: the access token's lifetime is over.
	ErrTokenExpired = errors.New("identity: access token expired")
	// ErrTokenAudience: the access token was issued for another resource
	// (MCP-REQUIREMENTS.md 4.1.7).
	ErrTokenAudience = errors.New("identity: access token issued for another resource")
	// ErrTokenRevoked: the token's refresh family was revoked (a replayed
	// code or refresh token, or /oauth/revoke).
	ErrTokenRevoked = errors.New("identity: access token revoked")
)

const (
	accessTokenVersion1 = 1
	// accessTokenContextV1 is the additional data of every v1 access token.
	accessTokenContextV1 = "mcpgw oauth access token v1"
	// accessTokenKeyInfo derives the access-token AES key from the
	// authorization server's key (HKDF info); session ids use another.
	accessTokenKeyInfo = "mcpgw oauth access token v1 AES-256-GCM"

	// Limits on what an access token carries.
	maxTokenUserLen     = 512
	maxTokenClientIDLen = 2048 // client ID metadata document URLs
	maxTokenResourceLen = 2048
	maxTokenFamilyLen   = 64
	maxTokenGroups      = 512
	maxTokenGroupLen    = 512
	// maxTokenPlainLen bounds the whole plaintext, so that a token fits in
	// an Authorization header (about 8 KiB of base64url).
	maxTokenPlainLen = 6000
	maxTokenRawLen   = 1 + nonceLen + maxTokenPlainLen + tagLen
	// MaxAccessTokenLen is the length of the longest access token the
	// server issues; Verify refuses longer input before hashing it.
	MaxAccessTokenLen = (maxTokenRawLen*8 + 5) / 6
	minTokenPlainLen  = issuedLen + 5
	minTokenRawLen    = 1 + nonceLen + minTokenPlainLen + tagLen
)

// accessToken is what an access token carries (all of it sealed).
type accessToken struct {
	Expires  time.Time
	User     string
	ClientID string
	Resource string // the application's frontend URL: the audience
	Family   string // the refresh-token family the token was issued in
	Groups   []string
}

// tokenSealer seals and opens access tokens with AES-256-GCM, as
// SessionCodec does session ids. Safe for concurrent use.
type tokenSealer struct {
	aead    cipher.AEAD // random 96-bit nonce prepended by Seal
	context []byte
	enc     *base64.Encoding
}

func newTokenSealer(key []byte) (*tokenSealer, error) {
	aead, err := newAEAD(key, accessTokenKeyInfo, "access token")
	if err != nil {
		return nil, err
	}
	return &tokenSealer{aead: aead, context: []byte(accessTokenContextV1), enc: base64.RawURLEncoding.Strict()}, nil
}

// seal returns the access token for t.
func (s *tokenSealer) seal(t *accessToken) (string, error) {
	const prefix = "identity: cannot issue access token: "
	for _, f := range [...]struct {
		name  string
		value string
		limit int
	}{
		{"user", t.User, maxTokenUserLen},
		{"client_id", t.ClientID, maxTokenClientIDLen},
		{"resource", t.Resource, maxTokenResourceLen},
		{"family", t.Family, maxTokenFamilyLen},
	} {
		if len(f.value) > f.limit {
			return "", fmt.Errorf(prefix+"%s is %d bytes, limit %d", f.name, len(f.value), f.limit)
		}
	}
	if len(t.Groups) > maxTokenGroups {
		return "", fmt.Errorf(prefix+"%d groups, limit %d", len(t.Groups), maxTokenGroups)
	}
	p := make([]byte, 0, 256)
	p = binary.BigEndian.AppendUint64(p, uint64(t.Expires.UnixNano()))
	p = appendField(p, t.User)
	p = appendField(p, t.ClientID)
	p = appendField(p, t.Resource)
	p = appendField(p, t.Family)
	p = binary.AppendUvarint(p, uint64(len(t.Groups)))
	for _, g := range t.Groups {
		if len(g) > maxTokenGroupLen {
			return "", fmt.Errorf(prefix+"a group name is %d bytes, limit %d", len(g), maxTokenGroupLen)
		}
		p = appendField(p, g)
	}
	if len(p) > maxTokenPlainLen {
		return "", fmt.Errorf(prefix+"the user's groups make it %d bytes, limit %d", len(p), maxTokenPlainLen)
	}
	raw := s.aead.Seal([]byte{accessTokenVersion1}, nil, p, s.context)
	return s.enc.EncodeToString(raw), nil
}

// open checks tok and fills *t from it; anything this server did not seal
// is ErrBadToken. It does not check expiry or audience.
func (s *tokenSealer) open(tok []byte, t *accessToken) error {
	if len(tok) < (minTokenRawLen*8+5)/6 || len(tok) > MaxAccessTokenLen {
		return ErrBadToken
	}
	for _, b := range tok {
		if !isBase64URLChar(b) {
			return ErrBadToken
		}
	}
	raw := make([]byte, s.enc.DecodedLen(len(tok)))
	n, err := s.enc.Decode(raw, tok)
	if err != nil || n < minTokenRawLen || raw[0] != accessTokenVersion1 {
		return ErrBadToken
	}
	p, err := s.aead.Open(raw[1:1], nil, raw[1:n], s.context)
	if err != nil {
		return ErrBadToken
	}
	return decodeAccessToken(p, t)
}

// decodeAccessToken parses an authenticated plaintext strictly.
func decodeAccessToken(p []byte, t *accessToken) error {
	if len(p) < minTokenPlainLen {
		return ErrBadToken
	}
	r := fieldReader{p: p, pos: issuedLen}
	user := r.field(maxTokenUserLen)
	client := r.field(maxTokenClientIDLen)
	resource := r.field(maxTokenResourceLen)
	family := r.field(maxTokenFamilyLen)
	n := r.uvarint(maxTokenGroups)
	var groups []string
	if n > 0 {
		groups = make([]string, 0, n)
	}
	for range n {
		groups = append(groups, r.field(maxTokenGroupLen))
	}
	if r.bad || r.pos != len(p) {
		return ErrBadToken
	}
	*t = accessToken{
		Expires:  time.Unix(0, int64(binary.BigEndian.Uint64(p))),
		User:     user,
		ClientID: client,
		Resource: resource,
		Family:   family,
		Groups:   groups,
	}
	return nil
}

// fieldReader reads the uvarint-length-prefixed fields of a plaintext;
// bad is set at the first malformed field and later reads return zero
// values.
type fieldReader struct {
	p   []byte
	pos int
	bad bool
}

func (r *fieldReader) uvarint(limit uint64) int {
	if r.bad {
		return 0
	}
	l, k := binary.Uvarint(r.p[r.pos:])
	if k <= 0 || l > limit {
		r.bad = true
		return 0
	}
	r.pos += k
	return int(l)
}

func (r *fieldReader) field(limit uint64) string {
	l := r.uvarint(limit)
	if r.bad || l > len(r.p)-r.pos {
		r.bad = true
		return ""
	}
	s := string(r.p[r.pos : r.pos+l])
	r.pos += l
	return s
}

// tokenEntry is a verified access token in the cache.
type tokenEntry struct {
	digest    [sha256.Size]byte // of the token: a hit must match it all
	principal *Principal
	resource  string
	family    string
	expires   int64 // unix nanoseconds
}

// Token cache sizing: every entry costs 1.
const (
	tokenCacheEntries = 100_000
	// maxTokenCacheTTL bounds how long a verified token stays cached, so
	// that the cache follows the clock of Now in tests and drops entries of
	// tokens no longer used.
	maxTokenCacheTTL = 10 * time.Minute
)

// tokenCache wraps ristretto so that Close cannot race Get or Set
// (ristretto's Set after Close sends on a closed channel): every use is
// counted in inflight, and close waits for it to drain after setting
// closed. See policycache's decisionCache for the same construction.
type tokenCache struct {
	closed   atomic.Bool
	inflight atomic.Int64
	// hits and misses count Verify's lookups (CacheStats), beside the
	// counter every lookup writes anyway.
	hits, misses atomic.Uint64
	rc           *ristretto.Cache[uint64, *tokenEntry]
}

func newTokenCache() (*tokenCache, error) {
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *tokenEntry]{
		NumCounters:        tokenCacheEntries * 10,
		MaxCost:            tokenCacheEntries,
		BufferItems:        64,
		IgnoreInternalCost: true,
		// The key is already the first 8 bytes of a SHA-256; entries carry
		// the whole digest, so the conflict hash is unused.
		KeyToHash: func(h uint64) (uint64, uint64) { return h, 0 },
	})
	if err != nil {
		return nil, fmt.Errorf("identity: cannot create token cache: %w", err)
	}
	return &tokenCache{rc: rc}, nil
}

func (c *tokenCache) enter() bool {
	if c.closed.Load() {
		return false
	}
	c.inflight.Add(1)
	if c.closed.Load() {
		c.inflight.Add(-1)
		return false
	}
	return true
}

func (c *tokenCache) get(h uint64) (*tokenEntry, bool) {
	if !c.enter() {
		return nil, false
	}
	e, ok := c.rc.Get(h)
	c.inflight.Add(-1)
	return e, ok
}

func (c *tokenCache) set(h uint64, e *tokenEntry, ttl time.Duration) {
	if c.enter() {
		c.rc.SetWithTTL(h, e, 1, ttl)
		c.inflight.Add(-1)
	}
}

// wait blocks until buffered Sets are applied; for tests.
func (c *tokenCache) wait() {
	if c.enter() {
		c.rc.Wait()
		c.inflight.Add(-1)
	}
}

func (c *tokenCache) close() {
	if c.closed.Swap(true) {
		return
	}
	for c.inflight.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	c.rc.Close()
}

// Verify checks an access token this server issued for resource (the
// application's frontend URL, compared as a canonical URI: a trailing
// slash on an origin-only URL and the case of scheme and host do not
// matter, MCP-REQUIREMENTS.md 4.1.5). It returns the token's principal
// (Source SourceOAuth) or ErrBadToken, ErrTokenExpired, ErrTokenAudience or
// ErrTokenRevoked.
//
// Verify reads no Store: the token is sealed, so any node with the key
// checks it alone. Verified tokens are cached (ristretto, keyed by the
// token's SHA-256, until the token expires or at most maxTokenCacheTTL), and
// a cache hit allocates nothing. Verify is safe for concurrent use and does
// not keep token. The principal is shared and immutable.
//
// Revocation: a family revoked on this node (a replayed code or refresh
// token, /oauth/revoke) fails at once, cached or not, and so do families
// revoked before a restart (they are reloaded from the Store). A family
// revoked on another node sharing the Store is not seen until the etcd
// backend's watch brings it (DESIGN.md section 10); until then such access
// tokens stay valid until they expire (TokenTTL, an hour by default).
func (a *AuthServer) Verify(token []byte, resource string) (*Principal, error) {
	if len(token) > MaxAccessTokenLen {
		return nil, ErrBadToken
	}
	digest := sha256.Sum256(token)
	h := binary.LittleEndian.Uint64(digest[:8])
	now := a.now().UnixNano()
	if e, ok := a.cache.get(h); ok && e.digest == digest {
		a.cache.hits.Add(1)
		return a.check(e, resource, now)
	}
	a.cache.misses.Add(1)
	var t accessToken
	if err := a.sealer.open(token, &t); err != nil {
		return nil, err
	}
	e := &tokenEntry{
		digest:    digest,
		principal: NewPrincipal(t.User, t.Groups, SourceOAuth),
		resource:  t.Resource,
		family:    t.Family,
		expires:   t.Expires.UnixNano(),
	}
	p, err := a.check(e, resource, now)
	if ttl := time.Duration(e.expires - now); ttl > 0 {
		a.cache.set(h, e, min(ttl, maxTokenCacheTTL))
	}
	return p, err
}

// CacheStats returns how many Verify calls found their token in the cache
// of verified tokens (hits) and how many did not (misses: a token's first
// use, and every token that does not verify). Safe for concurrent use.
func (a *AuthServer) CacheStats() (hits, misses uint64) {
	return a.cache.hits.Load(), a.cache.misses.Load()
}

func (a *AuthServer) check(e *tokenEntry, resource string, now int64) (*Principal, error) {
	if now >= e.expires {
		return nil, ErrTokenExpired
	}
	if e.resource != resource && !sameResource(e.resource, resource) {
		return nil, ErrTokenAudience
	}
	if a.isRevoked(e.family, now) {
		return nil, ErrTokenRevoked
	}
	return e.principal, nil
}

// isRevoked reports whether family was revoked: one atomic load and a map
// lookup, no lock.
func (a *AuthServer) isRevoked(family string, now int64) bool {
	m := a.revoked.Load()
	if m == nil {
		return false
	}
	until, ok := (*m)[family]
	return ok && now < until
}

// markRevoked adds family to the in-memory revoked set until the last
// access token issued in it has expired (until, unix ns), dropping entries
// whose time has passed (family "" only drops). The set is copied on
// write: revocations are rare, checks are per request.
func (a *AuthServer) markRevoked(family string, until int64) {
	a.revokeMu.Lock()
	defer a.revokeMu.Unlock()
	now := a.now().UnixNano()
	next := make(map[string]int64)
	if old := a.revoked.Load(); old != nil {
		for f, u := range *old {
			if u > now {
				next[f] = u
			}
		}
	}
	if family != "" && until > next[family] {
		next[family] = until
	}
	a.revoked.Store(&next)
}
