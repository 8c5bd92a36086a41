package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
)

// check is one entry of a scenario's checks.json as the conformance suite
// writes it.
type check struct {
	ID           string `json:"id"`
	Status       string `json:"status"` // SUCCESS, FAILURE, WARNING, INFO, SKIPPED
	ErrorMessage string `json:"errorMessage"`
}

// scenario is the checks of one scenario in one run.
type scenario struct {
	Name   string
	Checks []check
}

func (s scenario) count(status string) int {
	n := 0
	for _, c := range s.Checks {
		if c.Status == status {
			n++
		}
	}
	return n
}

// resultDir matches the per-scenario folders the suite writes under -o:
// server-<scenario>-<ISO time with dashes>.
var resultDir = regexp.MustCompile(`^server-(.+)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$`)

// loadResults reads every scenario's checks.json under dir, in run order.
func loadResults(dir string) ([]scenario, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type found struct {
		name, at, path string
	}
	var all []found
	for _, e := range entries {
		m := resultDir.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		all = append(all, found{m[1], m[2], filepath.Join(dir, e.Name(), "checks.json")})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	var out []scenario
	for _, f := range all {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", f.name, err)
		}
		var checks []check
		if err := json.Unmarshal(b, &checks); err != nil {
			return nil, fmt.Errorf("scenario %s: %s: %w", f.name, f.path, err)
		}
		out = append(out, scenario{Name: f.name, Checks: checks})
	}
	return out, nil
}

// notScored reads the suite's text output for the scenarios it lists under
// "Not scored for ..." (extensions, pending, added after release), with the
// reason it gives.
func notScored(output string) map[string]string {
	out := map[string]string{}
	in := false
	line := regexp.MustCompile(`^\s+\S+ (\S+) \(([^)]+)\)\s*$`)
	for _, l := range strings.Split(output, "\n") {
		if strings.HasPrefix(l, "Not scored for") {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			in = false
			continue
		}
		out[m[1]] = m[2]
	}
	return out
}

// regression is a check that passed against the bare server and did not pass
// through mcpgw.
type regression struct {
	Scenario, Check, Status, Message string
}

// row is one scenario of the comparison table.
type row struct {
	Scenario    string
	Direct, Gw  *scenario
	Regressions []regression
}

// comparison lines up a direct run and a run through mcpgw.
type comparison struct {
	Rows        []row
	Regressions []regression
}

// compare pairs scenarios by name and checks by id (and occurrence, for ids
// a scenario repeats). A check counts as a regression when it is SUCCESS
// direct and anything else (or absent) through mcpgw.
func compare(direct, gw []scenario) comparison {
	byName := map[string]*scenario{}
	for i := range gw {
		byName[gw[i].Name] = &gw[i]
	}
	var c comparison
	seen := map[string]bool{}
	for i := range direct {
		d := &direct[i]
		seen[d.Name] = true
		r := row{Scenario: d.Name, Direct: d, Gw: byName[d.Name]}
		got := map[string]check{}
		if r.Gw != nil {
			for k, ch := range keyed(r.Gw.Checks) {
				got[k] = ch
			}
		}
		for k, ch := range keyed(d.Checks) {
			if ch.Status != "SUCCESS" {
				continue
			}
			g, ok := got[k]
			if ok && g.Status == "SUCCESS" {
				continue
			}
			reg := regression{Scenario: d.Name, Check: ch.ID, Status: "MISSING"}
			if r.Gw == nil {
				reg.Message = "scenario produced no results through mcpgw"
			}
			if ok {
				reg.Status, reg.Message = g.Status, g.ErrorMessage
			}
			r.Regressions = append(r.Regressions, reg)
		}
		sort.Slice(r.Regressions, func(i, j int) bool { return r.Regressions[i].Check < r.Regressions[j].Check })
		c.Regressions = append(c.Regressions, r.Regressions...)
		c.Rows = append(c.Rows, r)
	}
	for i := range gw {
		if !seen[gw[i].Name] {
			c.Rows = append(c.Rows, row{Scenario: gw[i].Name, Gw: &gw[i]})
		}
	}
	return c
}

// keyed maps "id#n" (the n-th check with that id) to the check.
func keyed(checks []check) map[string]check {
	out := make(map[string]check, len(checks))
	n := map[string]int{}
	for _, ch := range checks {
		out[fmt.Sprintf("%s#%d", ch.ID, n[ch.ID])] = ch
		n[ch.ID]++
	}
	return out
}

func cell(s *scenario) string {
	if s == nil {
		return "-"
	}
	pass, fail := s.count("SUCCESS"), s.count("FAILURE")
	mark := "pass"
	if fail > 0 {
		mark = "FAIL"
	}
	return fmt.Sprintf("%s %d/%d", mark, pass, pass+fail)
}

type totals struct{ scenarios, passed, failed int }

func sum(ss []scenario) totals {
	var t totals
	for _, s := range ss {
		t.scenarios++
		t.passed += s.count("SUCCESS")
		t.failed += s.count("FAILURE")
	}
	return t
}

// printTable writes the comparison of one run pair. withGw is false when
// only the direct run was made.
func printTable(w io.Writer, title string, direct, gw []scenario, c comparison, unscored map[string]string, withGw bool) {
	fmt.Fprintf(w, "\n== %s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if withGw {
		fmt.Fprintln(tw, "scenario\tdirect\tmcpgw\tnote")
	} else {
		fmt.Fprintln(tw, "scenario\tdirect\tnote")
	}
	for _, r := range c.Rows {
		var notes []string
		if why, ok := unscored[r.Scenario]; ok {
			notes = append(notes, "not scored: "+why)
		}
		if len(r.Regressions) > 0 {
			notes = append(notes, fmt.Sprintf("REGRESSION: %d check(s) pass direct, not through mcpgw", len(r.Regressions)))
		}
		if withGw {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Scenario, cell(r.Direct), cell(r.Gw), strings.Join(notes, "; "))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Scenario, cell(r.Direct), strings.Join(notes, "; "))
		}
	}
	tw.Flush()
	d := sum(direct)
	fmt.Fprintf(w, "Total direct: %d scenarios; checks: %d pass, %d fail (scored and unscored)\n", d.scenarios, d.passed, d.failed)
	if !withGw {
		return
	}
	g := sum(gw)
	fmt.Fprintf(w, "Total mcpgw:  %d scenarios; checks: %d pass, %d fail (scored and unscored)\n", g.scenarios, g.passed, g.failed)
	fmt.Fprintf(w, "Regressions (pass direct, not through mcpgw): %d\n", len(c.Regressions))
	for _, r := range c.Regressions {
		fmt.Fprintf(w, "  %s / %s: %s %s\n", r.Scenario, r.Check, r.Status, r.Message)
	}
}
