package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testKey(t testing.TB, fill byte) []byte {
	t.Helper()
	return bytes.Repeat([]byte{fill}, SessionKeySize)
}

func testCodec(t testing.TB, fill byte) *SessionCodec {
	t.Helper()
	c, err := NewSessionCodec(testKey(t, fill))
	if err != nil {
		t.Fatalf("NewSessionCodec: %v", err)
	}
	return c
}

var testIssued = time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC)

func testSession() *Session {
	return &Session{
		User:            "alice@example.com",
		App:             "mcp-pingone-admin",
		ProtocolVersion: "2025-11-25",
		UpstreamID:      "UPSTREAM-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		Issued:          testIssued,
	}
}

func mint(t testing.TB, c *SessionCodec, s *Session) string {
	t.Helper()
	id, err := c.Mint(s)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return id
}

func TestNewSessionCodecKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewSessionCodec(make([]byte, n)); err == nil {
			t.Errorf("got nil error for a %d-byte key, want an error", n)
		}
	}
}

func TestSessionRoundTrip(t *testing.T) {
	c := testCodec(t, 1)
	tests := []struct {
		name string
		s    Session
	}{
		{"stateful upstream", *testSession()},
		{"stateless upstream", Session{User: "bob", App: "app", ProtocolVersion: "2025-03-26", Issued: testIssued}},
		{"all empty but issued", Session{Issued: testIssued}},
		{"anonymous", Session{User: AnonymousUser, App: "conformance", ProtocolVersion: "2025-06-18", UpstreamID: "x", Issued: testIssued}},
		{"binary upstream id", Session{User: "u", UpstreamID: "\x00\xff\n\"", Issued: testIssued}},
		{"before 1970", Session{User: "u", Issued: time.Date(1969, 7, 20, 20, 17, 0, 1, time.UTC)}},
		{
			"every field at its limit",
			Session{
				User:            strings.Repeat("u", maxSessionUserLen),
				App:             strings.Repeat("a", maxSessionAppLen),
				ProtocolVersion: strings.Repeat("v", maxSessionVersionLen),
				UpstreamID:      strings.Repeat("s", MaxUpstreamSessionIDLen),
				Issued:          testIssued,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := mint(t, c, &tt.s)
			var got Session
			if err := c.Open([]byte(id), &got); err != nil {
				t.Fatalf("Open: got %v, want nil", err)
			}
			if diff := cmp.Diff(tt.s, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
			if got.Issued.Location() != time.UTC {
				t.Errorf("got Issued in %v, want UTC", got.Issued.Location())
			}
		})
	}
}

func TestSessionLocalTimeRoundTrip(t *testing.T) {
	c := testCodec(t, 1)
	s := testSession()
	s.Issued = time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	var got Session
	if err := c.Open([]byte(mint(t, c, s)), &got); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !got.Issued.Equal(s.Issued) {
		t.Errorf("got Issued %v, want %v", got.Issued, s.Issued)
	}
}

func TestSessionZeroIssuedMeansNow(t *testing.T) {
	c := testCodec(t, 1)
	s := testSession()
	s.Issued = time.Time{}
	before := time.Now()
	id := mint(t, c, s)
	after := time.Now()
	if !s.Issued.IsZero() {
		t.Errorf("got Issued %v after Mint, want Mint to leave the session alone", s.Issued)
	}
	var got Session
	if err := c.Open([]byte(id), &got); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got.Issued.Before(before) || got.Issued.After(after) {
		t.Errorf("got Issued %v, want the time of Mint, between %v and %v", got.Issued, before, after)
	}
}

func TestSessionLongestID(t *testing.T) {
	c := testCodec(t, 1)
	s := Session{
		User:            strings.Repeat("u", maxSessionUserLen),
		App:             strings.Repeat("a", maxSessionAppLen),
		ProtocolVersion: strings.Repeat("v", maxSessionVersionLen),
		UpstreamID:      strings.Repeat("s", MaxUpstreamSessionIDLen),
		ElicitationURL:  true,
		Issued:          testIssued,
	}
	if got := len(mint(t, c, &s)); got != MaxSessionIDLen {
		t.Errorf("got the longest id %d bytes, want MaxSessionIDLen %d", got, MaxSessionIDLen)
	}
	if got := len(mint(t, c, &Session{Issued: testIssued})); got != minSessionIDLen {
		t.Errorf("got the shortest id %d bytes, want %d", got, minSessionIDLen)
	}
}

func TestSessionOtherCodecSameKey(t *testing.T) {
	id := mint(t, testCodec(t, 1), testSession())
	var got Session
	if err := testCodec(t, 1).Open([]byte(id), &got); err != nil {
		t.Fatalf("got %v from a replica with the same key, want nil", err)
	}
	if diff := cmp.Diff(*testSession(), got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestSessionMintRefuses(t *testing.T) {
	c := testCodec(t, 1)
	tests := []struct {
		name   string
		modify func(s *Session)
		want   string
	}{
		{"upstream id too long", func(s *Session) { s.UpstreamID = strings.Repeat("x", MaxUpstreamSessionIDLen+1) }, "upstream session id is 513 bytes, limit 512"},
		{"user too long", func(s *Session) { s.User = strings.Repeat("x", maxSessionUserLen+1) }, "user is"},
		{"app too long", func(s *Session) { s.App = strings.Repeat("x", maxSessionAppLen+1) }, "application is"},
		{"version too long", func(s *Session) { s.ProtocolVersion = strings.Repeat("x", maxSessionVersionLen+1) }, "protocol version is"},
		{"issued before 1678", func(s *Session) { s.Issued = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }, "issued time"},
		{"issued after 2262", func(s *Session) { s.Issued = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, "issued time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSession()
			tt.modify(s)
			id, err := c.Mint(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, %v; want an error containing %q", id, err, tt.want)
			}
		})
	}
	if _, err := c.Mint(nil); err == nil {
		t.Errorf("got nil error for a nil session, want an error")
	}
}

func TestSessionIDsUniqueAndVisibleASCII(t *testing.T) {
	c := testCodec(t, 1)
	s := testSession()
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		id := mint(t, c, s)
		if seen[id] {
			t.Fatalf("got id %q twice, want every id unique", id)
		}
		seen[id] = true
		for i := 0; i < len(id); i++ {
			if b := id[i]; b < 0x21 || b > 0x7e || !isBase64URLChar(b) {
				t.Fatalf("got byte %#x at %d in %q, want only base64url (visible ASCII)", b, i, id)
			}
		}
	}
}

func TestSessionIDOpaque(t *testing.T) {
	c := testCodec(t, 1)
	s := testSession()
	id := mint(t, c, s)
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, secret := range []string{s.User, s.App, s.UpstreamID, "alice", "UPSTREAM", "pingone"} {
		if strings.Contains(id, secret) || bytes.Contains(raw, []byte(secret)) {
			t.Errorf("got %q readable in the id, want the id opaque", secret)
		}
	}
}

// flipped returns id with bit of raw byte i flipped, re-encoded.
func flipped(t *testing.T, id string, i int, bit byte) []byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	raw[i] ^= bit
	return []byte(base64.RawURLEncoding.EncodeToString(raw))
}

func TestSessionTamperEveryBit(t *testing.T) {
	c := testCodec(t, 1)
	for _, tt := range []struct {
		name string
		s    *Session
	}{
		{"stateful", testSession()},
		{"stateless", &Session{User: "u", Issued: testIssued}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := mint(t, c, tt.s)
			rawLen := len(id) * 6 / 8
			for i := range rawLen {
				for bit := byte(1); bit != 0; bit <<= 1 {
					var got Session
					if err := c.Open(flipped(t, id, i, bit), &got); !errors.Is(err, ErrBadSession) {
						t.Fatalf("byte %d bit %#x flipped: got %v, want ErrBadSession", i, bit, err)
					}
				}
			}
		})
	}
}

