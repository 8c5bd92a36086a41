package identity

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrincipalKeyGroupOrder(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
	}{
		{"two groups", []string{"eng", "sre"}, []string{"sre", "eng"}},
		{"three groups", []string{"c", "a", "b"}, []string{"b", "c", "a"}},
		{"duplicates", []string{"eng", "sre", "eng"}, []string{"sre", "eng"}},
		{"nil and empty", nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := PrincipalKey("alice", tt.a, false), PrincipalKey("alice", tt.b, false)
			if ka != kb {
				t.Errorf("got keys %q and %q, want equal keys", ka, kb)
			}
		})
	}
}

func TestPrincipalKeyUnambiguous(t *testing.T) {
	type principal struct {
		user      string
		groups    []string
		anonymous bool
	}
	tests := []struct {
		name string
		a, b principal
	}{
		{"comma in user vs group", principal{"a,b", nil, false}, principal{"a", []string{"b"}, false}},
		{"comma in group vs two groups", principal{"u", []string{"b,c"}, false}, principal{"u", []string{"b", "c"}, false}},
		{"colon in user vs group", principal{"a:b", nil, false}, principal{"a", []string{"b"}, false}},
		{"length-like user", principal{"1:a", nil, false}, principal{"", []string{"a"}, false}},
		{"user spills into group", principal{"ab", []string{"c"}, false}, principal{"a", []string{"bc"}, false}},
		{"no group vs empty group", principal{"a", nil, false}, principal{"a", []string{""}, false}},
		{"anonymous flag", principal{"anonymous", nil, true}, principal{"anonymous", nil, false}},
		{"different user", principal{"alice", []string{"eng"}, false}, principal{"bob", []string{"eng"}, false}},
		{"different groups", principal{"alice", []string{"eng"}, false}, principal{"alice", []string{"sre"}, false}},
		{"extra group", principal{"alice", []string{"eng"}, false}, principal{"alice", []string{"eng", "sre"}, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka := PrincipalKey(tt.a.user, tt.a.groups, tt.a.anonymous)
			kb := PrincipalKey(tt.b.user, tt.b.groups, tt.b.anonymous)
			if ka == kb {
				t.Errorf("got the same key %q for %+v and %+v, want different keys", ka, tt.a, tt.b)
			}
		})
	}
}

func TestPrincipalKeyFormat(t *testing.T) {
	if got, want := PrincipalKey("alice", []string{"sre", "eng"}, false), "n5:alice3:eng3:sre"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := PrincipalKey("anonymous", nil, true), "a9:anonymous"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNewPrincipal(t *testing.T) {
	groups := []string{"sre", "eng", "sre"}
	p := NewPrincipal("alice", groups, SourceDev)
	want := &Principal{
		User:   "alice",
		Groups: []string{"eng", "sre"},
		Key:    "n5:alice3:eng3:sre",
		Source: SourceDev,
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("NewPrincipal mismatch (-want +got):\n%s", diff)
	}
	groups[0] = "changed"
	if p.Groups[1] != "sre" {
		t.Errorf("got groups %q after the caller changed its slice, want a copy", p.Groups)
	}
	if p.Key != PrincipalKey(p.User, p.Groups, p.Anonymous) {
		t.Errorf("got key %q, want PrincipalKey of the fields", p.Key)
	}
}

func TestAnonymousPrincipal(t *testing.T) {
	want := &Principal{
		User:      AnonymousUser,
		Anonymous: true,
		Key:       PrincipalKey(AnonymousUser, nil, true),
		Source:    SourceAnonymous,
	}
	if diff := cmp.Diff(want, AnonymousPrincipal); diff != "" {
		t.Errorf("AnonymousPrincipal mismatch (-want +got):\n%s", diff)
	}
}
