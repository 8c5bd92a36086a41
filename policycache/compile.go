package policycache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// RuleSpec is one rule of an application's policy as configured
// (DESIGN.md section 3, applications[].rules[]).
type RuleSpec struct {
	Name      string
	Users     []string // subjects.users: exact user strings
	Groups    []string // subjects.groups: exact group names
	Anonymous bool     // subjects.anonymous: the subject of `auth: none` applications
	// Allow patterns per kind (RE2, whole-name match).
	Tools, Prompts, Resources []string
	// Deny patterns per kind; they win over every allow.
	DenyTools, DenyPrompts, DenyResources []string
	// Arguments maps a JSON pointer into params.arguments of tools/call to
	// an RE2 pattern the value must match whole.
	Arguments map[string]string
	Audit     bool // mode: audit
	Approval  bool // approval: present
}

// AppSpec is one application's policy as configured.
type AppSpec struct {
	Name          string
	VisibilityAll bool // visibility: all
	Rules         []RuleSpec
}

// Options tunes Compile.
type Options struct {
	// CacheEntries bounds the decision cache shared by all applications of
	// the Policy. 0 means 1<<16; a negative value disables the cache.
	CacheEntries int64
}

// DefaultCacheEntries is the decision cache size when Options leaves it 0.
const DefaultCacheEntries = 1 << 16

// CompileError is one problem found by Compile, located precisely enough for
// the config loader to map it to a file and line.
type CompileError struct {
	App string
	// Rule is the rule's name; "" for application-level problems or for a
	// rule without a name (then RuleIndex locates it).
	Rule string
	// RuleIndex is the rule's position in the application's rules, -1 for
	// application-level problems.
	RuleIndex int
	// Field is the configuration key: name, subjects, users, groups, tools,
	// prompts, resources, deny_tools, deny_prompts, deny_resources,
	// arguments.
	Field string
	// Index is the position in a list field, -1 when not a list element.
	Index int
	// Key is the map key for Field "arguments" (the JSON pointer).
	Key string
	Err error
}

func (e CompileError) Error() string {
	var b strings.Builder
	b.WriteString("app ")
	b.WriteString(strconv.Quote(e.App))
	switch {
	case e.Rule != "":
		b.WriteString(" rule ")
		b.WriteString(strconv.Quote(e.Rule))
	case e.RuleIndex >= 0:
		b.WriteString(" rules[")
		b.WriteString(strconv.Itoa(e.RuleIndex))
		b.WriteByte(']')
	}
	if e.Field != "" {
		b.WriteByte(' ')
		b.WriteString(e.Field)
		if e.Key != "" {
			b.WriteByte('[')
			b.WriteString(strconv.Quote(e.Key))
			b.WriteByte(']')
		} else if e.Index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.Index))
			b.WriteByte(']')
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e CompileError) Unwrap() error { return e.Err }

// CompileErrors is every problem Compile found, in configuration order.
type CompileErrors []CompileError