func TestSessionTamperEveryCharacter(t *testing.T) {
	c := testCodec(t, 1)
	id := mint(t, c, testSession())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(id) {
		for _, r := range []byte(alphabet) {
			if r == id[i] {
				continue
			}
			bad := []byte(id)
			bad[i] = r
			var got Session
			if err := c.Open(bad, &got); !errors.Is(err, ErrBadSession) {
				t.Fatalf("character %d changed to %q: got %v, want ErrBadSession", i, r, err)
			}
		}
	}
}

func TestSessionOpenRejects(t *testing.T) {
	c := testCodec(t, 1)
	id := mint(t, c, testSession())
	other := testCodec(t, 2)

	wrongVersion := func() []byte {
		raw, _ := base64.RawURLEncoding.DecodeString(id)
		raw[0] = 2
		return []byte(base64.RawURLEncoding.EncodeToString(raw))
	}()
	otherContext, err := NewSessionCodec(testKey(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	otherContext.context = []byte("mcpgw session v2")
	wrongContext := mint(t, otherContext, testSession())

	tests := []struct {
		name string
		id   string
		c    *SessionCodec
	}{
		{"empty", "", c},
		{"wrong key", id, other},
		{"wrong version", string(wrongVersion), c},
		{"other additional data", wrongContext, c},
		{"too long", strings.Repeat("A", MaxSessionIDLen+1), c},
		{"much too long", strings.Repeat("A", 1<<20), c},
		{"valid id with more appended", id + "AAAA", c},
		{"two ids", id + id, c},
		{"non-ascii", id[:10] + "é" + id[12:], c},
		{"non-ascii appended", id + "\xff", c},
		{"newline inside", id[:10] + "\n" + id[10:], c},
		{"carriage return inside", id[:10] + "\r" + id[10:], c},
		{"space", id[:10] + " " + id[11:], c},
		{"padding", id + "=", c},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(id) + "+/", c},
		{"all A", strings.Repeat("A", len(id)), c},
		{"shortest possible length, garbage", strings.Repeat("B", minSessionIDLen), c},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := *testSession()
			got.User = "unchanged"
			want := got
			if err := tt.c.Open([]byte(tt.id), &got); !errors.Is(err, ErrBadSession) {
				t.Fatalf("got %v, want ErrBadSession", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Open changed the session on error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSessionTruncated(t *testing.T) {
	c := testCodec(t, 1)
	id := mint(t, c, testSession())
	for n := range len(id) {
		var got Session
		if err := c.Open([]byte(id[:n]), &got); !errors.Is(err, ErrBadSession) {
			t.Fatalf("first %d of %d characters: got %v, want ErrBadSession", n, len(id), err)
		}
	}
}

// TestDecodeSessionStrict feeds decodeSession plaintexts that Mint never
// writes; AES-GCM keeps them from reaching it, but the parser refuses them
// on its own too.
func TestDecodeSessionStrict(t *testing.T) {
	issued := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name  string
		plain []byte
	}{
		{"empty", nil},
		{"issued only", issued},
		{"three fields", cat(issued, []byte{0, 0, 0})},
		{"unknown flag", cat(issued, []byte{0, 0, 0, 0, 'x'})},
		{"flags byte with no flag", cat(issued, []byte{0, 0, 0, 0, 0})},
		{"two flags bytes", cat(issued, []byte{0, 0, 0, 0, 1, 1})},
		{"length past end", cat(issued, []byte{5, 'a', 0, 0, 0})},
		{"user over limit", cat(issued, []byte{0x81, 0x04}, bytes.Repeat([]byte{'u'}, 513), []byte{0, 0, 0})},
		{"overlong uvarint", cat(issued, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte{0, 0, 0})},
		{"unterminated uvarint", cat(issued, []byte{0, 0, 0, 0x80})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Session
			if err := decodeSession(tt.plain, &s); !errors.Is(err, ErrBadSession) {
				t.Errorf("got %v, want ErrBadSession", err)
			}
		})
	}
	var s Session
	if err := decodeSession(cat(issued, []byte{1, 'u', 1, 'a', 1, 'v', 0}), &s); err != nil || s.ElicitationURL {
		t.Errorf("got %v, ElicitationURL %v for a well-formed plaintext without flags, want nil, false", err, s.ElicitationURL)
	}
	if err := decodeSession(cat(issued, []byte{1, 'u', 1, 'a', 1, 'v', 0, 1}), &s); err != nil || !s.ElicitationURL {
		t.Errorf("got %v, ElicitationURL %v for a plaintext with the flag, want nil, true", err, s.ElicitationURL)
	}
}

func TestSessionElicitationURLRoundTrip(t *testing.T) {
	c := testCodec(t, 1)
	for _, flag := range []bool{false, true} {
		in := testSession()
		in.ElicitationURL = flag
		var out Session
		if err := c.Open([]byte(mint(t, c, in)), &out); err != nil {
			t.Fatal(err)
		}
		if out != *in {
			t.Errorf("got %+v, want %+v", out, *in)
		}
	}
}

func TestSessionAllocs(t *testing.T) {
	c := testCodec(t, 1)
	s := testSession()
	id := []byte(mint(t, c, s))
	var got Session
	tests := []struct {
		name string
		f    func()
		max  float64
	}{
		{"Mint", func() { _, _ = c.Mint(s) }, 1},     // the returned string
		{"Open", func() { _ = c.Open(id, &got) }, 1}, // one string holding the four fields
		{"Open rejected", func() { _ = c.Open(id[:len(id)-1], &got) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if allocs := testing.AllocsPerRun(1000, tt.f); allocs > tt.max {
				t.Errorf("got %v allocations per call, want at most %v", allocs, tt.max)
			}
		})
	}
}

func TestSessionConcurrent(t *testing.T) {
	c := testCodec(t, 1)
	s := testSession()
	done := make(chan error)
	for range 8 {
		go func() {
			for range 200 {
				id, err := c.Mint(s)
				if err == nil {
					var got Session
					err = c.Open([]byte(id), &got)
					if err == nil && got.UpstreamID != s.UpstreamID {
						err = errors.New("got another session back")
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func FuzzSessionOpen(f *testing.F) {
	c := testCodec(f, 1)
	valid := mint(f, c, testSession())
	f.Add([]byte(valid))
	f.Add([]byte(mint(f, c, &Session{Issued: testIssued})))
	f.Add([]byte(valid[:len(valid)-1]))
	f.Add([]byte("AAAA"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, id []byte) {
		var s Session
		err := c.Open(id, &s)
		if err != nil && !errors.Is(err, ErrBadSession) {
			t.Errorf("got %v, want nil or ErrBadSession", err)
		}
		// Only the seeds open (the fuzzer cannot forge an id), and a fuzzing
		// worker mints its own seeds with other nonces: compare sessions.
		if err == nil && s != *testSession() && s != (Session{Issued: testIssued}) {
			t.Errorf("opened an id nobody minted: %q -> %+v", id, s)
		}
	})
}

func BenchmarkSessionMint(b *testing.B) {
	c := testCodec(b, 1)
	s := testSession()
	b.ReportAllocs()
	b.SetBytes(int64(len(mint(b, c, s))))
	for b.Loop() {
		if _, err := c.Mint(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionOpen(b *testing.B) {
	c := testCodec(b, 1)
	id := []byte(mint(b, c, testSession()))
	var s Session
	b.ReportAllocs()
	b.SetBytes(int64(len(id)))
	for b.Loop() {
		if err := c.Open(id, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// jsonSession is the baseline: the same Session sealed with the same AEAD
// but encoded with encoding/json and the usual allocating helpers, so that a
// reader sees what the compact encoding and pooled buffers save.
type jsonSession struct {
	User, App, ProtocolVersion, UpstreamID string
	ElicitationURL                         bool
	Issued                                 time.Time
}

func BenchmarkSessionMintJSONBaseline(b *testing.B) {
	c := testCodec(b, 1)
	s := jsonSession(*testSession())
	b.ReportAllocs()
	for b.Loop() {
		p, err := json.Marshal(&s)
		if err != nil {
			b.Fatal(err)
		}
		raw := c.aead.Seal([]byte{sessionVersion1}, nil, p, c.context)
		_ = base64.RawURLEncoding.EncodeToString(raw)
	}
}

func BenchmarkSessionOpenJSONBaseline(b *testing.B) {
	c := testCodec(b, 1)
	s := jsonSession(*testSession())
	p, err := json.Marshal(&s)
	if err != nil {
		b.Fatal(err)
	}
	id := []byte(base64.RawURLEncoding.EncodeToString(c.aead.Seal([]byte{sessionVersion1}, nil, p, c.context)))
	b.ReportAllocs()
	b.SetBytes(int64(len(id)))
	for b.Loop() {
		raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(id)))
		n, err := base64.RawURLEncoding.Decode(raw, id)
		if err != nil {
			b.Fatal(err)
		}
		plain, err := c.aead.Open(nil, nil, raw[1:n], c.context)
		if err != nil {
			b.Fatal(err)
		}
		var got jsonSession
		if err := json.Unmarshal(plain, &got); err != nil {
			b.Fatal(err)
		}
	}
}
