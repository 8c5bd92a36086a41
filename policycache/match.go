package policycache

import (
	"bytes"
	"errors"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MatchClass says how a pattern was compiled.
type MatchClass uint8

const (
	// MatchExact: the pattern matches a finite set of names (a literal, an
	// alternation of literals, a small character class), looked up in a map.
	MatchExact MatchClass = iota
	// MatchPrefix: the pattern is a finite set of literal prefixes followed
	// by `.*` or `.+` (possibly alternated with exact names), checked with a
	// prefix comparison.
	MatchPrefix
	// MatchRegex: anything else; evaluated by the rule's one combined,
	// anchored regular expression for the field.
	MatchRegex
)

// String returns exact, prefix or regex.
func (c MatchClass) String() string {
	switch c {
	case MatchExact:
		return "exact"
	case MatchPrefix:
		return "prefix"
	case MatchRegex:
		return "regex"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// maxLiterals bounds how many exact names or prefixes one pattern may expand
// to before it is left to the regexp engine: `[a-z]` becomes 26 map entries,
// `[a-z][a-z]` (676) stays a regexp.
const maxLiterals = 64

// prefix is one literal-prefix fast path: names that start with lit and whose
// remainder is accepted by the trailing `.*` / `.+`.
type prefix struct {
	lit string
	// anyNL is set when the dot matches newlines too ((?s) flag); RE2's
	// default `.` does not match '\n'.
	anyNL bool
	// nonEmpty is set for `.+`: the remainder must be at least one character.
	nonEmpty bool
}

func (p prefix) match(name []byte) bool {
	if len(name) < len(p.lit) || string(name[:len(p.lit)]) != p.lit {
		return false
	}
	rest := name[len(p.lit):]
	if p.nonEmpty && len(rest) == 0 {
		return false
	}
	return p.anyNL || bytes.IndexByte(rest, '\n') < 0
}

// classified is what one pattern compiles to. When re is non-nil the pattern
// is left to the regexp engine and exact and prefixes are empty.
type classified struct {
	exact    []string
	prefixes []prefix
	re       *syntax.Regexp // the parsed pattern, for the combined regexp
}

func (c *classified) class() MatchClass {
	switch {
	case c.re != nil:
		return MatchRegex
	case len(c.prefixes) > 0:
		return MatchPrefix
	}
	return MatchExact
}

// errRegexpTooLarge is reported for a pattern that parses but whose program
// exceeds RE2's size limit.
var errRegexpTooLarge = errors.New("policycache: regular expression too large")

// classifyPattern parses an RE2 pattern that must match a whole name and
// finds the cheapest exact matcher for it. It returns an error for a pattern
// that regexp.Compile would reject.
func classifyPattern(pattern string) (classified, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return classified{}, err
	}
	// Compile the anchored form on its own so that size limits are reported
	// against this pattern, not against the rule's combined regexp.
	if _, err := regexp.Compile(anchored(re.String())); err != nil {
		return classified{}, errRegexpTooLarge
	}
	simple := re.Simplify()
	if exact, prefixes, ok := literalSets(stripWholeAnchors(simple)); ok {
		return classified{exact: exact, prefixes: prefixes}, nil
	}
	return classified{re: re}, nil
}

func anchored(expr string) string { return `^(?:` + expr + `)$` }

// stripWholeAnchors removes a leading `^` and a trailing `$` from the top
// level of a pattern: matching the whole name makes them redundant. Under
// syntax.Perl (regexp.Compile's flags) they are OpBeginText and OpEndText;
// in (?m) mode they are line anchors and are kept.
func stripWholeAnchors(re *syntax.Regexp) *syntax.Regexp {
	if re.Op != syntax.OpConcat {
		return re
	}
	subs := re.Sub
	if len(subs) > 0 && subs[0].Op == syntax.OpBeginText {
		subs = subs[1:]
	}
	if len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText {
		subs = subs[:len(subs)-1]
	}
	if len(subs) == len(re.Sub) {
		return re
	}
	return &syntax.Regexp{Op: syntax.OpConcat, Flags: re.Flags, Sub: subs}
}

// literalSets expresses re as a set of exact names plus a set of literal
// prefixes, or reports false. Only the top level (an alternation of
// branches) may mix the two.
func literalSets(re *syntax.Regexp) (exact []string, prefixes []prefix, ok bool) {
	re = uncapture(re)
	if re.Op == syntax.OpAlternate {
		for _, sub := range re.Sub {
			e, p, ok := literalSets(sub)
			if !ok || len(exact)+len(e)+len(prefixes)+len(p) > maxLiterals {
				return nil, nil, false
			}
			exact = append(exact, e...)
			prefixes = append(prefixes, p...)
		}
		return dedup(exact), prefixes, true
	}
	head, tail := re, (*syntax.Regexp)(nil)
	if last := lastConcatSub(re); last != nil && isAnyTail(last) {
		tail = last
		head = &syntax.Regexp{Op: syntax.OpConcat, Flags: re.Flags}
		if re.Op == syntax.OpConcat {
			head.Sub = re.Sub[:len(re.Sub)-1]
		}
	}
	lits, ok := finiteSet(head, maxLiterals)
	if !ok {
		return nil, nil, false
	}
	if tail == nil {
		return lits, nil, true
	}
	any := uncapture(tail).Sub[0]
	for _, l := range lits {
		prefixes = append(prefixes, prefix{
			lit:      l,
			anyNL:    any.Op == syntax.OpAnyChar,
			nonEmpty: uncapture(tail).Op == syntax.OpPlus,
		})
	}
	return nil, prefixes, true
}

// lastConcatSub returns the last element of a concatenation, or re itself
// when it is not one (so that `.*` alone is a prefix pattern with prefix "").
func lastConcatSub(re *syntax.Regexp) *syntax.Regexp {
	if re.Op == syntax.OpConcat {
		if len(re.Sub) == 0 {
			return nil
		}
		return re.Sub[len(re.Sub)-1]
	}
	return re
}

// isAnyTail reports whether re is `.*` or `.+` (either dot flavour).
func isAnyTail(re *syntax.Regexp) bool {
	re = uncapture(re)
	if re.Op != syntax.OpStar && re.Op != syntax.OpPlus {
		return false
	}
	op := uncapture(re.Sub[0]).Op
	return op == syntax.OpAnyChar || op == syntax.OpAnyCharNotNL
}

func uncapture(re *syntax.Regexp) *syntax.Regexp {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	return re
}

// finiteSet returns every string re matches when that is a set of at most
// limit strings built from case-sensitive literals, character classes,
// concatenation, alternation and `?`. Strings holding U+FFFD are refused:
// the regexp engine decodes each invalid UTF-8 byte of a name as U+FFFD, so
// a byte comparison would disagree with it.
func finiteSet(re *syntax.Regexp, limit int) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpCapture:
		return finiteSet(re.Sub[0], limit)
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		s := string(re.Rune)
		if strings.ContainsRune(s, utf8.RuneError) {
			return nil, false
		}
		return []string{s}, true
	case syntax.OpCharClass:
		n := 0
		for i := 0; i+1 < len(re.Rune); i += 2 {
			n += int(re.Rune[i+1]-re.Rune[i]) + 1
			if n > limit {
				return nil, false
			}
		}
		out := make([]string, 0, n)
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if r == utf8.RuneError {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpQuest:
		sub, ok := finiteSet(re.Sub[0], limit-1)
		if !ok {
			return nil, false
		}
		return dedup(append(sub, "")), true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			s, ok := finiteSet(sub, limit-len(out))
			if !ok {
				return nil, false
			}
			out = append(out, s...)
		}
		return dedup(out), true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			s, ok := finiteSet(sub, limit)
			if !ok || len(out)*len(s) > limit {
				return nil, false
			}
			next := make([]string, 0, len(out)*len(s))
			for _, a := range out {
				for _, b := range s {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return dedup(out), true
	}
	return nil, false
}

func dedup(s []string) []string {
	seen := make(map[string]struct{}, len(s))
	out := s[:0]
	for _, v := range s {
		if _, ok := seen[v]; !ok {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}

// matcher matches names against the patterns of one rule and one field
// (e.g. the rule's tools, or its deny_tools): exact names first, then
// literal prefixes, then one combined anchored regexp for the rest.
// It is immutable after construction and safe for concurrent use.
type matcher struct {
	exact    map[string]struct{}
	prefixes []prefix
	re       *regexp.Regexp
}

// newMatcher combines classified patterns. The regexps are joined from
// their parsed form (syntax.Regexp.String), never from the source text, so
// that a `\Q` without `\E` in one pattern cannot swallow the others.
func newMatcher(patterns []classified) (matcher, error) {
	var m matcher
	var res []string
	for _, c := range patterns {
		for _, e := range c.exact {
			if m.exact == nil {
				m.exact = make(map[string]struct{})
			}
			m.exact[e] = struct{}{}
		}
		m.prefixes = append(m.prefixes, c.prefixes...)
		if c.re != nil {
			res = append(res, `(?:`+c.re.String()+`)`)
		}
	}
	if len(res) > 0 {
		re, err := regexp.Compile(anchored(strings.Join(res, "|")))
		if err != nil {
			return matcher{}, err
		}
		m.re = re
	}
	return m, nil
}

func (m *matcher) empty() bool {
	return len(m.exact) == 0 && len(m.prefixes) == 0 && m.re == nil
}

// match reports whether some pattern matches the whole name. It does not
// allocate.
func (m *matcher) match(name []byte) bool {
	if m.exact != nil {
		if _, ok := m.exact[string(name)]; ok {
			return true
		}
	}
	for _, p := range m.prefixes {
		if p.match(name) {
			return true
		}
	}
	return m.re != nil && m.re.Match(name)
}
