package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeRun(t *testing.T, dir string, scenarios map[string][]check, order []string) {
	t.Helper()
	for i, name := range order {
		sub := filepath.Join(dir, "server-"+name+"-2026-07-28T10-00-0"+string(rune('0'+i))+"-000Z")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(scenarios[name])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "checks.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadResultsKeepsRunOrder(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, map[string][]check{
		"tools-list":       {{ID: "a", Status: "SUCCESS"}},
		"server-stateless": {{ID: "b", Status: "FAILURE"}},
	}, []string{"tools-list", "server-stateless"})
	if err := os.WriteFile(filepath.Join(dir, "stray.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := loadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if want := []string{"tools-list", "server-stateless"}; !slices.Equal(names, want) {
		t.Errorf("got scenarios %q, want %q", names, want)
	}
}

func TestCompare(t *testing.T) {
	direct := []scenario{
		{Name: "same", Checks: []check{{ID: "x", Status: "SUCCESS"}}},
		{Name: "lost", Checks: []check{{ID: "x", Status: "SUCCESS"}, {ID: "y", Status: "SUCCESS"}}},
		{Name: "repeated", Checks: []check{{ID: "x", Status: "SUCCESS"}, {ID: "x", Status: "SUCCESS"}}},
		{Name: "failing-direct", Checks: []check{{ID: "x", Status: "FAILURE"}}},
		{Name: "missing", Checks: []check{{ID: "x", Status: "SUCCESS"}}},
		{Name: "warning", Checks: []check{{ID: "x", Status: "WARNING"}}},
	}
	gw := []scenario{
		{Name: "same", Checks: []check{{ID: "x", Status: "SUCCESS"}}},
		{Name: "lost", Checks: []check{{ID: "x", Status: "SUCCESS"}, {ID: "y", Status: "FAILURE", ErrorMessage: "got 403"}}},
		{Name: "repeated", Checks: []check{{ID: "x", Status: "SUCCESS"}}},
		{Name: "failing-direct", Checks: []check{{ID: "x", Status: "FAILURE"}}},
		{Name: "warning", Checks: []check{{ID: "x", Status: "FAILURE"}}},
		{Name: "only-gw", Checks: []check{{ID: "x", Status: "SUCCESS"}}},
	}
	c := compare(direct, gw)
	var got []string
	for _, r := range c.Regressions {
		got = append(got, r.Scenario+"/"+r.Check+"/"+r.Status+"/"+r.Message)
	}
	want := []string{
		"lost/y/FAILURE/got 403",
		"repeated/x/MISSING/",
		"missing/x/MISSING/scenario produced no results through mcpgw",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got regressions %q, want %q", got, want)
	}
	if n, want := len(c.Rows), len(direct)+1; n != want {
		t.Errorf("got %d rows, want %d (every direct scenario and the one only seen through mcpgw)", n, want)
	}
}

func TestNotScored(t *testing.T) {
	out := strings.Join([]string{
		"Total: 165 passed, 30 failed",
		"Not scored for 2026-07-28: 3 scenario(s) run, 1 failing. These do not affect conformance.",
		"  ✗ tasks-lifecycle (extension)",
		"  ✓ json-schema-2020-12 (pending)",
		"",
		"  ✓ after-blank (pending)",
	}, "\n")
	got := notScored(out)
	want := map[string]string{"tasks-lifecycle": "extension", "json-schema-2020-12": "pending"}
	if len(got) != len(want) || got["tasks-lifecycle"] != "extension" || got["json-schema-2020-12"] != "pending" {
		t.Errorf("got %v, want %v", got, want)
	}
}
