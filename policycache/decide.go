package policycache

// Policy is the compiled policy of every application: an immutable snapshot
// built by Compile. Its methods are safe for concurrent use. Its only
// mutable part is the decision cache, which Close stops; a closed Policy
// still decides correctly, without the cache.
type Policy struct {
	apps  map[string]*AppPolicy
	order []*AppPolicy
	cache *decisionCache // nil when Options.CacheEntries < 0
}

// App returns the policy of the named application, or nil if it has none.
// A nil *AppPolicy is usable: it denies everything with ReasonUnknownApp
// and shows nothing.
func (p *Policy) App(name string) *AppPolicy {
	if p == nil {
		return nil
	}
	return p.apps[name]
}

// Apps returns every application's policy in configuration order. The
// slice is shared: read only.
func (p *Policy) Apps() []*AppPolicy {
	if p == nil {
		return nil
	}
	return p.order
}

// Close stops the decision cache and its goroutines. It waits for calls
// that are inside the cache at that moment (a few hundred nanoseconds) and
// is safe to call while other goroutines still use p: their decisions stay
// correct, they are only evaluated without the cache. Close is idempotent.
func (p *Policy) Close() {
	if p != nil && p.cache != nil {
		p.cache.close()
	}
}

// AppPolicy is the compiled policy of one application. It is immutable
// and safe for concurrent use.
type AppPolicy struct {
	policy        *Policy
	index         uint64 // position in the Policy, part of the cache key
	name          string
	visibilityAll bool
	rules         []rule
	summaries     []RuleSummary
	// useCache says per Kind whether decisions go through the cache; see
	// chooseCaching.
	useCache [numKinds]bool
}

// Name returns the application's name.
func (a *AppPolicy) Name() string {
	if a == nil {
		return ""
	}
	return a.name
}

// Rules describes every rule in configuration order, for `mcpgw check`.
// The slice is shared: read only.
func (a *AppPolicy) Rules() []RuleSummary {
	if a == nil {
		return nil
	}
	return a.summaries
}

// VisibilityAll reports whether the application shows every list entry
// (visibility: all) rather than only those the caller may use.
func (a *AppPolicy) VisibilityAll() bool { return a != nil && a.visibilityAll }

// Decide evaluates the policy for subject s calling name of kind k (a tool
// for tools/call, a prompt for prompts/get, a resource URI for
// resources/read and friends). args gives the tool call's arguments for
// `arguments` constraints; with nil args a rule with constraints does not
// allow a tool. Constraints are not checked for prompts and resources.
//
// Decide does not retain s, name or args. On a cache hit it does not
// allocate. The returned Rule strings belong to the Policy.
func (a *AppPolicy) Decide(s *Subject, k Kind, name []byte, args Args) Decision {
	if a == nil {
		return Decision{Effect: Deny, Reason: ReasonUnknownApp}
	}
	if k >= numKinds {
		return Decision{Effect: Deny, Reason: ReasonDefaultDeny}
	}
	if e := a.cacheEntry(s, k, name); e != nil {
		if e.fixed {
			return e.decision
		}
		return a.decide(&e.verdict, k, args)
	}
	var buf [inlineCandidates]int32
	v := a.matchName(s, k, name, buf[:0])
	return a.decide(&v, k, args)
}

// Visible reports whether a list entry (tools/list, prompts/list,
// resources/list, resources/templates/list) is shown to s. With
// visibility: all everything is shown; otherwise an entry is shown iff
// Decide without arguments would give Allow or NeedsApproval, except that a
// tool allowed only by rules with argument constraints is shown too (the
// call may pass them). Audit-mode rules do not affect visibility.
func (a *AppPolicy) Visible(s *Subject, k Kind, name []byte) bool {
	if a == nil || k >= numKinds {
		return false
	}
	if a.visibilityAll {
		return true
	}
	if e := a.cacheEntry(s, k, name); e != nil {
		return e.visible
	}
	var buf [inlineCandidates]int32
	v := a.matchName(s, k, name, buf[:0])
	return a.visible(&v)
}

// inlineCandidates is how many matching rules an uncached evaluation holds
// on the stack; more spill to the heap.
const inlineCandidates = 16

// rule is one compiled rule.
type rule struct {
	name      string
	users     []string
	groups    []string
	anonymous bool
	audit     bool
	approval  bool
	allow     [numKinds]matcher
	deny      [numKinds]matcher
	args      []constraint
}

// constraint is one `arguments` entry: the value at pointer must match.
type constraint struct {
	pointer string
	value   matcher
}

// names reports whether the rule names the subject: its user, one of its
// groups, or the anonymous subject.
func (r *rule) names(s *Subject) bool {
	if r.anonymous && s.Anonymous {
		return true
	}
	if s.User != "" {
		for _, u := range r.users {
			if u == s.User {
				return true
			}
		}
	}
	for _, g := range r.groups {
		for _, sg := range s.Groups {
			if g == sg {
				return true
			}
		}
	}
	return false
}

