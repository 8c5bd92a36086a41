package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

const testAudience = "https://gw.example.com/mcp"

// testJWKS is an issuer on loopback: OIDC discovery and a JWKS whose keys
// a test can replace (a key rotation) or withdraw (down).
type testJWKS struct {
	srv     *httptest.Server
	fetches atomic.Int32
	down    atomic.Bool

	mu   sync.Mutex // guards keys
	keys []jose.JSONWebKey
}

func startJWKS(t testing.TB, keys ...jose.JSONWebKey) *testJWKS {
	t.Helper()
	j := &testJWKS{keys: keys}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if j.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": j.srv.URL, "jwks_uri": j.srv.URL + "/jwks"})
		case "/jwks":
			j.fetches.Add(1)
			j.mu.Lock()
			set := jose.JSONWebKeySet{Keys: j.keys}
			j.mu.Unlock()
			_ = json.NewEncoder(w).Encode(set)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *testJWKS) setKeys(keys ...jose.JSONWebKey) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = keys
}

// jwtTestKey is a signing key and its public JWK.
type jwtTestKey struct {
	signer jose.Signer
	public jose.JSONWebKey
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func newJWTTestKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) jwtTestKey {
	t.Helper()
	var priv, pub any
	switch alg {
	case jose.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, &k.PublicKey
	case jose.EdDSA:
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, p
	case jose.RS256, jose.PS256:
		rsaOnce.Do(func() {
			var err error
			if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		})
		priv, pub = rsaKey, &rsaKey.PublicKey
	case jose.HS256:
		priv = []byte("a-shared-secret-of-32-bytes-long!")
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return jwtTestKey{signer: s, public: jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}}
}

func (k jwtTestKey) sign(t testing.TB, claims map[string]any) []byte {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// unsignedJWT is a token with alg "none" (RFC 7519 section 6).
func unsignedJWT(claims map[string]any) []byte {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(claims)
	return []byte(enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + ".")
}

func newTestJWTVerifier(t testing.TB, issuer string) *JWTVerifier {
	t.Helper()
	v, err := NewJWTVerifier(t.Context(), JWTConfig{Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestJWTVerify(t *testing.T) {
	es := newJWTTestKey(t, jose.ES256, "es")
	rs := newJWTTestKey(t, jose.RS256, "rs")
	ps := newJWTTestKey(t, jose.PS256, "ps")
	ed := newJWTTestKey(t, jose.EdDSA, "ed")
	hs := newJWTTestKey(t, jose.HS256, "es") // borrows a kid the JWKS has
	stranger := newJWTTestKey(t, jose.ES256, "stranger")
	j := startJWKS(t, es.public, rs.public, ps.public, ed.public)
	v := newTestJWTVerifier(t, j.srv.URL)

	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "email": "alice@example.com",
			"groups": []string{"sre", "engineers"}, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	alice := []string{"engineers", "sre"}
	tests := []struct {
		name       string
		token      []byte
		wantUser   string
		wantGroups []string
		wantErr    error
	}{
		{"ES256", es.sign(t, claims(nil)), "alice@example.com", alice, nil},
		{"RS256", rs.sign(t, claims(nil)), "alice@example.com", alice, nil},
		{"PS256", ps.sign(t, claims(nil)), "alice@example.com", alice, nil},
		{"EdDSA", ed.sign(t, claims(nil)), "alice@example.com", alice, nil},
		{"audience in a list", es.sign(t, claims(func(c map[string]any) { c["aud"] = []string{"other", testAudience} })), "alice@example.com", alice, nil},
		{"groups as a string", es.sign(t, claims(func(c map[string]any) { c["groups"] = "sre" })), "alice@example.com", []string{"sre"}, nil},
		{"expired within the skew", es.sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() })), "alice@example.com", alice, nil},
		{"no email: sub", es.sign(t, claims(func(c map[string]any) { delete(c, "email") })), "u1", alice, nil},
		{"wrong issuer", es.sign(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), "", nil, ErrInvalidJWT},
		{"wrong audience", es.sign(t, claims(func(c map[string]any) { c["aud"] = "https://gw.example.com/other" })), "", nil, ErrInvalidJWT},
		{"expired", es.sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), "", nil, ErrInvalidJWT},
		{"no exp", es.sign(t, claims(func(c map[string]any) { delete(c, "exp") })), "", nil, ErrInvalidJWT},
		{"not valid yet", es.sign(t, claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), "", nil, ErrInvalidJWT},
		{"alg none", unsignedJWT(claims(nil)), "", nil, ErrInvalidJWT},
		{"HS256", hs.sign(t, claims(nil)), "", nil, ErrInvalidJWT},
		{"unknown key", stranger.sign(t, claims(nil)), "", nil, ErrInvalidJWT},
		{"not a JWT", []byte("opaque-token"), "", nil, ErrInvalidJWT},
		{"empty", nil, "", nil, ErrInvalidJWT},
		{"too large", make([]byte, maxJWTSize+1), "", nil, ErrInvalidJWT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, pass := range []string{"verified", "cached"} {
				p, err := v.Verify(tt.token, testAudience)
				v.cache.Wait()
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("%s: got %v, want %v", pass, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", pass, err)
				}
				if p.User != tt.wantUser || p.Source != SourceJWT {
					t.Errorf("%s: got user %q source %q, want %q %q", pass, p.User, p.Source, tt.wantUser, SourceJWT)
				}
				if diff := cmp.Diff(tt.wantGroups, p.Groups); diff != "" {
					t.Errorf("%s: groups (-want +got):\n%s", pass, diff)
				}
			}
		})
	}
}

