package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// issueTestToken seals an access token directly, without a login.
func issueTestToken(t testing.TB, e *asEnv, mod func(*accessToken)) string {
	t.Helper()
	at := accessToken{
		Expires:  e.clock.now().Add(time.Hour),
		User:     "alice@example.com",
		ClientID: "client-1",
		Resource: asResource,
		Family:   "family-1",
		Groups:   []string{"sre", "engineers"},
	}
	if mod != nil {
		mod(&at)
	}
	tok, err := e.a.sealer.seal(&at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerify(t *testing.T) {
	e := newASEnv(t)
	other := newASEnv(t, func(c *AuthServerConfig) { c.Key = bytes.Repeat([]byte{1}, 32) })
	good := issueTestToken(t, e, nil)
	for _, tc := range []struct {
		name     string
		token    string
		resource string
		want     error
	}{
		{"good", good, asResource, nil},
		{"canonical resource", good, "HTTPS://gw.example.com:443/mcp", nil},
		{"other resource", good, "https://gw.example.com/other", ErrTokenAudience},
		{"resource with trailing slash on a path", good, asResource + "/", ErrTokenAudience},
		{"expired", issueTestToken(t, e, func(a *accessToken) { a.Expires = e.clock.now() }), asResource, ErrTokenExpired},
		{"other key", issueTestToken(t, other, nil), asResource, ErrBadToken},
		{"flipped bit", good[:20] + string(good[20]^1) + good[21:], asResource, ErrBadToken},
		{"truncated", good[:len(good)-1], asResource, ErrBadToken},
		{"empty", "", asResource, ErrBadToken},
		{"not base64url", strings.Repeat("+", 80), asResource, ErrBadToken},
		{"too long", strings.Repeat("A", MaxAccessTokenLen+1), asResource, ErrBadToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Twice: uncached, then (after the cache settles) cached.
			for i := range 2 {
				p, err := e.a.Verify([]byte(tc.token), tc.resource)
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("round %d: got %v, want %v", i, err, tc.want)
				}
				if tc.want == nil && (p.User != "alice@example.com" || strings.Join(p.Groups, ",") != "engineers,sre" || p.Source != SourceOAuth) {
					t.Fatalf("round %d: got %+v", i, p)
				}
				e.a.cache.wait()
			}
		})
	}
	// A cached token still expires.
	e.clock.advance(time.Hour)
	if _, err := e.a.Verify([]byte(good), asResource); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("cached token after expiry: got %v, want ErrTokenExpired", err)
	}
}

func TestSealLimits(t *testing.T) {
	e := newASEnv(t)
	many := make([]string, 400)
	for i := range many {
		many[i] = strings.Repeat("g", 20) + string(rune('a'+i%26))
	}
	if _, err := e.a.sealer.seal(&accessToken{User: "u", Groups: many}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("seal with 400 long groups: got %v, want a limit error", err)
	}
	tok := issueTestToken(t, e, func(a *accessToken) { a.Groups = many[:200] })
	if len(tok) > MaxAccessTokenLen {
		t.Errorf("token length: got %d, want at most %d", len(tok), MaxAccessTokenLen)
	}
	if _, err := e.a.Verify([]byte(tok), asResource); err != nil {
		t.Errorf("Verify of a token with 200 groups: %v", err)
	}
}

// TestVerifyCachedAllocs: a cache hit allocates nothing (STYLE.md: the hot
// path is asserted with AllocsPerRun).
func TestVerifyCachedAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc gate")
	}
	e := newASEnv(t)
	tok := []byte(issueTestToken(t, e, nil))
	if _, err := e.a.Verify(tok, asResource); err != nil {
		t.Fatal(err)
	}
	e.a.cache.wait()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := e.a.Verify(tok, asResource); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("allocations per cached Verify: got %v, want 0", allocs)
	}
}

// BenchmarkVerify compares a cached check with opening the token every
// time (the cost without the cache, the baseline).
func BenchmarkVerify(b *testing.B) {
	e := newASEnv(b)
	tok := []byte(issueTestToken(b, e, nil))
	b.Run("cached", func(b *testing.B) {
		e.a.Verify(tok, asResource)
		e.a.cache.wait()
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		for b.Loop() {
			if _, err := e.a.Verify(tok, asResource); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached-baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(tok)))
		for b.Loop() {
			var at accessToken
			if err := e.a.sealer.open(tok, &at); err != nil {
				b.Fatal(err)
			}
			NewPrincipal(at.User, at.Groups, SourceOAuth)
		}
	})
}

// FuzzAccessToken: opening arbitrary input never panics and accepts only
// what was sealed; sealed tokens round-trip.
func FuzzAccessToken(f *testing.F) {
	e := newASEnv(f)
	f.Add([]byte(issueTestToken(f, e, nil)), "alice", "g1")
	f.Add([]byte("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "", "")
	f.Add([]byte{}, "x", "")
	f.Fuzz(func(t *testing.T, tok []byte, user, group string) {
		var at accessToken
		if err := e.a.sealer.open(tok, &at); err == nil {
			// Only a sealed token opens; re-sealing what it says must work.
			if _, err := e.a.sealer.seal(&at); err != nil {
				t.Fatalf("opened token does not re-seal: %v", err)
			}
		}
		if len(user) > maxTokenUserLen || len(group) > maxTokenGroupLen {
			return
		}
		in := accessToken{Expires: time.Unix(0, 12345), User: user, ClientID: "c", Resource: asResource, Family: "f", Groups: []string{group}}
		s, err := e.a.sealer.seal(&in)
		if err != nil {
			t.Fatal(err)
		}
		var out accessToken
		if err := e.a.sealer.open([]byte(s), &out); err != nil {
			t.Fatalf("sealed token does not open: %v", err)
		}
		if out.User != user || len(out.Groups) != 1 || out.Groups[0] != group || !out.Expires.Equal(in.Expires) {
			t.Fatalf("round trip: got %+v, want %+v", out, in)
		}
	})
}

// FuzzDecodeAccessToken: the plaintext parser is strict and never panics.
func FuzzDecodeAccessToken(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x01\x01u\x01c\x01r\x01f\x01\x01g"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		var at accessToken
		decodeAccessToken(p, &at)
	})
}
