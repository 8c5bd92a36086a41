package identity

import (
	"strings"
	"testing"
)

var testDevUsers = []DevUser{
	{Token: "alice-token", User: "alice@example.com", Groups: []string{"sre", "engineers"}},
	{Token: "bob-token", User: "bob@example.com"},
	{Token: "dup", User: "mallory"},
	{Token: "dup", User: "eve"},
	{Token: "", User: "nobody"},
}

func TestDevUsersLookup(t *testing.T) {
	d := NewDevUsers(testDevUsers)
	tests := []struct {
		name     string
		token    string
		wantUser string // "" for a miss
	}{
		{"alice", "alice-token", "alice@example.com"},
		{"bob", "bob-token", "bob@example.com"},
		{"unknown", "carol-token", ""},
		{"prefix of a token", "alice-tok", ""},
		{"token with suffix", "alice-token2", ""},
		{"other case", "Alice-token", ""},
		{"empty", "", ""},
		{"duplicated token authenticates nobody", "dup", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := d.Lookup([]byte(tt.token))
			if tt.wantUser == "" {
				if ok || p != nil {
					t.Errorf("Lookup(%q) = %+v, %v; want nil, false", tt.token, p, ok)
				}
				return
			}
			if !ok || p.User != tt.wantUser {
				t.Fatalf("Lookup(%q) = %+v, %v; want user %q", tt.token, p, ok, tt.wantUser)
			}
			if p.Source != SourceDev || p.Anonymous {
				t.Errorf("got source %q anonymous %v, want %q false", p.Source, p.Anonymous, SourceDev)
			}
			if want := PrincipalKey(p.User, p.Groups, false); p.Key != want {
				t.Errorf("got key %q, want %q", p.Key, want)
			}
		})
	}
	if got, want := d.Len(), 2; got != want {
		t.Errorf("got Len %d, want %d", got, want)
	}
}

func TestDevUsersSharedPrincipal(t *testing.T) {
	d := NewDevUsers(testDevUsers)
	p1, _ := d.Lookup([]byte("alice-token"))
	p2, _ := d.Lookup([]byte("alice-token"))
	if p1 != p2 {
		t.Errorf("got two principals for one token, want one shared principal")
	}
	if got, want := strings.Join(p1.Groups, ","), "engineers,sre"; got != want {
		t.Errorf("got groups %q, want %q", got, want)
	}
}

func TestDevUsersNil(t *testing.T) {
	var d *DevUsers
	if p, ok := d.Lookup([]byte("alice-token")); ok || p != nil {
		t.Errorf("got %+v, %v from a nil table, want nil, false", p, ok)
	}
	if got := d.Len(); got != 0 {
		t.Errorf("got Len %d, want 0", got)
	}
	if got := NewDevUsers(nil).Len(); got != 0 {
		t.Errorf("got Len %d for no users, want 0", got)
	}
}

func TestDevUsersLookupAllocs(t *testing.T) {
	d := NewDevUsers(testDevUsers)
	tests := []struct {
		name  string
		token []byte
		hit   bool
	}{
		{"hit", []byte("alice-token"), true},
		{"miss", []byte("not-a-token"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(1000, func() {
				if _, ok := d.Lookup(tt.token); ok != tt.hit {
					t.Fatalf("got ok %v, want %v", ok, tt.hit)
				}
			})
			if allocs != 0 {
				t.Errorf("got %v allocations per Lookup, want 0", allocs)
			}
		})
	}
}

func TestValidateDevUsers(t *testing.T) {
	tests := []struct {
		name  string
		users []DevUser
		want  []string // substrings of the error, in order; none for nil
	}{
		{"valid", []DevUser{{Token: "a-token", User: "a"}, {Token: "b.token==", User: "b"}}, nil},
		{"none", nil, nil},
		{"empty token", []DevUser{{User: "a"}}, []string{"identity.dev_users[0]: token is empty"}},
		{"empty user", []DevUser{{Token: "t"}}, []string{"identity.dev_users[0]: user is empty"}},
		{"bad chars", []DevUser{{Token: "has space", User: "a"}}, []string{"identity.dev_users[0]: token has characters"}},
		{
			"duplicate and more, all reported",
			[]DevUser{{Token: "t", User: "a"}, {Token: "u", User: ""}, {Token: "t", User: "c"}},
			[]string{"identity.dev_users[1]: user is empty", "identity.dev_users[2]: token is the same as identity.dev_users[0]'s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateDevUsers(tt.users)
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("got error %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil error, want %q", tt.want)
			}
			msg := err.Error()
			if got := strings.Count(msg, "\n") + 1; got != len(tt.want) {
				t.Errorf("got %d problems in %q, want %d", got, msg, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got error %q, want it to contain %q", msg, w)
				}
			}
			for _, u := range tt.users {
				if u.Token != "" && strings.Contains(msg, u.Token) && len(u.Token) > 1 {
					t.Errorf("got error %q showing a token, want tokens kept out of errors", msg)
				}
			}
		})
	}
}

func BenchmarkBearerLookup(b *testing.B) {
	d := NewDevUsers(testDevUsers)
	h := []byte("Bearer alice-token")
	b.ReportAllocs()
	b.SetBytes(int64(len(h)))
	for b.Loop() {
		tok, _ := BearerToken(h)
		if _, ok := d.Lookup(tok); !ok {
			b.Fatal("got a miss, want a hit")
		}
	}
}
