package policycache

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// argMap is an Args over pre-encoded values.
type argMap map[string][]byte

func (m argMap) Lookup(pointer string) ([]byte, bool) {
	v, ok := m[pointer]
	return v, ok
}

// testApps is the policy the decision tables run against.
func testApps() []AppSpec {
	return []AppSpec{
		{
			Name: "admin",
			Rules: []RuleSpec{
				{
					Name:      "readers",
					Groups:    []string{"engineers"},
					Tools:     []string{"list_.*", "get_.*"},
					Prompts:   []string{".*"},
					Resources: []string{"pingone://env/dev/.*"},
					DenyTools: []string{"get_secret.*"},
				},
				{Name: "alice-extra", Users: []string{"alice"}, Tools: []string{"update_user"}},
				{
					Name:      "sre-approval",
					Groups:    []string{"sre"},
					Tools:     []string{"update_.*", "delete_.*"},
					DenyTools: []string{"delete_prod_.*"},
					Approval:  true,
				},
				{Name: "sre-plain", Groups: []string{"sre-leads"}, Tools: []string{"update_config"}},
				{
					Name:      "env-writes",
					Groups:    []string{"engineers"},
					Tools:     []string{"create_env"},
					Arguments: map[string]string{"/environment": "dev|staging", "/count": "[0-9]+"},
				},
				{Name: "env-writes-approval", Groups: []string{"engineers"}, Tools: []string{"create_env"}, Arguments: map[string]string{"/environment": "prod"}, Approval: true},
				{Name: "blocker", Groups: []string{"contractors"}, DenyTools: []string{"delete_.*", "update_user"}},
				{Name: "deploy-prompts", Groups: []string{"writers"}, Prompts: []string{"deploy_.*"}, Arguments: map[string]string{"/x": "y"}},
				{Name: "audit-deny", Groups: []string{"engineers"}, DenyTools: []string{"list_secrets"}, Audit: true},
				{Name: "audit-allow", Groups: []string{"engineers"}, Tools: []string{"rotate_keys"}, Audit: true},
				{Name: "audit-approval", Groups: []string{"engineers"}, Tools: []string{"purge_cache"}, Audit: true, Approval: true},
				{Name: "audit-shadowed", Groups: []string{"sre"}, Tools: []string{"update_user"}, Audit: true},
			},
		},
		{
			Name:          "public",
			VisibilityAll: true,
			Rules: []RuleSpec{
				{Name: "anyone", Anonymous: true, Tools: []string{"echo", "add"}, DenyTools: []string{"add"}},
			},
		},
	}
}

type decideCase struct {
	name    string
	app     string
	subject Subject
	kind    Kind
	target  string
	args    Args
	want    Decision
}

func user(name string, groups ...string) Subject { return NewSubject(name, groups, false) }

var anonymous = NewSubject("", nil, true)

func allow(rule string) Decision {
	return Decision{Effect: Allow, Reason: ReasonAllowedByRule, Rule: rule}
}

func denied(rule string) Decision {
	return Decision{Effect: Deny, Reason: ReasonDeniedByRule, Rule: rule}
}

func approval(rule string) Decision {
	return Decision{Effect: NeedsApproval, Reason: ReasonApprovalRequired, Rule: rule}
}

func mismatch(rule string) Decision {
	return Decision{Effect: Deny, Reason: ReasonArgumentsMismatch, Rule: rule}
}

var defaultDeny = Decision{Effect: Deny, Reason: ReasonDefaultDeny}

func shadow(d Decision, e Effect, rule string) Decision {
	d.Shadow, d.ShadowEffect, d.ShadowRule = true, e, rule
	return d
}

var (
	eng      = user("erin", "engineers")
	sre      = user("sam", "sre")
	envOK    = argMap{"/environment": []byte("dev"), "/count": []byte("3")}
	envNum   = argMap{"/environment": []byte("staging"), "/count": []byte("42")}
	envProd  = argMap{"/environment": []byte("prod"), "/count": []byte("1")}
	envWrong = argMap{"/environment": []byte("qa"), "/count": []byte("1")}
)

