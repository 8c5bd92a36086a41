package subjectkey

import "testing"

func TestKey(t *testing.T) {
	for _, c := range []struct {
		name      string
		user      string
		groups    []string
		anonymous bool
		want      string
	}{
		{"no groups", "alice", nil, false, "n5:alice"},
		{"sorted, deduplicated", "alice", []string{"sre", "eng", "sre"}, false, "n5:alice3:eng3:sre"},
		{"anonymous", "anonymous", nil, true, "a9:anonymous"},
		{"empty user", "", []string{"g"}, false, "n0:1:g"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Key(c.user, c.groups, c.anonymous); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestKeyIsUnambiguous(t *testing.T) {
	type subject struct {
		user      string
		groups    []string
		anonymous bool
	}
	subjects := []subject{
		{"a,b", nil, false}, {"a", []string{"b"}, false}, {"a", []string{"b"}, true},
		{"a1:b", nil, false}, {"a", []string{"1:b"}, false}, {"", []string{"a"}, false},
		{"a", nil, false}, {"a", []string{"b", "c"}, false}, {"a", []string{"bc"}, false},
	}
	seen := map[string]subject{}
	for _, s := range subjects {
		k := Key(s.user, s.groups, s.anonymous)
		if prev, ok := seen[k]; ok {
			t.Errorf("%+v and %+v share key %q", prev, s, k)
		}
		seen[k] = s
	}
}

func TestKeyDoesNotModifyGroups(t *testing.T) {
	groups := []string{"z", "a"}
	Key("u", groups, false)
	if groups[0] != "z" || groups[1] != "a" {
		t.Errorf("groups changed to %v", groups)
	}
}
