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
	// MatchPrefix: literals followed by `.*` or `.+` (`list_.*`), checked by
	// a prefix comparison; exact names may be alternated in.
	MatchPrefix
	// MatchSuffix: `.*` or `.+` followed by literals (`.*_admin`).
	MatchSuffix
	// MatchContains: literals with a wildcard on both sides (`.*secret.*`),
	// or a mix of prefixes and suffixes; checked by substring search.
	MatchContains
	// MatchRegex: anything else; evaluated by the rule's one combined,
	// anchored regular expression for the field.
	MatchRegex
)

// String returns exact, prefix, suffix, contains or regex.
func (c MatchClass) String() string {
	switch c {
	case MatchExact:
		return "exact"
	case MatchPrefix:
		return "prefix"
	case MatchSuffix:
		return "suffix"
	case MatchContains:
		return "contains"
	case MatchRegex:
		return "regex"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// maxLiterals bounds how many exact names or affixes one pattern may expand
// to before it is left to the regexp engine: `[a-z]` becomes 26 map entries,
// `[a-z][a-z]` (676) stays a regexp.
const maxLiterals = 64

// wildcard describes a `.*` or `.+` on one side of an affix literal; the
// zero value means no wildcard (that side must be empty).
type wildcard uint8

const (
	wcPresent  wildcard = 1 << iota
	wcAnyNL             // the dot matches '\n' too ((?s)); RE2's default `.` does not
	wcNonEmpty          // `.+`: at least one character
)

// accepts reports whether the wildcard matches s whole.
func (w wildcard) accepts(s []byte) bool {
	switch {
	case w == 0:
		return len(s) == 0
	case w&wcNonEmpty != 0 && len(s) == 0:
		return false
	}
	return w&wcAnyNL != 0 || bytes.IndexByte(s, '\n') < 0
}

// affix is one literal fast path: lit with an optional wildcard before
// (head) and after (tail) it. head 0 is a prefix, tail 0 a suffix, both set
// a substring search. Byte comparison agrees with the regexp engine's rune
// decoding because lit is valid UTF-8 without U+FFFD: a UTF-8 decoder never
// takes a lead or ASCII byte into the preceding sequence, so lit's bytes
// found anywhere start on a rune boundary.
type affix struct {
	lit        []byte
	head, tail wildcard
}

func (f *affix) match(name []byte) bool {
	switch {
	case f.head == 0:
		return bytes.HasPrefix(name, f.lit) && f.tail.accepts(name[len(f.lit):])
	case f.tail == 0:
		return bytes.HasSuffix(name, f.lit) && f.head.accepts(name[:len(name)-len(f.lit)])
	}
	for off := 0; off <= len(name); {
		i := bytes.Index(name[off:], f.lit)
		if i < 0 {
			return false
		}
		i += off
		if f.head.accepts(name[:i]) && f.tail.accepts(name[i+len(f.lit):]) {
			return true
		}
		off = i + 1
	}
	return false
}

// classified is what one pattern compiles to. When re is non-nil the pattern
// is left to the regexp engine and exact and affixes are empty.
type classified struct {
	exact   []string
	affixes []affix
	re      *syntax.Regexp // the parsed pattern, for the combined regexp
}

func (c *classified) class() MatchClass {
	if c.re != nil {
		return MatchRegex
	}
	var prefixes, suffixes, contains bool
	for _, f := range c.affixes {
		prefixes = prefixes || (f.head == 0)
		suffixes = suffixes || (f.tail == 0)
		contains = contains || (f.head != 0 && f.tail != 0)
	}
	switch {
	case contains || (prefixes && suffixes):
		return MatchContains
	case prefixes:
		return MatchPrefix
	case suffixes:
		return MatchSuffix
	}
	return MatchExact
}

// literals returns the affix literals of one shape, for RuleSummary.
func (c *classified) literals(head, tail bool) []string {
	var out []string
	for _, f := range c.affixes {
		if (f.head != 0) == head && (f.tail != 0) == tail {
			out = append(out, string(f.lit))
		}
	}
	return out
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
	if exact, affixes, ok := literalSets(stripWholeAnchors(simple)); ok {
		return classified{exact: exact, affixes: affixes}, nil
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

// literalSets expresses re as a set of exact names plus a set of affixes,
// or reports false. Only the top level (an alternation of branches) may mix
// the two.
func literalSets(re *syntax.Regexp) (exact []string, affixes []affix, ok bool) {
	re = uncapture(re)
	if re.Op == syntax.OpAlternate {
		for _, sub := range re.Sub {
			e, f, ok := literalSets(sub)
			if !ok || len(exact)+len(e)+len(affixes)+len(f) > maxLiterals {
				return nil, nil, false
			}
			exact = append(exact, e...)
			affixes = append(affixes, f...)
		}
		return dedup(exact), affixes, true
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	var head, tail wildcard
	if len(subs) > 0 {
		if w, ok := asWildcard(subs[len(subs)-1]); ok {
			tail, subs = w, subs[:len(subs)-1]
		}
	}
	if len(subs) > 0 {
		if w, ok := asWildcard(subs[0]); ok {
			head, subs = w, subs[1:]
		}
	}
	lits, ok := finiteSet(&syntax.Regexp{Op: syntax.OpConcat, Sub: subs}, maxLiterals)
	if !ok {
		return nil, nil, false
	}
	if head == 0 && tail == 0 {
		return lits, nil, true
	}
	for _, l := range lits {
		if l == "" && head != 0 && tail != 0 {
			// `.+.+`: an empty literal could split a multi-byte rune,
			// which the rune-by-rune regexp engine never does.
			return nil, nil, false
		}
		affixes = append(affixes, affix{lit: []byte(l), head: head, tail: tail})
	}
	return nil, affixes, true
}

// asWildcard recognizes `.*` and `.+` in either dot flavour.
func asWildcard(re *syntax.Regexp) (wildcard, bool) {
	re = uncapture(re)
	if re.Op != syntax.OpStar && re.Op != syntax.OpPlus {
		return 0, false
	}
	w := wcPresent
	switch uncapture(re.Sub[0]).Op {
	case syntax.OpAnyChar:
		w |= wcAnyNL
	case syntax.OpAnyCharNotNL:
	default:
		return 0, false
	}
	if re.Op == syntax.OpPlus {
		w |= wcNonEmpty
	}
	return w, true
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
// literal affixes (prefix, suffix, substring), then one combined anchored regexp for the rest.
// It is immutable after construction and safe for concurrent use.
type matcher struct {
	exact   map[string]struct{}
	affixes []affix
	re      *regexp.Regexp
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
		m.affixes = append(m.affixes, c.affixes...)
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

// match reports whether some pattern matches the whole name. It does not
// allocate.
func (m *matcher) match(name []byte) bool {
	if m.exact != nil {
		if _, ok := m.exact[string(name)]; ok {
			return true
		}
	}
	for i := range m.affixes {
		if m.affixes[i].match(name) {
			return true
		}
	}
	return m.re != nil && m.re.Match(name)
}