func (es CompileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.Is and errors.As access to each problem.
func (es CompileErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

var (
	errNoAppName      = errors.New("policycache: application has no name")
	errDuplicateApp   = errors.New("policycache: duplicate application name")
	errNoRuleName     = errors.New("policycache: rule has no name")
	errDuplicateRule  = errors.New("policycache: duplicate rule name")
	errNoSubjects     = errors.New("policycache: rule names no subjects (users, groups or anonymous)")
	errEmptySubject   = errors.New("policycache: empty subject name")
	errBadJSONPointer = errors.New("policycache: invalid JSON pointer (RFC 6901)")
)

// kindFields names the allow and deny fields per Kind.
var kindFields = [numKinds][2]string{
	KindTool:     {"tools", "deny_tools"},
	KindPrompt:   {"prompts", "deny_prompts"},
	KindResource: {"resources", "deny_resources"},
}

func (r *RuleSpec) patterns(k Kind, deny bool) []string {
	switch {
	case k == KindTool && !deny:
		return r.Tools
	case k == KindTool:
		return r.DenyTools
	case k == KindPrompt && !deny:
		return r.Prompts
	case k == KindPrompt:
		return r.DenyPrompts
	case !deny:
		return r.Resources
	}
	return r.DenyResources
}

// Compile validates and compiles the policy of every application. It
// reports every problem at once as CompileErrors and then returns a nil
// Policy; on success the Policy owns a running decision cache until Close.
func Compile(apps []AppSpec, opts Options) (*Policy, error) {
	p := &Policy{apps: make(map[string]*AppPolicy, len(apps))}
	var errs CompileErrors
	for ai := range apps {
		spec := &apps[ai]
		if spec.Name == "" {
			errs = append(errs, CompileError{App: spec.Name, RuleIndex: -1, Field: "name", Index: -1, Err: errNoAppName})
		} else if _, dup := p.apps[spec.Name]; dup {
			errs = append(errs, CompileError{App: spec.Name, RuleIndex: -1, Field: "name", Index: -1, Err: errDuplicateApp})
		}
		a := compileApp(spec, &errs)
		a.policy = p
		a.index = uint64(ai)
		p.apps[spec.Name] = a
		p.order = append(p.order, a)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	entries := opts.CacheEntries
	if entries == 0 {
		entries = DefaultCacheEntries
	}
	if entries > 0 {
		c, err := newDecisionCache(entries, rand.Uint64())
		if err != nil {
			return nil, fmt.Errorf("cannot create decision cache: %w", err)
		}
		p.cache = c
	}
	return p, nil
}

func compileApp(spec *AppSpec, errs *CompileErrors) *AppPolicy {
	a := &AppPolicy{name: spec.Name, visibilityAll: spec.VisibilityAll}
	seen := make(map[string]bool, len(spec.Rules))
	for ri := range spec.Rules {
		rs := &spec.Rules[ri]
		fail := func(field string, index int, key string, err error) {
			*errs = append(*errs, CompileError{App: spec.Name, Rule: rs.Name, RuleIndex: ri, Field: field, Index: index, Key: key, Err: err})
		}
		switch {
		case rs.Name == "":
			fail("name", -1, "", errNoRuleName)
		case seen[rs.Name]:
			fail("name", -1, "", errDuplicateRule)
		}
		seen[rs.Name] = true
		r, summary := compileRule(rs, fail)
		a.rules = append(a.rules, r)
		a.summaries = append(a.summaries, summary)
	}
	a.chooseCaching()
	return a
}

func compileRule(rs *RuleSpec, fail func(field string, index int, key string, err error)) (rule, RuleSummary) {
	r := rule{
		name:      rs.Name,
		users:     slices.Clone(rs.Users),
		groups:    slices.Clone(rs.Groups),
		anonymous: rs.Anonymous,
		audit:     rs.Audit,
		approval:  rs.Approval,
	}
	sum := RuleSummary{
		Name:      rs.Name,
		Users:     slices.Clone(rs.Users),
		Groups:    slices.Clone(rs.Groups),
		Anonymous: rs.Anonymous,
		Audit:     rs.Audit,
		Approval:  rs.Approval,
	}
	if len(rs.Users) == 0 && len(rs.Groups) == 0 && !rs.Anonymous {
		fail("subjects", -1, "", errNoSubjects)
	}
	for i, u := range rs.Users {
		if u == "" {
			fail("users", i, "", errEmptySubject)
		}
	}
	for i, g := range rs.Groups {
		if g == "" {
			fail("groups", i, "", errEmptySubject)
		}
	}
	for k := range numKinds {
		for d, field := range kindFields[k] {
			deny := d == 1
			var parts []classified
			for i, pat := range rs.patterns(k, deny) {
				c, err := classifyPattern(pat)
				if err != nil {
					fail(field, i, "", fmt.Errorf("invalid regex %q: %w", pat, err))
					continue
				}
				parts = append(parts, c)
				sum.Patterns = append(sum.Patterns, patternSummary(field, i, "", pat, &c))
			}
			m, err := newMatcher(parts)
			if err != nil {
				fail(field, -1, "", fmt.Errorf("cannot combine patterns: %w", err))
			}
			if deny {
				r.deny[k] = m
			} else {
				r.allow[k] = m
			}
		}
	}
	ptrs := make([]string, 0, len(rs.Arguments))
	for ptr := range rs.Arguments {
		ptrs = append(ptrs, ptr)
	}
	slices.Sort(ptrs)
	for _, ptr := range ptrs {
		pat := rs.Arguments[ptr]
		if !validJSONPointer(ptr) {
			fail("arguments", -1, ptr, errBadJSONPointer)
			continue
		}
		c, err := classifyPattern(pat)
		if err != nil {
			fail("arguments", -1, ptr, fmt.Errorf("invalid regex %q: %w", pat, err))
			continue
		}
		m, err := newMatcher([]classified{c})
		if err != nil {
			fail("arguments", -1, ptr, fmt.Errorf("invalid regex %q: %w", pat, err))
			continue
		}
		r.args = append(r.args, constraint{pointer: ptr, value: m})
		sum.Arguments = append(sum.Arguments, patternSummary("arguments", -1, ptr, pat, &c))
	}
	return r, sum
}

func patternSummary(field string, index int, key, pattern string, c *classified) PatternSummary {
	return PatternSummary{
		Field: field, Index: index, Key: key, Pattern: pattern, Class: c.class(),
		Exact:    c.exact,
		Prefixes: c.literals(false, true),
		Suffixes: c.literals(true, false),
		Contains: c.literals(true, true),
	}
}

// validJSONPointer checks RFC 6901 syntax: "" or "/"-separated reference
// tokens in which '~' is only followed by '0' or '1'.
func validJSONPointer(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return false
		}
	}
	return true
}

// RuleSummary describes one compiled rule for `mcpgw check` and
// `mcpgw explain`. Its slices are shared with the Policy: read only.
type RuleSummary struct {
	Name      string
	Users     []string
	Groups    []string
	Anonymous bool
	Audit     bool // mode: audit (false: enforce)
	Approval  bool
	// Patterns lists every allow and deny pattern, field by field (tools,
	// deny_tools, prompts, deny_prompts, resources, deny_resources), in
	// configuration order within each field.
	Patterns []PatternSummary
	// Arguments lists the argument constraints, sorted by JSON pointer.
	Arguments []PatternSummary
}

// Mode returns "enforce" or "audit".
func (r *RuleSummary) Mode() string {
	if r.Audit {
		return "audit"
	}
	return "enforce"
}

// PatternSummary says how one configured pattern was compiled.
type PatternSummary struct {
	Field   string
	Index   int    // position in Field, -1 for arguments
	Key     string // JSON pointer, for arguments
	Pattern string
	Class   MatchClass
	// Exact are the names matched by map lookup.
	Exact []string
	// Prefixes, Suffixes and Contains are the literals checked by prefix,
	// suffix and substring comparison (`list_.*`, `.*_admin`, `.*secret.*`).
	Prefixes, Suffixes, Contains []string
}
