package policycache

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp/syntax"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestCompileErrorsAllAtOnce(t *testing.T) {
	apps := []AppSpec{
		{
			Name: "x",
			Rules: []RuleSpec{
				{Name: "readers", Groups: []string{"g"}, Tools: []string{"ok_.*", "fine", "(unclosed"}, DenyPrompts: []string{"[a-"}},
				{Name: "args", Users: []string{"u"}, Tools: []string{"t"}, Arguments: map[string]string{"/b": "*", "a": "x", "/ok": "y"}},
				{Groups: []string{"g"}},
				{Name: "readers", Groups: []string{"g"}},
				{Name: "nobody", Tools: []string{"t"}},
				{Name: "blank", Users: []string{""}, Groups: []string{"g", ""}},
			},
		},
		{Name: "x", Rules: []RuleSpec{{Name: "r", Groups: []string{"g"}, Resources: []string{"a", "b", `\8`}}}},
		{Name: ""},
	}
	p, err := Compile(apps, Options{})
	if p != nil {
		t.Errorf("got a Policy with errors")
	}
	var errs CompileErrors
	if !errors.As(err, &errs) {
		t.Fatalf("got %T %v, want CompileErrors", err, err)
	}
	type loc struct {
		App, Rule string
		RuleIndex int
		Field     string
		Index     int
		Key       string
	}
	want := []loc{
		{"x", "readers", 0, "tools", 2, ""},
		{"x", "readers", 0, "deny_prompts", 0, ""},
		{"x", "args", 1, "arguments", -1, "/b"},
		{"x", "args", 1, "arguments", -1, "a"},
		{"x", "", 2, "name", -1, ""},
		{"x", "readers", 3, "name", -1, ""},
		{"x", "nobody", 4, "subjects", -1, ""},
		{"x", "blank", 5, "users", 0, ""},
		{"x", "blank", 5, "groups", 1, ""},
		{"x", "", -1, "name", -1, ""},
		{"x", "r", 0, "resources", 2, ""},
		{"", "", -1, "name", -1, ""},
	}
	var got []loc
	for _, e := range errs {
		got = append(got, loc{e.App, e.Rule, e.RuleIndex, e.Field, e.Index, e.Key})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error locations (-want +got):\n%s", diff)
	}
	wantText := []string{
		"app \"x\" rule \"readers\" tools[2]: invalid regex \"(unclosed\": error parsing regexp: missing closing ): `(unclosed`",
		"app \"x\" rule \"readers\" deny_prompts[0]: invalid regex \"[a-\": error parsing regexp: missing closing ]: `[a-`",
		"app \"x\" rule \"args\" arguments[\"/b\"]: invalid regex \"*\": error parsing regexp: missing argument to repetition operator: `*`",
		"app \"x\" rule \"args\" arguments[\"a\"]: policycache: invalid JSON pointer (RFC 6901)",
		"app \"x\" rules[2] name: policycache: rule has no name",
		"app \"x\" rule \"readers\" name: policycache: duplicate rule name",
		"app \"x\" rule \"nobody\" subjects: policycache: rule names no subjects (users, groups or anonymous)",
		"app \"x\" rule \"blank\" users[0]: policycache: empty subject name",
		"app \"x\" rule \"blank\" groups[1]: policycache: empty subject name",
		"app \"x\" name: policycache: duplicate application name",
		"app \"x\" rule \"r\" resources[2]: invalid regex \"\\\\8\": error parsing regexp: invalid escape sequence: `\\8`",
		"app \"\" name: policycache: application has no name",
	}
	if diff := cmp.Diff(strings.Join(wantText, "\n"), err.Error()); diff != "" {
		t.Errorf("error text (-want +got):\n%s", diff)
	}
	var syn *syntax.Error
	if !errors.As(err, &syn) || syn.Code != syntax.ErrMissingParen {
		t.Errorf("errors.As(*syntax.Error): got %v, want the first regex error", syn)
	}
}

func TestValidJSONPointer(t *testing.T) {
	cases := map[string]bool{
		"": true, "/": true, "/a": true, "/a/b": true, "/a~0b": true, "/a~1b": true, "/0": true,
		"a": false, "/a~": false, "/a~2": false, "~0": false,
	}
	for p, want := range cases {
		t.Run(p, func(t *testing.T) {
			if got := validJSONPointer(p); got != want {
				t.Errorf("validJSONPointer(%q): got %v, want %v", p, got, want)
			}
		})
	}
}

// TestRulesGolden renders Rules() as `mcpgw check` would need it and
// compares it with testdata/rules.golden (go test -run RulesGolden -update).
func TestRulesGolden(t *testing.T) {
	apps := testApps()
	apps = append(apps, AppSpec{Name: "classes", Rules: []RuleSpec{{
		Name:          "mixed",
		Users:         []string{"u"},
		Tools:         []string{"get_user", "(get|list)_.*", "get_user|list_.*", "a|b", "a.*b", "(?i)admin", "list_.+", ".*_admin", ".*(secret|password).*", "x.*|.*y"},
		DenyResources: []string{"^file:///etc/.*$"},
		Arguments:     map[string]string{"/env": "dev|staging", "/id": "[0-9]+"},
	}}})
	p := mustCompile(t, apps, Options{})
	var b strings.Builder
	for _, a := range p.Apps() {
		fmt.Fprintf(&b, "app %s visibility_all=%v\n", a.Name(), a.VisibilityAll())
		for _, r := range a.Rules() {
			fmt.Fprintf(&b, "  rule %s mode=%s approval=%v users=%q groups=%q anonymous=%v\n",
				r.Name, r.Mode(), r.Approval, r.Users, r.Groups, r.Anonymous)
			for _, ps := range append(r.Patterns, r.Arguments...) {
				where := fmt.Sprintf("%s[%d]", ps.Field, ps.Index)
				if ps.Key != "" {
					where = fmt.Sprintf("%s[%q]", ps.Field, ps.Key)
				}
				fmt.Fprintf(&b, "    %-25s %-8s %-28q exact=%q prefixes=%q suffixes=%q contains=%q\n",
					where, ps.Class, ps.Pattern, ps.Exact, ps.Prefixes, ps.Suffixes, ps.Contains)
			}
		}
	}
	golden := filepath.Join("testdata", "rules.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("cannot read golden file (run with -update): %v", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
}