func TestJWTCachedTokenOtherAudience(t *testing.T) {
	es := newJWTTestKey(t, jose.ES256, "es")
	j := startJWKS(t, es.public)
	v := newTestJWTVerifier(t, j.srv.URL)
	tok := es.sign(t, map[string]any{"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.Verify(tok, testAudience); err != nil {
		t.Fatal(err)
	}
	v.cache.Wait()
	if _, err := v.Verify(tok, "https://gw.example.com/admin"); !errors.Is(err, ErrInvalidJWT) {
		t.Errorf("cached token at another application: got %v, want ErrInvalidJWT", err)
	}
}

func TestJWTExpiresInCache(t *testing.T) {
	es := newJWTTestKey(t, jose.ES256, "es")
	j := startJWKS(t, es.public)
	v := newTestJWTVerifier(t, j.srv.URL)
	now := time.Now()
	v.now = func() time.Time { return now }
	tok := es.sign(t, map[string]any{"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "exp": now.Add(time.Hour).Unix()})
	if _, err := v.Verify(tok, testAudience); err != nil {
		t.Fatal(err)
	}
	v.cache.Wait()
	now = now.Add(time.Hour + 2*time.Minute)
	if _, err := v.Verify(tok, testAudience); !errors.Is(err, ErrInvalidJWT) {
		t.Errorf("after exp + skew: got %v, want ErrInvalidJWT", err)
	}
}

func TestJWTKeyRotation(t *testing.T) {
	old := newJWTTestKey(t, jose.ES256, "2026-01")
	next := newJWTTestKey(t, jose.ES256, "2026-02")
	j := startJWKS(t, old.public)
	v := newTestJWTVerifier(t, j.srv.URL)
	claims := map[string]any{"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "exp": time.Now().Add(time.Hour).Unix()}

	before := old.sign(t, claims)
	if _, err := v.Verify(before, testAudience); err != nil {
		t.Fatalf("token of the old key: %v", err)
	}
	v.cache.Wait()

	j.setKeys(next.public) // the provider rotates and withdraws the old key
	// go-oidc's remote key set hands fetched keys to the waiting
	// verifications a moment before it stores them and forgets the finished
	// fetch (oidc/jwks.go keysFromRemote), so right after a fetch a token may
	// still meet the previous key set: poll, with a fresh token each time
	// (failures are not cached).
	eventually := func(what string, want error, key jwtTestKey) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for i := 0; ; i++ {
			claims["jti"] = what + string(rune('a'+i%26)) + time.Now().String()
			_, err := v.Verify(key.sign(t, claims), testAudience)
			if errors.Is(err, want) || (want == nil && err == nil) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %v, want %v", what, err, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	eventually("token of the new key", nil, next)
	if _, err := v.Verify(before, testAudience); err != nil {
		t.Errorf("cached token of the withdrawn key: got %v, want accepted until its exp", err)
	}
	eventually("new token of the withdrawn key", ErrInvalidJWT, old)
	if got := j.fetches.Load(); got > 10 {
		t.Errorf("JWKS fetches: got %d, want a few", got)
	}
}

func TestJWTProviderDown(t *testing.T) {
	es := newJWTTestKey(t, jose.ES256, "es")
	j := startJWKS(t, es.public)
	j.down.Store(true)
	v := newTestJWTVerifier(t, j.srv.URL)
	now := time.Now()
	v.disc.now = func() time.Time { return now }
	tok := es.sign(t, map[string]any{"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "exp": now.Add(time.Hour).Unix()})
	if _, err := v.Verify(tok, testAudience); !errors.Is(err, ErrProviderDown) {
		t.Fatalf("provider down: got %v, want ErrProviderDown", err)
	}
	j.down.Store(false)
	now = now.Add(discoveryMaxBackoff)
	if _, err := v.Verify(tok, testAudience); err != nil {
		t.Fatalf("provider back: %v", err)
	}
}

func TestNewJWTVerifierConfig(t *testing.T) {
	for _, cfg := range []JWTConfig{{}, {Issuer: "http://idp.example.com"}, {Issuer: "https://idp.example.com", ClockSkew: -time.Second}} {
		if _, err := NewJWTVerifier(t.Context(), cfg); err == nil {
			t.Errorf("NewJWTVerifier(%+v): got no error", cfg)
		}
	}
}

func TestJWTCacheHitAllocs(t *testing.T) {
	es := newJWTTestKey(t, jose.ES256, "es")
	j := startJWKS(t, es.public)
	v := newTestJWTVerifier(t, j.srv.URL)
	tok := es.sign(t, map[string]any{"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "groups": []string{"a", "b"}, "exp": time.Now().Add(time.Hour).Unix()})
	want, err := v.Verify(tok, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	v.cache.Wait()
	allocs := testing.AllocsPerRun(1000, func() {
		if p, err := v.Verify(tok, testAudience); p != want || err != nil {
			t.Fatalf("got %p, %v; want the cached principal %p", p, err, want)
		}
	})
	if allocs != 0 {
		t.Errorf("cache hit: got %v allocations, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := v.Verify(tok, "https://gw.example.com/other"); err != errJWTAudience {
			t.Fatalf("got %v, want errJWTAudience", err)
		}
	})
	if allocs != 0 {
		t.Errorf("cache hit, other audience: got %v allocations, want 0", allocs)
	}
}

// BenchmarkJWTVerify compares a cache hit with the full verification it
// saves (ES256 signature, claims, principal); the hit is what every request
// after a token's first pays.
func BenchmarkJWTVerify(b *testing.B) {
	es := newJWTTestKey(b, jose.ES256, "es")
	j := startJWKS(b, es.public)
	v := newTestJWTVerifier(b, j.srv.URL)
	tok := es.sign(b, map[string]any{"iss": j.srv.URL, "aud": testAudience, "sub": "u1", "email": "alice@example.com",
		"groups": []string{"sre", "engineers"}, "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.Verify(tok, testAudience); err != nil {
		b.Fatal(err)
	}
	v.cache.Wait()
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		for b.Loop() {
			if _, err := v.Verify(tok, testAudience); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256-only", func(b *testing.B) { // the floor of a hit
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		for b.Loop() {
			_ = sha256.Sum256(tok)
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		now := time.Now()
		for b.Loop() {
			if _, err := v.verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
