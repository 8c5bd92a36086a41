package identity

import (
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string // "" with ok false
		ok     bool
	}{
		{"canonical", "Bearer abc", "abc", true},
		{"lowercase scheme", "bearer abc", "abc", true},
		{"uppercase scheme", "BEARER abc", "abc", true},
		{"mixed case scheme", "bEaReR abc", "abc", true},
		{"several spaces", "Bearer    abc", "abc", true},
		{"trailing spaces", "Bearer abc   ", "abc", true},
		{"trailing tab", "Bearer abc\t", "abc", true},
		{"leading spaces", "  Bearer abc", "abc", true},
		{"all token68 chars", "Bearer aZ09-._~+/", "aZ09-._~+/", true},
		{"trailing equals", "Bearer abc==", "abc==", true},
		{"jwt", "Bearer eyJhbGciOi.eyJzdWIi.sig-_", "eyJhbGciOi.eyJzdWIi.sig-_", true},
		{"empty", "", "", false},
		{"only spaces", "   ", "", false},
		{"scheme only", "Bearer", "", false},
		{"scheme and space", "Bearer ", "", false},
		{"scheme and spaces", "Bearer    ", "", false},
		{"no space", "Bearerabc", "", false},
		{"tab separator", "Bearer\tabc", "", false},
		{"basic", "Basic YWxpY2U6cGFzcw==", "", false},
		{"bearer prefix of longer scheme", "Bearers abc", "", false},
		{"scheme lookalike", "Bearef abc", "", false},
		{"scheme lookalike with 0x20 bit", "Bearer\x00abc", "", false},
		{"space inside token", "Bearer abc def", "", false},
		{"comma", "Bearer abc,def", "", false},
		{"quote", `Bearer "abc"`, "", false},
		{"equals inside", "Bearer a=b", "", false},
		{"equals only", "Bearer ==", "", false},
		{"non-ascii", "Bearer abc\xc3\xa9", "", false},
		{"control char", "Bearer abc\x01", "", false},
		{"newline", "Bearer abc\ndef", "", false},
		{"auth-param form", `Bearer realm="x"`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := BearerToken([]byte(tt.header))
			if ok != tt.ok || string(got) != tt.want {
				t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBearerTokenIsSubslice(t *testing.T) {
	h := []byte("Bearer  tok ")
	got, ok := BearerToken(h)
	if !ok {
		t.Fatalf("got ok false, want true")
	}
	if &got[0] != &h[8] {
		t.Errorf("got a copy of the token, want a subslice of the header")
	}
}

func TestBearerTokenAllocs(t *testing.T) {
	h := []byte("Bearer alice-token")
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := BearerToken(h); !ok {
			t.Fatal("got ok false, want true")
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per call, want 0", allocs)
	}
}

// referenceBearerToken is a plain reading of RFC 6750 section 2.1 with the
// strings package, to check BearerToken against.
func referenceBearerToken(h string) (string, bool) {
	h = strings.Trim(h, " \t")
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok := strings.TrimLeft(rest, " ")
	body := strings.TrimRight(tok, "=")
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/"
	if body == "" || strings.Trim(body, alphabet) != "" {
		return "", false
	}
	return tok, true
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  a==", "Basic x", "Bearer a=b", " Bearer x\t", "Bearer", "BEARER\xffx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got, ok := BearerToken([]byte(h))
		want, wantOK := referenceBearerToken(h)
		if ok != wantOK || string(got) != want {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", h, got, ok, want, wantOK)
		}
	})
}