var decideCases = []decideCase{
	// Whole-name matching.
	{name: "prefix pattern matches", subject: eng, target: "list_users", want: allow("readers")},
	{name: "prefix pattern is anchored at start", subject: eng, target: "unlist_all", want: defaultDeny},
	{name: "dot does not match newline", subject: eng, target: "list_a\nb", want: defaultDeny},
	{name: "exact pattern is anchored at end", subject: user("alice"), target: "update_user_now", want: defaultDeny},
	{name: "kinds are separate", subject: eng, target: "pingone://env/dev/x", want: defaultDeny},
	{name: "resource pattern", subject: eng, kind: KindResource, target: "pingone://env/dev/x", want: allow("readers")},
	{name: "resource outside pattern", subject: eng, kind: KindResource, target: "pingone://env/prod/x", want: defaultDeny},
	{name: "prompt match-all", subject: eng, kind: KindPrompt, target: "anything", want: allow("readers")},

	// Default deny.
	{name: "no rule matches the name", subject: eng, target: "drop_table", want: defaultDeny},
	{name: "no rule names the subject", subject: user("bob"), target: "list_users", want: defaultDeny},
	{name: "empty subject", subject: Subject{}, target: "list_users", want: defaultDeny},

	// Union of rules.
	{name: "union: user rule", subject: user("alice", "engineers"), target: "update_user", want: allow("alice-extra")},
	{name: "union: group rule", subject: user("alice", "engineers"), target: "list_users", want: allow("readers")},

	// Deny wins.
	{name: "deny in the same rule", subject: eng, target: "get_secret_key", want: denied("readers")},
	{name: "deny from another rule", subject: user("alice", "contractors"), target: "update_user", want: denied("blocker")},
	{name: "deny from an approval rule", subject: user("sam", "sre", "sre-leads"), target: "delete_prod_db", want: denied("sre-approval")},
	{name: "deny beats approval", subject: user("sam", "sre", "contractors"), target: "delete_user", want: denied("blocker")},

	// Users versus groups.
	{name: "user rule by user", subject: user("alice"), target: "update_user", want: allow("alice-extra")},
	{name: "user name equal to a group", subject: user("engineers"), target: "list_users", want: defaultDeny},
	{name: "group name equal to a user", subject: user("bob", "alice"), target: "update_user", want: defaultDeny},

	// Anonymous subjects.
	{name: "anonymous allowed", app: "public", subject: anonymous, target: "echo", want: allow("anyone")},
	{name: "anonymous deny", app: "public", subject: anonymous, target: "add", want: denied("anyone")},
	{name: "named user not anonymous", app: "public", subject: eng, target: "echo", want: defaultDeny},
	{name: "anonymous on a group rule", subject: anonymous, target: "list_users", want: defaultDeny},

	// Argument constraints.
	{name: "arguments hold", subject: eng, target: "create_env", args: envOK, want: allow("env-writes")},
	{name: "numeric argument", subject: eng, target: "create_env", args: envNum, want: allow("env-writes")},
	{name: "numeric argument not whole", subject: eng, target: "create_env", args: argMap{"/environment": []byte("dev"), "/count": []byte("3.5")}, want: mismatch("env-writes")},
	{name: "value not whole match", subject: eng, target: "create_env", args: argMap{"/environment": []byte("devx"), "/count": []byte("1")}, want: mismatch("env-writes")},
	{name: "arguments fail", subject: eng, target: "create_env", args: envWrong, want: mismatch("env-writes")},
	{name: "absent pointer", subject: eng, target: "create_env", args: argMap{"/environment": []byte("dev")}, want: mismatch("env-writes")},
	{name: "unknown arguments", subject: eng, target: "create_env", want: mismatch("env-writes")},
	{name: "arguments pick the approval rule", subject: eng, target: "create_env", args: envProd, want: approval("env-writes-approval")},
	{name: "constraints ignored for prompts", subject: user("wes", "writers"), kind: KindPrompt, target: "deploy_app", want: allow("deploy-prompts")},

	// Approval.
	{name: "approval only", subject: sre, target: "delete_user", want: approval("sre-approval")},
	{name: "approval and plain allow", subject: user("sam", "sre", "sre-leads"), target: "update_config", want: allow("sre-plain")},
	{name: "plain allow without approval rule", subject: user("lee", "sre-leads"), target: "update_config", want: allow("sre-plain")},
	{name: "approval rule does not cover", subject: user("lee", "sre-leads"), target: "update_user", want: defaultDeny},

	// Audit mode: never blocks, never allows; reports what enforcing it would change.
	{name: "audit deny shadows an allow", subject: eng, target: "list_secrets", want: shadow(allow("readers"), Deny, "audit-deny")},
	{name: "audit allow shadows a deny", subject: eng, target: "rotate_keys", want: shadow(defaultDeny, Allow, "audit-allow")},
	{name: "audit approval shadows a deny", subject: eng, target: "purge_cache", want: shadow(defaultDeny, NeedsApproval, "audit-approval")},
	{name: "audit allow shadows approval", subject: sre, target: "update_user", want: shadow(approval("sre-approval"), Allow, "audit-shadowed")},
	{name: "audit rule agreeing is silent", subject: user("alice", "engineers"), target: "list_users", want: allow("readers")},
	{name: "audit rule for other subjects", subject: user("bob"), target: "rotate_keys", want: defaultDeny},
}

