package policycache

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClassifyPattern(t *testing.T) {
	type want struct {
		Class                               MatchClass
		Exact, Prefixes, Suffixes, Contains []string
		Wildcards                           []string // head/tail flags per affix, in order
	}
	cases := []struct {
		pattern string
		want    want
	}{
		{`list_users`, want{Class: MatchExact, Exact: []string{"list_users"}}},
		{`list_.*`, want{Class: MatchPrefix, Prefixes: []string{"list_"}, Wildcards: []string{"-/*"}}},
		{`list_.+`, want{Class: MatchPrefix, Prefixes: []string{"list_"}, Wildcards: []string{"-/+"}}},
		{`(?s)list_.*`, want{Class: MatchPrefix, Prefixes: []string{"list_"}, Wildcards: []string{"-/*s"}}},
		{`.*`, want{Class: MatchPrefix, Prefixes: []string{""}, Wildcards: []string{"-/*"}}},
		{`^list_.*$`, want{Class: MatchPrefix, Prefixes: []string{"list_"}, Wildcards: []string{"-/*"}}},
		{`(list_.*)`, want{Class: MatchPrefix, Prefixes: []string{"list_"}, Wildcards: []string{"-/*"}}},
		{`.*_admin`, want{Class: MatchSuffix, Suffixes: []string{"_admin"}, Wildcards: []string{"*/-"}}},
		{`.+_(admin|root)`, want{Class: MatchSuffix, Suffixes: []string{"_admin", "_root"}, Wildcards: []string{"+/-", "+/-"}}},
		{`.*secret.*`, want{Class: MatchContains, Contains: []string{"secret"}, Wildcards: []string{"*/*"}}},
		{`(?s).+secret.*`, want{Class: MatchContains, Contains: []string{"secret"}, Wildcards: []string{"+s/*s"}}},
		{`a.*|.*b`, want{Class: MatchContains, Prefixes: []string{"a"}, Suffixes: []string{"b"}, Wildcards: []string{"-/*", "*/-"}}},
		{`a|b`, want{Class: MatchExact, Exact: []string{"a", "b"}}},
		{`get_user|get_group`, want{Class: MatchExact, Exact: []string{"get_user", "get_group"}}},
		{`get_(user|group)s?`, want{Class: MatchExact, Exact: []string{"get_users", "get_user", "get_groups", "get_group"}}},
		{`(get|list)_.*`, want{Class: MatchPrefix, Prefixes: []string{"get_", "list_"}, Wildcards: []string{"-/*", "-/*"}}},
		{`get_user|list_.*`, want{Class: MatchPrefix, Exact: []string{"get_user"}, Prefixes: []string{"list_"}, Wildcards: []string{"-/*"}}},
		{`\Qa.b\E`, want{Class: MatchExact, Exact: []string{"a.b"}}},
		{`a\.b`, want{Class: MatchExact, Exact: []string{"a.b"}}},
		{`v[12]`, want{Class: MatchExact, Exact: []string{"v1", "v2"}}},
		{`x{2}`, want{Class: MatchExact, Exact: []string{"xx"}}},
		{``, want{Class: MatchExact, Exact: []string{""}}},
		// Not literal: must stay regexps.
		{`a.*b`, want{Class: MatchRegex}},
		{`list_.*_v2`, want{Class: MatchRegex}},
		{`.*a.*b.*`, want{Class: MatchRegex}},
		{`(?i)list_users`, want{Class: MatchRegex}},
		{`[a-z][a-z]`, want{Class: MatchRegex}},
		{`x*`, want{Class: MatchRegex}},
		{`[^a]`, want{Class: MatchRegex}},
		{`(?m)^a$`, want{Class: MatchRegex}},
		{`a.*|b.*c`, want{Class: MatchRegex}},
		{`\x{FFFD}`, want{Class: MatchRegex}},
		{`.*\x{FFFD}`, want{Class: MatchRegex}},
		{`a\b`, want{Class: MatchRegex}},
	}
	for _, tc := range cases {
		t.Run(tc.pattern, func(t *testing.T) {
			c, err := classifyPattern(tc.pattern)
			if err != nil {
				t.Fatalf("classifyPattern: %v", err)
			}
			got := want{
				Class:    c.class(),
				Exact:    c.exact,
				Prefixes: c.literals(false, true),
				Suffixes: c.literals(true, false),
				Contains: c.literals(true, true),
			}
			for _, f := range c.affixes {
				got.Wildcards = append(got.Wildcards, f.head.String()+"/"+f.tail.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("classification (-want +got):\n%s", diff)
			}
		})
	}
}

// String renders a wildcard for test output: - none, * or + and s for (?s).
func (w wildcard) String() string {
	switch {
	case w == 0:
		return "-"
	case w&wcNonEmpty != 0 && w&wcAnyNL != 0:
		return "+s"
	case w&wcNonEmpty != 0:
		return "+"
	case w&wcAnyNL != 0:
		return "*s"
	}
	return "*"
}

// matcherNames exercises whole-name matching: near misses on both ends,
// newlines (RE2's `.` does not match them), invalid UTF-8 (the regexp
// engine reads it as U+FFFD) and the empty name.
var matcherNames = []string{
	"x_admin", "_admin", "\n_admin", "my_secret_key", "secret", "secretsecret", "a\nsecret", "secret\n", "xsecret",
	"", "a", "b", "ab", "a.b", "axb", "list_", "list_users", "unlist_all", "list_users_v2",
	"list_\n", "list_a\nb", "\nlist_a", "get_user", "get_users", "get_group", "v1", "v3",
	"LIST_USERS", "xx", "x", "\xff", "\uFFFD", "list_\xff", "a\xffb", "pingone://env/dev/x",
}

var matcherPatterns = []string{
	`list_users`, `list_.*`, `list_.+`, `(?s)list_.*`, `.*`, `.+`, `^list_.*$`, `a|b`,
	`get_(user|group)s?`, `(get|list)_.*`, `get_user|list_.*`, `\Qa.b\E`, `a.b`, `v[12]`,
	`x{2}`, ``, `a.*b`, `(?i)list_users`, `[a-z]`, `\x{FFFD}`, `[\x{FFFD}a]`, `a.?b`,
	`pingone://env/dev/.*`, `(?U)list_.*`, `^`, `$`, `^$`, `a$|b`, `.*_admin`, `.+_admin`,
	`.*secret.*`, `.+secret.+`, `(?s).*secret.*`, `(?s).+secret`, `.*secret`, `a.*|.*b`, `.*.*`, `.+.+`,
	`.*\nsecret.*`, `.*€`,
}

func TestMatcherAgreesWithRegexp(t *testing.T) {
	for _, pat := range matcherPatterns {
		t.Run(pat, func(t *testing.T) {
			checkMatcher(t, []string{pat}, matcherNames)
		})
	}
	t.Run("combined", func(t *testing.T) {
		checkMatcher(t, []string{`a.*b`, `list_.*`, `v[12]`, `(?i)x`, `\Qz|`, `.*_admin`}, append(matcherNames, "z|", "X", "root_admin"))
	})
}

// wholeMatch is the reference semantics, independent of any pattern
// rewriting: the leftmost-longest match covers the whole name.
func wholeMatch(re *regexp.Regexp, name string) bool {
	// A fresh compile, so Longest does not change the caller's regexp.
	re = regexp.MustCompile(re.String())
	re.Longest()
	loc := re.FindStringIndex(name)
	return loc != nil && loc[0] == 0 && loc[1] == len(name)
}

// checkMatcher compares a matcher for patterns with the naive evaluation of
// each pattern on its own.
func checkMatcher(t *testing.T, patterns, names []string) {
	t.Helper()
	var parts []classified
	var naive []*regexp.Regexp
	for _, p := range patterns {
		c, err := classifyPattern(p)
		if err != nil {
			t.Fatalf("classifyPattern(%q): %v", p, err)
		}
		parts = append(parts, c)
		naive = append(naive, regexp.MustCompile(p))
	}
	m, err := newMatcher(parts)
	if err != nil {
		t.Fatalf("newMatcher: %v", err)
	}
	for _, name := range names {
		want := false
		for _, re := range naive {
			want = want || wholeMatch(re, name)
		}
		if got := m.match([]byte(name)); got != want {
			t.Errorf("patterns %q name %q: got %v, want %v", patterns, name, got, want)
		}
	}
}

func FuzzMatcher(f *testing.F) {
	for _, p := range matcherPatterns {
		for _, n := range matcherNames[:6] {
			f.Add(p, n)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		naive, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		c, err := classifyPattern(pattern)
		if err != nil {
			t.Fatalf("regexp.Compile accepts %q but classifyPattern refuses it: %v", pattern, err)
		}
		m, err := newMatcher([]classified{c})
		if err != nil {
			t.Fatalf("newMatcher(%q): %v", pattern, err)
		}
		if got, want := m.match([]byte(name)), wholeMatch(naive, name); got != want {
			t.Errorf("pattern %q (%v) name %q: got %v, want %v", pattern, c.class(), name, got, want)
		}
	})
}

func TestClassifyPatternErrors(t *testing.T) {
	for _, pat := range []string{`(`, `[a-`, `*`, `a{1001}`, `(?P<x`, `\8`} {
		t.Run(pat, func(t *testing.T) {
			if _, err := classifyPattern(pat); err == nil {
				t.Errorf("got no error, want one")
			}
			if _, err := regexp.Compile(pat); err == nil {
				t.Errorf("regexp.Compile accepts %q but classifyPattern refuses it", pat)
			}
		})
	}
}
