package policycache

import (
	"regexp"
	"strconv"
	"testing"
)

// benchApps returns one application with n rules. Rule i names group
// g<i%10>; the benchmark subject is in all ten groups, so every rule takes
// part (the worst case for evaluation). withRegex adds to every rule a
// pattern that stays a regexp.
func benchApps(n int, withRegex bool) []AppSpec {
	rules := make([]RuleSpec, n)
	for i := range rules {
		is := strconv.Itoa(i)
		r := RuleSpec{
			Name:      "rule-" + is,
			Groups:    []string{"g" + strconv.Itoa(i%10)},
			Tools:     []string{"tool_" + is, "list_" + is + "_.*", "(get|put)_" + is + "_item"},
			DenyTools: []string{"list_" + is + "_secret.*"},
		}
		if withRegex {
			r.Tools = append(r.Tools, "[a-z]+_"+is+"_v[0-9]+", ".*_admin_"+is)
		}
		rules[i] = r
	}
	return []AppSpec{{Name: "bench", Rules: rules}}
}

// benchNames are the names a benchmark cycles through for n rules: exact,
// prefix and regexp hits in the last rule, a deny, and a default deny (all
// rules evaluated).
func benchNames(n int) [][]byte {
	last := strconv.Itoa(n - 1)
	return [][]byte{
		[]byte("tool_" + last),
		[]byte("list_" + last + "_users"),
		[]byte("put_" + last + "_item"),
		[]byte("list_" + last + "_secret_keys"),
		[]byte("delete_everything"),
		[]byte("rotate_" + last + "_v2"),
	}
}

func benchSubject() Subject {
	groups := make([]string, 10)
	for i := range groups {
		groups[i] = "g" + strconv.Itoa(i)
	}
	return NewSubject("bench-user", groups, false)
}

// naivePolicy is the baseline: every pattern compiled on its own as
// ^(?:p)$ and evaluated one by one for every rule naming the subject.
type naivePolicy struct {
	rules []naiveRule
}

type naiveRule struct {
	name   string
	groups []string
	allow  []*regexp.Regexp
	deny   []*regexp.Regexp
}

func newNaivePolicy(app AppSpec) *naivePolicy {
	p := &naivePolicy{}
	for _, r := range app.Rules {
		nr := naiveRule{name: r.Name, groups: r.Groups}
		for _, pat := range r.Tools {
			nr.allow = append(nr.allow, regexp.MustCompile(`^(?:`+pat+`)$`))
		}
		for _, pat := range r.DenyTools {
			nr.deny = append(nr.deny, regexp.MustCompile(`^(?:`+pat+`)$`))
		}
		p.rules = append(p.rules, nr)
	}
	return p
}

func (p *naivePolicy) decide(s *Subject, name []byte) Decision {
	var allowed *naiveRule
	for i := range p.rules {
		r := &p.rules[i]
		named := false
		for _, g := range r.groups {
			for _, sg := range s.Groups {
				named = named || g == sg
			}
		}
		if !named {
			continue
		}
		for _, re := range r.deny {
			if re.Match(name) {
				return Decision{Effect: Deny, Reason: ReasonDeniedByRule, Rule: r.name}
			}
		}
		for _, re := range r.allow {
			if allowed == nil && re.Match(name) {
				allowed = r
			}
		}
	}
	if allowed != nil {
		return Decision{Effect: Allow, Reason: ReasonAllowedByRule, Rule: allowed.name}
	}
	return Decision{Effect: Deny, Reason: ReasonDefaultDeny}
}

// setCaching forces the cache on or off for every kind, overriding
// chooseCaching, so both paths can be measured on the same policy.
func setCaching(p *Policy, on bool) {
	for _, a := range p.order {
		for k := range numKinds {
			a.useCache[k] = on
		}
	}
}