func TestDecide(t *testing.T) {
	uncached := mustCompile(t, testApps(), Options{CacheEntries: -1})
	cached := mustCompile(t, testApps(), Options{})
	setCaching(cached, true)
	modes := []struct {
		name   string
		policy *Policy
	}{
		{"uncached", uncached},
		{"cache miss", cached},
		{"cache hit", cached},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			for _, tc := range decideCases {
				t.Run(tc.name, func(t *testing.T) {
					app := tc.app
					if app == "" {
						app = "admin"
					}
					s := tc.subject
					got := mode.policy.App(app).Decide(&s, tc.kind, []byte(tc.target), tc.args)
					if diff := cmp.Diff(tc.want, got); diff != "" {
						t.Errorf("Decide(%s, %v, %q) (-want +got):\n%s", s.Key, tc.kind, tc.target, diff)
					}
				})
			}
			mode.policy.cacheWait()
		})
	}
}

func TestDecideUnknownApp(t *testing.T) {
	p := mustCompile(t, testApps(), Options{})
	s := eng
	want := Decision{Effect: Deny, Reason: ReasonUnknownApp}
	if got := p.App("nope").Decide(&s, KindTool, []byte("list_users"), nil); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if p.App("nope").Visible(&s, KindTool, []byte("list_users")) {
		t.Errorf("got visible, want hidden")
	}
	if got := p.App("admin").Decide(&s, numKinds, []byte("list_users"), nil); got != defaultDeny {
		t.Errorf("unknown kind: got %+v, want %+v", got, defaultDeny)
	}
}

