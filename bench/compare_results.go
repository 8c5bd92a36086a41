package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// formatBytes writes a size as "2 KiB" when it is whole KiB, else in bytes.
func formatBytes(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}

// WriteCompareResults writes latest.json, latest.md and latest.svg into dir.
// The JSON keeps the latency histogram of each target's median round only.
func WriteCompareResults(dir string, rep *CompareReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(compactReport(rep), "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the report: %w", err)
	}
	js = joinPairs(js)
	if err := writeFileAtomic(filepath.Join(dir, "latest.json"), append(js, '\n')); err != nil {
		return err
	}
	if err := writeWith(filepath.Join(dir, "latest.md"), func(w io.Writer) error { return WriteMarkdown(w, rep) }); err != nil {
		return err
	}
	return writeWith(filepath.Join(dir, "latest.svg"), func(w io.Writer) error {
		return WriteLatencySVG(w, ComparePanels(rep))
	})
}

// pairLines matches a two-number array as MarshalIndent spreads it over
// four lines.
var pairLines = regexp.MustCompile(`\[\s+(-?\d+),\s+(-?\d+)\s+\]`)

// joinPairs puts each histogram bucket of indented JSON on one line.
func joinPairs(js []byte) []byte { return pairLines.ReplaceAll(js, []byte("[$1, $2]")) }

// compactReport copies rep with the histograms of all but the median rounds
// dropped.
func compactReport(rep *CompareReport) *CompareReport {
	c := *rep
	c.Scenarios = make([]ScenarioReport, len(rep.Scenarios))
	for i, s := range rep.Scenarios {
		ts := make([]TargetRuns, len(s.Targets))
		for j, t := range s.Targets {
			rounds := make([]*Result, len(t.Rounds))
			for k, r := range t.Rounds {
				cp := *r
				cp.Histogram = nil
				rounds[k] = &cp
			}
			t.Rounds = rounds
			ts[j] = t
		}
		s.Targets = ts
		c.Scenarios[i] = s
	}
	return &c
}

// targetColors are the plot colors: direct grey-blue, nginx green,
// mcpgw-async orange, mcpgw-sync reddish purple (distinguishable with the
// common color-vision deficiencies).
var targetColors = map[string]string{
	TargetDirect:     "#5b7083",
	TargetNginx:      "#009e73",
	TargetMCPGWSync:  "#cc79a7",
	TargetMCPGWAsync: "#e66100",
}

// ComparePanels makes the latency plot's panels: scenario 1 (closed loop)
// and scenario 2 (open loop), when measured.
func ComparePanels(rep *CompareReport) []LatencyPanel {
	var panels []LatencyPanel
	for _, id := range []string{"s1", "s2"} {
		s := findScenario(rep.Scenarios, id)
		if s == nil {
			continue
		}
		p := LatencyPanel{Title: "Scenario " + id[1:] + ": " + shortTitle(s)}
		for _, t := range s.Targets {
			if t.Median == nil {
				continue
			}
			label := t.Target
			if !s.Load.OpenLoop() {
				label += " " + thousands(t.Median.Throughput) + " req/s"
			}
			series := SeriesOf(label, targetColors[t.Target], t.Median)
			series.Dashed = t.Target == TargetDirect
			p.Series = append(p.Series, series)
		}
		how := "each connection sends its next request when the previous answer is in"
		if s.Load.OpenLoop() {
			how = "latency from each request's scheduled time (no coordinated omission)"
		}
		p.Subtitle = fmt.Sprintf("median round of %d; %s", rep.Settings.Rounds, how)
		panels = append(panels, p)
	}
	return panels
}

func shortTitle(s *ScenarioReport) string {
	if s.Load.OpenLoop() {
		return fmt.Sprintf("tools/call %s, open loop at %s req/s, %d connections", formatBytes(s.Load.Payload), thousands(s.Load.Rate), s.Load.Concurrency)
	}
	return fmt.Sprintf("tools/call %s, %d connections, closed loop", formatBytes(s.Load.Payload), s.Load.Concurrency)
}

func writeWith(path string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return fmt.Errorf("cannot render %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// writeFileAtomic writes data to path through a temporary file beside it.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
