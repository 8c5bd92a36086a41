// Package policycache compiles mcpgw's access rules (DESIGN.md section 3,
// "Policy semantics") into an immutable snapshot, answers "may this subject
// use this tool, prompt or resource" on the request path without allocating,
// caches name-level verdicts in a ristretto cache, and publishes snapshots to
// the request path through an atomic pointer (Holder).
//
// # Semantics
//
// A rule names subjects by user (exact match on the user string), by group
// (exact match on any of the subject's groups) or as anonymous (the subject
// of `auth: none` applications). A rule that names the subject takes part in
// the decision; others are ignored. Per kind (tool, prompt, resource) a rule
// has allow patterns (tools, prompts, resources) and deny patterns
// (deny_tools, deny_prompts, deny_resources). Patterns are RE2 and match the
// WHOLE name: `list_.*` matches `list_users`, never `unlist_all`, and, as in
// RE2, `.` does not match a newline unless the pattern says (?s).
//
// Decide, for the enforce-mode rules naming the subject, in this order:
//
//  1. A deny pattern of any of them matches: Deny, ReasonDeniedByRule, by the
//     first such rule. Denies of approval rules count too.
//  2. A rule without approval allows the name, and for tools its argument
//     constraints hold: Allow, ReasonAllowedByRule, by the first such rule.
//  3. A rule with approval allows the name (constraints holding):
//     NeedsApproval, ReasonApprovalRequired, by the first such rule. The
//     caller then looks for a grant (package access).
//  4. Some rule allowed the name but every such rule failed its argument
//     constraints: Deny, ReasonArgumentsMismatch, naming the first of them.
//  5. Otherwise: Deny, ReasonDefaultDeny, Rule "".
//
// "First" is configuration order, so Decision.Rule is stable for `mcpgw
// explain`. The permissions of a subject are thus the union of the rules
// naming it, minus the union of their denies.
//
// Argument constraints (`arguments`: JSON pointer -> RE2, whole match) apply
// to tools only; every constraint of a rule must hold for that rule to
// allow. An absent pointer, an object or array value, or unknown arguments
// (nil Args) fail the constraint. Numbers, booleans and null are matched as
// their literal JSON text (`[0-9]+` matches 42, not 3.5).
//
// Audit-mode rules never block and never allow. Decide also computes the
// shadow decision, with the same steps but audit-mode rules treated as
// enforced; when its Effect differs from the real one, Decision.Shadow is
// set with ShadowEffect and ShadowRule (always an audit-mode rule). This
// goes both ways: an audit rule that would deny an allowed call (rolling out
// a restriction) and one that would allow a denied call (rolling out a
// grant) are both reported. A shadow that agrees on the effect is not
// reported.
//
// Visible filters list results (tools/list, prompts/list, resources/list,
// resources/templates/list). With `visibility: all` every entry is shown and
// use is still decided by Decide. With `visibility: permitted` (default) an
// entry is shown iff Decide would give Allow or NeedsApproval, counting a
// tool allowed only by rules with argument constraints as allowed (the call
// may satisfy them). Audit-mode rules do not change visibility.
//
// # Compilation
//
// Compile checks every pattern and reports every problem at once
// (CompileErrors, each naming app, rule, field and index). Each pattern is
// parsed with regexp/syntax and classified:
//
//	exact     a finite set of names: `get_user`, `a|b`, `get_(user|group)s?`, `v[12]`
//	prefix    literals then `.*` or `.+`: `list_.*`, `(get|list)_.*`
//	suffix    `.*` or `.+` then literals: `.*_admin`
//	contains  literals between wildcards: `.*secret.*` (or prefixes mixed with suffixes)
//	regex     everything else: `a.*b`, `(?i)admin`, `[a-z]+_v[0-9]+`
//
// Literal sets are expanded up to 64 strings; a literal may not hold U+FFFD
// (the regexp engine reads each invalid UTF-8 byte of a name as U+FFFD, which
// a byte comparison would not), so such patterns stay regexps.
//
// Per rule and field the exact names go into one map, the literals with
// wildcards (prefix, suffix, contains) into one list, and the remaining
// patterns into one combined anchored regexp
// `^(?:(?:p1)|(?:p2))$` built from the parsed patterns. Matching tries them
// in that order. AppPolicy.Rules reports the classification for `mcpgw
// check`.
//
// # Decision cache
//
// Name-level verdicts (which rules deny, which allow the name, before
// argument constraints) are cached per (application, Subject.Key, kind,
// name) in a ristretto cache shared by the applications of a Policy. The key
// is a seeded 64-bit xxhash of that tuple; the entry stores the tuple itself
// and a hit whose tuple differs is a miss, so a hash collision can never
// hand one subject another's decision. Subject.Key must be SubjectKey of the
// subject, and an entry is only stored after checking that. Names longer than
// 512 bytes and subjects without Key are evaluated uncached.
//
// Caching is used per application and kind only where evaluation costs more
// than a cache hit: when a rule has a residual regexp for that kind or the
// application has more than 2 rules. Evaluating the exact, prefix, suffix and
// substring patterns of one or two rules is about as fast as hashing the key
// and probing ristretto, and never pays for a miss (numbers at
// cheapRuleLimit in cache.go, from policy_bench_test.go).
//
// # Concurrency and lifetime
//
// A Policy and its AppPolicies are immutable after Compile and safe for
// concurrent use. Decide and Visible never retain their arguments; the
// strings in a Decision belong to the Policy and stay valid as long as it is
// referenced. RuleSummary slices are shared and must not be modified.
//
// Holder.Store swaps in a new Policy and closes the old one. Close may run
// while requests still use the old Policy: it waits only for calls inside the
// cache at that moment (each brackets its cache use with a sharded counter),
// and later calls on a closed Policy keep deciding correctly without the
// cache. There is no use-after-close.
//
// # Allocations
//
// Decide and Visible do not allocate on a cache hit, nor when the cache is
// not used for the kind (at most 16 rules may match one name before an
// uncached evaluation spills to the heap). A cache miss allocates the entry.
// One caveat on "does not allocate": ristretto records each Get in a
// per-P buffer of 64 keys that it hands to its policy goroutine and replaces
// when full, at most 512 bytes per 64 hits; benchmarks measure 1-2 B/op and
// testing.AllocsPerRun (an average, rounded down) reports 0.
package policycache
