package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SoakSample is one reading of mcpgw's process: RSS, OS threads and open
// file descriptors from /proc, goroutines from the admin listener's
// goroutine profile.
type SoakSample struct {
	At         time.Duration `json:"at_ns"` // since the sampled load began
	RSSKiB     int64         `json:"rss_kib"`
	Threads    int64         `json:"threads"`
	FDs        int64         `json:"fds"`
	Goroutines int64         `json:"goroutines"`
}

// SoakCheck compares the median of the first third of the samples with the
// median of the last third.
type SoakCheck struct {
	Metric string  `json:"metric"`
	First  float64 `json:"first_third_median"`
	Last   float64 `json:"last_third_median"`
	Growth float64 `json:"growth"` // (Last-First)/First
	Flat   bool    `json:"flat"`
}

// SoakReport is what a soak measured.
type SoakReport struct {
	Started  time.Time    `json:"started"`
	Machine  MachineInfo  `json:"machine"`
	Rate     float64      `json:"rate_rps"`
	Load     *Result      `json:"load"`
	Samples  []SoakSample `json:"samples"`
	Checks   []SoakCheck  `json:"checks"`
	Problems []string     `json:"problems,omitempty"`
}

// Flat reports whether the soak found no growth and no problem.
func (r *SoakReport) Flat() bool {
	if len(r.Problems) > 0 || len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.Flat {
			return false
		}
	}
	return true
}

// MaxSoakGrowth is the growth from the first third of a soak to the last
// above which a metric is not flat.
const MaxSoakGrowth = 0.20

// soakFloors are growths too small to mean a leak whatever their share: a
// thread or two the Go runtime adds for a blocking syscall, a few
// descriptors of connections being replaced.
var soakFloors = map[string]float64{"rss_kib": 0, "threads": 2, "fds": 8, "goroutines": 16}

// SoakChecks compares the first third of the samples with the last third,
// metric by metric. It returns nil for fewer than 6 samples.
func SoakChecks(samples []SoakSample) []SoakCheck {
	if len(samples) < 6 {
		return nil
	}
	third := len(samples) / 3
	head, tail := samples[:third], samples[len(samples)-third:]
	metrics := []struct {
		name string
		get  func(SoakSample) int64
	}{
		{"rss_kib", func(s SoakSample) int64 { return s.RSSKiB }},
		{"threads", func(s SoakSample) int64 { return s.Threads }},
		{"goroutines", func(s SoakSample) int64 { return s.Goroutines }},
		{"fds", func(s SoakSample) int64 { return s.FDs }},
	}
	checks := make([]SoakCheck, 0, len(metrics))
	for _, m := range metrics {
		first, last := medianOf(head, m.get), medianOf(tail, m.get)
		c := SoakCheck{Metric: m.name, First: first, Last: last}
		if first > 0 {
			c.Growth = (last - first) / first
		}
		c.Flat = c.Growth <= MaxSoakGrowth || last-first <= soakFloors[m.name]
		checks = append(checks, c)
	}
	return checks
}

func medianOf(samples []SoakSample, get func(SoakSample) int64) float64 {
	vs := make([]int64, len(samples))
	for i, s := range samples {
		vs[i] = get(s)
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return float64(vs[n/2])
	}
	return float64(vs[n/2-1]+vs[n/2]) / 2
}

// WriteSoakResults writes soak.json and soak.md into dir.
func WriteSoakResults(dir string, r *SoakReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the soak report: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "soak.json"), append(js, '\n')); err != nil {
		return err
	}
	return writeWith(filepath.Join(dir, "soak.md"), func(w io.Writer) error { return WriteSoakMarkdown(w, r) })
}

// WriteSoakMarkdown summarizes a soak.
func WriteSoakMarkdown(w io.Writer, r *SoakReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Soak %s: open loop at %s req/s through mcpgw, %d samples of mcpgw's process (/proc: VmRSS, Threads, fd count; goroutines from the admin listener's goroutine profile).\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), thousands(r.Rate), len(r.Samples))
	if r.Load != nil {
		fmt.Fprintf(&b, "Load: %d requests, %d errors, %s req/s, p50 %s, p99 %s, p99.9 %s.\n\n", r.Load.Requests, r.Load.Errors,
			thousands(r.Load.Throughput), formatMicros(r.Load.Latency.P50), formatMicros(r.Load.Latency.P99), formatMicros(r.Load.Latency.P999))
	}
	b.WriteString("| metric | first third (median) | last third (median) | growth | flat (≤ 20%) |\n|---|---:|---:|---:|---|\n")
	for _, c := range r.Checks {
		verdict := "yes"
		if !c.Flat {
			verdict = "**NO**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %+.1f%% | %s |\n", c.Metric, thousands(c.First), thousands(c.Last), 100*c.Growth, verdict)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "\nProblem: %s\n", strings.ReplaceAll(p, "\n", " "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