// argsHold reports whether every argument constraint holds. Unknown
// arguments (nil) fail any constraint.
func (r *rule) argsHold(args Args) bool {
	if len(r.args) == 0 {
		return true
	}
	if args == nil {
		return false
	}
	for i := range r.args {
		c := &r.args[i]
		v, ok := args.Lookup(c.pointer)
		if !ok || !c.value.match(v) {
			return false
		}
	}
	return true
}

// nameVerdict is the outcome of matching one name for one subject, before
// argument constraints: what the cache stores.
type nameVerdict struct {
	// denyEnforce is the first enforce-mode rule whose deny pattern
	// matched, -1 if none; denyAny the first of either mode.
	denyEnforce, denyAny int32
	// candidates are the rules naming the subject whose allow pattern
	// matched (and whose own deny did not), in rule order, both modes.
	candidates []int32
	// audit is set when an audit-mode rule matched the name, so that the
	// shadow decision may differ from the real one.
	audit bool
}

// matchName evaluates every rule naming s against name, appending
// candidates to buf.
func (a *AppPolicy) matchName(s *Subject, k Kind, name []byte, buf []int32) nameVerdict {
	v := nameVerdict{denyEnforce: -1, denyAny: -1, candidates: buf}
	// settled is set once a plain enforce rule allows the name without
	// constraints to check: the real decision is then Allow and the shadow
	// too, unless a later rule denies, so later allow patterns need not be
	// tried.
	settled := false
	for i := range a.rules {
		r := &a.rules[i]
		if !r.names(s) {
			continue
		}
		if r.deny[k].match(name) {
			if v.denyAny < 0 {
				v.denyAny = int32(i)
			}
			if !r.audit {
				// Deny wins in both the real and the shadow decision.
				v.denyEnforce = int32(i)
				return v
			}
			v.audit = true
			continue
		}
		if !settled && r.allow[k].match(name) {
			v.candidates = append(v.candidates, int32(i))
			v.audit = v.audit || r.audit
			settled = !r.audit && !r.approval && (k != KindTool || len(r.args) == 0)
		}
	}
	return v
}

// decide turns a verdict into a Decision for the given arguments. The
// real decision ignores audit-mode rules; the shadow decision treats them
// as enforced and is reported only when its effect differs.
func (a *AppPolicy) decide(v *nameVerdict, k Kind, args Args) Decision {
	d := a.resolve(v, k, args, false)
	if v.audit {
		if sh := a.resolve(v, k, args, true); sh.Effect != d.Effect {
			d.Shadow = true
			d.ShadowEffect = sh.Effect
			d.ShadowRule = sh.Rule
		}
	}
	return d
}

// resolve applies, in order: deny wins; a plain rule allowing the name
// (with its constraints holding) allows; else an approval rule allowing it
// needs approval; else a rule that matched but failed its constraints
// explains the denial; else default deny. Rules are taken in configuration
// order, so the first deciding rule is named.
func (a *AppPolicy) resolve(v *nameVerdict, k Kind, args Args, withAudit bool) Decision {
	deny := v.denyEnforce
	if withAudit {
		deny = v.denyAny
	}
	if deny >= 0 {
		return Decision{Effect: Deny, Reason: ReasonDeniedByRule, Rule: a.rules[deny].name}
	}
	approval, mismatch := -1, -1
	for _, i := range v.candidates {
		r := &a.rules[i]
		if (r.audit && !withAudit) || (r.approval && approval >= 0) {
			continue
		}
		if k == KindTool && !r.argsHold(args) {
			if mismatch < 0 {
				mismatch = int(i)
			}
			continue
		}
		if !r.approval {
			return Decision{Effect: Allow, Reason: ReasonAllowedByRule, Rule: r.name}
		}
		approval = int(i)
	}
	switch {
	case approval >= 0:
		return Decision{Effect: NeedsApproval, Reason: ReasonApprovalRequired, Rule: a.rules[approval].name}
	case mismatch >= 0:
		return Decision{Effect: Deny, Reason: ReasonArgumentsMismatch, Rule: a.rules[mismatch].name}
	}
	return Decision{Effect: Deny, Reason: ReasonDefaultDeny}
}

// visible: not denied by an enforce rule and allowed by some enforce rule,
// whatever its constraints or approval.
func (a *AppPolicy) visible(v *nameVerdict) bool {
	if v.denyEnforce >= 0 {
		return false
	}
	for _, i := range v.candidates {
		if !a.rules[i].audit {
			return true
		}
	}
	return false
}

// argsMatter reports whether the decision for v may depend on arguments.
func (a *AppPolicy) argsMatter(v *nameVerdict, k Kind) bool {
	if k != KindTool || v.denyEnforce >= 0 {
		return false
	}
	for _, i := range v.candidates {
		if len(a.rules[i].args) > 0 {
			return true
		}
	}
	return false
}