// BenchmarkDecide measures one Decide per op, cycling through benchNames:
//
//	hit    the verdict is in the cache
//	eval   no cache: every rule naming the subject is evaluated
//	miss   cache too small to hold anything: hash, probe, evaluate, store
//	naive  baseline: each pattern a separate anchored regexp
func BenchmarkDecide(b *testing.B) {
	for _, mix := range []struct {
		name      string
		withRegex bool
	}{{"exact+prefix", false}, {"mixed", true}} {
		for _, n := range []int{1, 10, 100} {
			prefix := mix.name + "/rules=" + strconv.Itoa(n)
			apps := benchApps(n, mix.withRegex)
			names := benchNames(n)
			b.Run(prefix+"/hit", func(b *testing.B) {
				p := mustCompile(b, apps, Options{})
				setCaching(p, true)
				benchDecide(b, p, names, true)
			})
			b.Run(prefix+"/eval", func(b *testing.B) {
				p := mustCompile(b, apps, Options{})
				setCaching(p, false)
				benchDecide(b, p, names, false)
			})
			b.Run(prefix+"/miss", func(b *testing.B) {
				p := mustCompile(b, apps, Options{CacheEntries: 1})
				setCaching(p, true)
				// Distinct names so that nothing is found.
				many := make([][]byte, 4096)
				for i := range many {
					many[i] = []byte("unknown_" + strconv.Itoa(i))
				}
				benchDecide(b, p, many, false)
			})
			b.Run(prefix+"/naive", func(b *testing.B) {
				np := newNaivePolicy(apps[0])
				s := benchSubject()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					np.decide(&s, names[i%len(names)])
					i++
				}
			})
		}
	}
}

func benchDecide(b *testing.B, p *Policy, names [][]byte, warm bool) {
	a := p.App("bench")
	s := benchSubject()
	if warm {
		for _, n := range names {
			a.Decide(&s, KindTool, n, nil)
		}
		p.cacheWait()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.Decide(&s, KindTool, names[i%len(names)], nil)
		i++
	}
}

// BenchmarkDecideParallel measures cache hits from all CPUs at once, where
// ristretto's sharding and the reader counters matter.
func BenchmarkDecideParallel(b *testing.B) {
	p := mustCompile(b, benchApps(10, true), Options{})
	setCaching(p, true)
	a := p.App("bench")
	names := benchNames(10)
	s := benchSubject()
	for _, n := range names {
		a.Decide(&s, KindTool, n, nil)
	}
	p.cacheWait()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := benchSubject()
		i := 0
		for pb.Next() {
			a.Decide(&s, KindTool, names[i%len(names)], nil)
			i++
		}
	})
}

// BenchmarkVisible filters a list of 1,000 tool names per op (a large
// tools/list), against 10 rules with mixed patterns.
func BenchmarkVisible(b *testing.B) {
	apps := benchApps(10, true)
	names := make([][]byte, 1000)
	for i := range names {
		switch r := strconv.Itoa(i % 10); i % 4 {
		case 0:
			names[i] = []byte("list_" + r + "_item" + strconv.Itoa(i))
		case 1:
			names[i] = []byte("tool_" + strconv.Itoa(i))
		case 2:
			names[i] = []byte("rotate_" + r + "_v" + strconv.Itoa(i))
		default:
			names[i] = []byte("other_" + strconv.Itoa(i))
		}
	}
	for _, mode := range []struct {
		name  string
		cache bool
	}{{"hit", true}, {"eval", false}} {
		b.Run(mode.name, func(b *testing.B) {
			p := mustCompile(b, apps, Options{})
			setCaching(p, mode.cache)
			a := p.App("bench")
			s := benchSubject()
			for _, n := range names {
				a.Visible(&s, KindTool, n)
			}
			p.cacheWait()
			b.ReportAllocs()
			for b.Loop() {
				for _, n := range names {
					a.Visible(&s, KindTool, n)
				}
			}
		})
	}
	b.Run("naive", func(b *testing.B) {
		np := newNaivePolicy(apps[0])
		s := benchSubject()
		b.ReportAllocs()
		for b.Loop() {
			for _, n := range names {
				_ = np.decide(&s, n).Effect == Allow
			}
		}
	})
}

// BenchmarkCacheBreakEven compares a cache hit with uncached evaluation of
// exact and prefix patterns for small rule counts, where evaluation may be
// the cheaper of the two; chooseCaching's cheapRuleLimit comes from here.
func BenchmarkCacheBreakEven(b *testing.B) {
	for _, n := range []int{1, 2, 3, 4, 6, 8} {
		apps := benchApps(n, false)
		names := benchNames(n)
		for _, mode := range []struct {
			name  string
			cache bool
		}{{"hit", true}, {"eval", false}} {
			b.Run("rules="+strconv.Itoa(n)+"/"+mode.name, func(b *testing.B) {
				p := mustCompile(b, apps, Options{})
				setCaching(p, mode.cache)
				benchDecide(b, p, names, mode.cache)
			})
		}
	}
}