func TestVisible(t *testing.T) {
	cases := []struct {
		name    string
		app     string
		subject Subject
		kind    Kind
		target  string
		want    bool
	}{
		{name: "allowed", subject: eng, target: "list_users", want: true},
		{name: "denied", subject: eng, target: "get_secret_key", want: false},
		{name: "default deny", subject: eng, target: "drop_table", want: false},
		{name: "allowed with constraints", subject: eng, target: "create_env", want: true},
		{name: "approval", subject: sre, target: "update_user", want: true},
		{name: "audit allow only", subject: eng, target: "rotate_keys", want: false},
		{name: "audit deny does not hide", subject: eng, target: "list_secrets", want: true},
		{name: "prompt", subject: eng, kind: KindPrompt, target: "p", want: true},
		{name: "resource", subject: eng, kind: KindResource, target: "pingone://env/prod/x", want: false},
		{name: "other subject", subject: user("bob"), target: "list_users", want: false},
		{name: "visibility all: allowed", app: "public", subject: anonymous, target: "echo", want: true},
		{name: "visibility all: denied", app: "public", subject: anonymous, target: "add", want: true},
		{name: "visibility all: unmatched", app: "public", subject: user("bob"), target: "secret", want: true},
		{name: "unknown app", app: "nope", subject: eng, target: "list_users", want: false},
	}
	uncached := mustCompile(t, testApps(), Options{CacheEntries: -1})
	cached := mustCompile(t, testApps(), Options{})
	setCaching(cached, true)
	for _, p := range []*Policy{uncached, cached, cached} {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				app := tc.app
				if app == "" {
					app = "admin"
				}
				s := tc.subject
				if got := p.App(app).Visible(&s, tc.kind, []byte(tc.target)); got != tc.want {
					t.Errorf("Visible(%s, %v, %q): got %v, want %v", s.Key, tc.kind, tc.target, got, tc.want)
				}
			})
		}
		p.cacheWait()
	}
	// visibility: all shows what Decide still denies.
	s := anonymous
	if got := cached.App("public").Decide(&s, KindTool, []byte("add"), nil); got.Effect != Deny {
		t.Errorf("visibility all: Decide got %v, want deny", got.Effect)
	}
}

func mustCompile(t testing.TB, apps []AppSpec, opts Options) *Policy {
	t.Helper()
	p, err := Compile(apps, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// cacheWait waits until buffered cache writes are visible (ristretto's Set
// is asynchronous).
func (p *Policy) cacheWait() {
	if p.cache != nil {
		p.cache.wait()
	}
}

func TestStrings(t *testing.T) {
	cases := []struct{ got, want string }{
		{Deny.String(), "deny"},
		{Allow.String(), "allow"},
		{NeedsApproval.String(), "approval_required"},
		{Effect(9).String(), "effect(9)"},
		{ReasonDefaultDeny.String(), "default_deny"},
		{ReasonDeniedByRule.String(), "denied_by_rule"},
		{ReasonAllowedByRule.String(), "allowed_by_rule"},
		{ReasonApprovalRequired.String(), "approval_required"},
		{ReasonArgumentsMismatch.String(), "arguments_mismatch"},
		{ReasonUnknownApp.String(), "unknown_app"},
		{Reason(9).String(), "reason(9)"},
		{KindTool.String(), "tool"},
		{KindPrompt.String(), "prompt"},
		{KindResource.String(), "resource"},
		{MatchExact.String(), "exact"},
		{MatchPrefix.String(), "prefix"},
		{MatchRegex.String(), "regex"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestSubjectKey(t *testing.T) {
	// The encoding is a contract: identity.PrincipalKey produces the same
	// bytes so that a principal's key can be used as Subject.Key directly.
	if got, want := SubjectKey("alice", []string{"sre", "eng", "sre"}, false), "n5:alice3:eng3:sre"; got != want {
		t.Errorf("SubjectKey: got %q, want %q", got, want)
	}
	if got, want := SubjectKey("", nil, true), "a0:"; got != want {
		t.Errorf("anonymous SubjectKey: got %q, want %q", got, want)
	}
	cases := []struct {
		name string
		a, b Subject
		same bool
	}{
		{"group order", user("u", "a", "b"), user("u", "b", "a"), true},
		{"duplicate groups", user("u", "a", "a"), user("u", "a"), true},
		{"user versus group", user("a"), user("", "a"), false},
		{"split boundary", user("u", "ab"), user("u", "a", "b"), false},
		{"separator in name", user("u", "1:a"), user("u", "", "a"), false},
		{"anonymous", NewSubject("", nil, true), NewSubject("", nil, false), false},
		{"user suffix", user("u1"), user("u", "1"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Key == tc.b.Key; got != tc.same {
				t.Errorf("keys %q and %q: equal %v, want %v", tc.a.Key, tc.b.Key, got, tc.same)
			}
		})
	}
}
