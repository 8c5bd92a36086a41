package policycache

import (
	"strings"
	"sync"
	"testing"
)

// cached reports whether (a, s, k, name) has an entry in the cache.
func cached(a *AppPolicy, s *Subject, k Kind, name string) bool {
	c := a.policy.cache
	e, ok := c.get(c.hash(a.index, k, s.Key, []byte(name)))
	return ok && e.app == a && e.subject == s.Key && e.name == name && e.kind == k
}

func TestCacheStoresAndHits(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	setCaching(p, true)
	a := p.App("admin")
	s := eng
	if cached(a, &s, KindTool, "list_users") {
		t.Fatalf("entry before the first decision")
	}
	first := a.Decide(&s, KindTool, []byte("list_users"), nil)
	p.cacheWait()
	if !cached(a, &s, KindTool, "list_users") {
		t.Fatalf("got no entry after Decide and Wait, want one")
	}
	if got := a.Decide(&s, KindTool, []byte("list_users"), nil); got != first {
		t.Errorf("hit: got %+v, want %+v", got, first)
	}
	// The entry is keyed by subject and kind too.
	other := user("bob")
	if cached(a, &other, KindTool, "list_users") || cached(a, &s, KindPrompt, "list_users") {
		t.Errorf("entry found under another subject or kind")
	}
}

func TestCacheArgumentDependentEntry(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	setCaching(p, true)
	a := p.App("admin")
	s := eng
	// The cached verdict is name-level: each call's arguments are checked
	// anew.
	for range 2 {
		for _, tc := range []struct {
			args Args
			want Decision
		}{
			{envOK, allow("env-writes")},
			{envWrong, mismatch("env-writes")},
			{envProd, approval("env-writes-approval")},
			{nil, mismatch("env-writes")},
		} {
			if got := a.Decide(&s, KindTool, []byte("create_env"), tc.args); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		}
		p.cacheWait()
	}
}

// TestCacheVerifiesKey plants an entry for another subject under the hash
// of a query, as a chosen 64-bit collision would: it must be a miss.
func TestCacheVerifiesKey(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	setCaching(p, true)
	a := p.App("admin")
	attacker, victim := user("mallory"), eng
	name := []byte("list_users")
	h := p.cache.hash(a.index, KindTool, attacker.Key, name)
	planted := &cacheEntry{
		app: a, subject: victim.Key, name: string(name), kind: KindTool,
		fixed: true, visible: true, decision: allow("readers"),
	}
	p.cache.set(h, planted)
	p.cacheWait()
	if e, ok := p.cache.get(h); !ok || e != planted {
		t.Fatalf("planted entry not in the cache")
	}
	if got := a.Decide(&attacker, KindTool, name, nil); got != defaultDeny {
		t.Errorf("colliding entry used: got %+v, want %+v", got, defaultDeny)
	}
	if a.Visible(&attacker, KindTool, name) {
		t.Errorf("colliding entry used: got visible")
	}
}

func TestCacheRefusesWrongSubjectKey(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	setCaching(p, true)
	a := p.App("admin")
	// A caller bug: bob's groups under erin's key. The decision is bob's,
	// and nothing is cached under erin's key.
	liar := Subject{User: "bob", Key: eng.Key}
	if got := a.Decide(&liar, KindTool, []byte("list_users"), nil); got != defaultDeny {
		t.Errorf("got %+v, want %+v", got, defaultDeny)
	}
	p.cacheWait()
	if cached(a, &liar, KindTool, "list_users") {
		t.Errorf("entry stored under a key that does not describe the subject")
	}
	s := eng
	if got := a.Decide(&s, KindTool, []byte("list_users"), nil); got != allow("readers") {
		t.Errorf("erin: got %+v, want allow", got)
	}
}

func TestCacheSkipsLongNamesAndKeylessSubjects(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	setCaching(p, true)
	a := p.App("admin")
	s := eng
	long := "list_" + strings.Repeat("x", maxCachedName)
	if got := a.Decide(&s, KindTool, []byte(long), nil); got != allow("readers") {
		t.Errorf("long name: got %+v, want allow", got)
	}
	keyless := Subject{User: "erin", Groups: []string{"engineers"}}
	if got := a.Decide(&keyless, KindTool, []byte("list_users"), nil); got != allow("readers") {
		t.Errorf("keyless subject: got %+v, want allow", got)
	}
	p.cacheWait()
	if cached(a, &s, KindTool, long) || cached(a, &keyless, KindTool, "list_users") {
		t.Errorf("got a cache entry, want none")
	}
}

func TestCloseWhileInUse(t *testing.T) {
	p, err := Compile(testApps(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	setCaching(p, true)
	a := p.App("admin")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			s := eng
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := a.Decide(&s, KindTool, []byte("list_users"), nil); got != allow("readers") {
					t.Errorf("got %+v, want allow", got)
					return
				}
			}
		})
	}
	p.Close()
	p.Close()
	close(stop)
	wg.Wait()
	s := eng
	if got := a.Decide(&s, KindTool, []byte("get_users"), nil); got != allow("readers") {
		t.Errorf("after Close: got %+v, want allow", got)
	}
}

// TestHotPathAllocs asserts the zero-allocation hot path: cache hits, and
// uncached evaluation of exact and prefix patterns.
func TestHotPathAllocs(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	setCaching(p, false)
	forced := mustCompile(t, testApps(), Options{})
	setCaching(forced, true)
	cases := []struct {
		name   string
		policy *Policy
		target string
		args   Args
	}{
		{"cache hit fixed", forced, "list_users", nil},
		{"cache hit with arguments", forced, "create_env", envOK},
		{"cache hit shadow", forced, "list_secrets", nil},
		{"uncached prefix", p, "list_users", nil},
		{"uncached arguments", p, "create_env", envOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.policy.App("admin")
			s := Subject{User: "erin", Groups: []string{"engineers"}, Key: eng.Key}
			name := []byte(tc.target)
			a.Decide(&s, KindTool, name, tc.args)
			a.Visible(&s, KindTool, name)
			tc.policy.cacheWait()
			if n := testing.AllocsPerRun(1000, func() {
				a.Decide(&s, KindTool, name, tc.args)
			}); n != 0 {
				t.Errorf("Decide: got %v allocs, want 0", n)
			}
			if n := testing.AllocsPerRun(1000, func() {
				a.Visible(&s, KindTool, name)
			}); n != 0 {
				t.Errorf("Visible: got %v allocs, want 0", n)
			}
		})
	}
}

func TestChooseCaching(t *testing.T) {
	cases := []struct {
		name  string
		rules []RuleSpec
		want  [numKinds]bool
	}{
		{"one literal rule", []RuleSpec{{Name: "a", Users: []string{"u"}, Tools: []string{"x", "y_.*"}}}, [numKinds]bool{}},
		{"regexp in one kind", []RuleSpec{{Name: "a", Users: []string{"u"}, Tools: []string{"x"}, DenyPrompts: []string{"a.*b"}}}, [numKinds]bool{KindPrompt: true}},
		{"many rules", []RuleSpec{
			{Name: "a", Users: []string{"u"}}, {Name: "b", Users: []string{"u"}}, {Name: "c", Users: []string{"u"}},
		}, [numKinds]bool{true, true, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, []AppSpec{{Name: "a", Rules: tc.rules}}, Options{})
			if got := p.App("a").useCache; got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
