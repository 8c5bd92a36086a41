package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The targets a comparison run measures, in the order each round drives
// them (rotated by one per round). There are two mcpgw instances, alike but
// for audit.durability (DESIGN.md section 8); both record full arguments.
const (
	TargetDirect     = "direct"
	TargetNginx      = "nginx"
	TargetMCPGWSync  = "mcpgw-sync"  // audit durability sync: fsynced before forwarding
	TargetMCPGWAsync = "mcpgw-async" // audit durability async: appended without waiting
)

// CompareTargets lists the targets of a comparison run.
var CompareTargets = []string{TargetDirect, TargetNginx, TargetMCPGWSync, TargetMCPGWAsync}

// GatewayTargets are the mcpgw targets of a comparison run, in
// CompareTargets order.
var GatewayTargets = []string{TargetMCPGWSync, TargetMCPGWAsync}

// GatewayDurability returns the audit.durability of a gateway target, or ""
// for a target that is not mcpgw.
func GatewayDurability(target string) string {
	switch target {
	case TargetMCPGWSync:
		return "sync"
	case TargetMCPGWAsync:
		return "async"
	}
	return ""
}

// ReportFormat is CompareReport.Format: 2 since mcpgw is measured in both
// audit modes. Format 1 (the field absent) had one target "mcpgw" and its
// ratios in each scenario's mcpgw_over_nginx and mcpgw_over_direct.
const ReportFormat = 2

// MaxErrorRate is the share of failed requests above which a measurement
// counts as broken rather than slow: make bench then fails.
const MaxErrorRate = 0.001

// CompareReport is what make bench writes to bench/results/latest.json.
type CompareReport struct {
	Format    int              `json:"format"` // ReportFormat
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Machine   MachineInfo      `json:"machine"`
	Settings  CompareSettings  `json:"settings"`
	Scenarios []ScenarioReport `json:"scenarios"`
	// Streams is the idle-streams scenario, when run.
	Streams *StreamsReport `json:"streams,omitempty"`
	Targets []TargetCheck  `json:"targets"`
	// Problems are what broke the run (a process that did not start or
	// died, a measurement with too many errors); make bench fails on any.
	Problems []string `json:"problems,omitempty"`
}

// MachineInfo describes where a run happened. Load averages are
// /proc/loadavg's first three fields (1, 5, 15 minutes).
type MachineInfo struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	Nginx      string `json:"nginx_version,omitempty"`
	Commit     string `json:"mcpgw_commit,omitempty"`
	LoadBefore string `json:"load_average_before"`
	LoadAfter  string `json:"load_average_after"`
	// OtherCPUBefore is how many cores' worth of CPU other processes used
	// just before the first measurement (after waiting for a quiet machine).
	OtherCPUBefore float64 `json:"other_cpu_cores_before"`
}

// CompareSettings are the knobs of a comparison run.
type CompareSettings struct {
	Rounds      int    `json:"rounds"`
	Duration    string `json:"duration"` // of each measurement
	Warmup      string `json:"warmup"`   // unrecorded load before each measurement
	Concurrency int    `json:"concurrency"`
	Payload     int    `json:"payload_bytes"`
	Tools       int    `json:"backend_tools"`
}

// ScenarioReport is one scenario measured against every target.
type ScenarioReport struct {
	ID      string       `json:"id"`
	Title   string       `json:"title"`
	Load    LoadSummary  `json:"load"`
	Targets []TargetRuns `json:"targets"`
	// Ratios holds, per mcpgw target measured, its median over nginx's and
	// over direct's, in CompareTargets order.
	Ratios []GatewayRatios `json:"ratios"`
	// Saturated lists the targets that, in an open loop, answered less
	// than MinOpenLoopShare of the offered rate: their latency is mostly
	// time spent queued.
	Saturated []string `json:"saturated,omitempty"`
}

// MinOpenLoopShare is the share of an open loop's offered rate a target
// must answer to count as keeping up.
const MinOpenLoopShare = 0.95

// LoadSummary is the load a scenario applied (LoadConfig without its
// callbacks and secrets).
type LoadSummary struct {
	Method         string  `json:"method"`
	Concurrency    int     `json:"concurrency"`
	Rate           float64 `json:"rate_rps,omitempty"` // 0: closed loop
	Payload        int     `json:"payload_bytes,omitempty"`
	ProgressEvents int     `json:"progress_events,omitempty"`
	Caller         string  `json:"caller"` // what the policy lets the caller see or call
}

// OpenLoop reports whether the load ran at a fixed arrival rate.
func (l LoadSummary) OpenLoop() bool { return l.Rate > 0 }

// TargetRuns is every round of one scenario against one target and the
// round chosen as its median.
type TargetRuns struct {
	Target string `json:"target"`
	// Median is the round whose key metric (throughput in a closed loop,
	// p99 in an open loop) is the median of the rounds; reporting one real
	// round keeps its percentiles consistent with each other.
	Median      *Result   `json:"median,omitempty"`
	MedianRound int       `json:"median_round,omitempty"` // Median's place in Rounds, from 1
	Rounds      []*Result `json:"rounds"`
	// OtherCPU is, per round, how many cores' worth of CPU processes
	// other than the runner, backend, nginx and mcpgw used meanwhile.
	OtherCPU []float64 `json:"other_cpu_cores"`
	Error    string    `json:"error,omitempty"`
}

// MaxOtherCPU is the CPU (in cores) other processes may use during a
// measurement before the report warns that the machine was not quiet.
const MaxOtherCPU = 0.2

// GatewayRatios are one mcpgw target's ratios in a scenario.
type GatewayRatios struct {
	Target     string `json:"target"`
	OverNginx  Ratios `json:"over_nginx"`
	OverDirect Ratios `json:"over_direct"`
}

// Ratios are mcpgw's figures divided by another target's; 0 where the
// divisor was 0.
type Ratios struct {
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50"`
	P90        float64 `json:"p90"`
	P99        float64 `json:"p99"`
	P999       float64 `json:"p999"`
}

// TargetCheck is one of the issues' targets evaluated on a run.
type TargetCheck struct {
	Scenario string `json:"scenario"`
	// Target is the mcpgw target judged ("" for the streams scenario,
	// which runs an mcpgw of its own).
	Target  string  `json:"target,omitempty"`
	Issues  string  `json:"issues"` // the issues that set the target, e.g. "3, 5"
	Goal    string  `json:"goal"`
	Ratio   float64 `json:"ratio"`
	Verdict string  `json:"verdict"` // PASS, FAIL, or ERROR when the scenario did not measure
	// Measured, when set, is what the markdown shows instead of Ratio.
	Measured string `json:"measured,omitempty"`
	Note     string `json:"note,omitempty"`
}

// IssueTarget is a bound on a ratio of one mcpgw target to nginx in one
// scenario.
type IssueTarget struct {
	Scenario string
	Gateway  string // TargetMCPGWSync or TargetMCPGWAsync
	Issues   string // the issues that set it
	Metric   string // "throughput" or "p99"
	AtLeast  bool   // the ratio must be ≥ Limit (else ≤ Limit)
	Limit    float64
}

// Goal says the target in words.
func (t IssueTarget) Goal() string {
	op := "≤"
	if t.AtLeast {
		op = "≥"
	}
	return fmt.Sprintf("%s %s %s %.1fx nginx", t.Gateway, t.Metric, op, t.Limit)
}

// IssueTargets are the speed targets: issue 3's (step 2, when mcpgw wrote
// no audit log) and issue 4's are judged on mcpgw-async, the closest to that
// gateway; issue 5 (step 4, audit) asks for s1 at 1.0x nginx with async
// audit, the same check as issue 3's, and at 0.8x with sync audit.
var IssueTargets = []IssueTarget{
	{Scenario: "s1", Gateway: TargetMCPGWAsync, Issues: "3, 5", Metric: "throughput", AtLeast: true, Limit: 1.0},
	{Scenario: "s1", Gateway: TargetMCPGWSync, Issues: "5", Metric: "throughput", AtLeast: true, Limit: 0.8},
	{Scenario: "s1o", Gateway: TargetMCPGWAsync, Issues: "4", Metric: "throughput", AtLeast: true, Limit: 1.0},
	{Scenario: "s2", Gateway: TargetMCPGWAsync, Issues: "3", Metric: "p99", AtLeast: false, Limit: 1.5},
	{Scenario: "s3", Gateway: TargetMCPGWAsync, Issues: "3", Metric: "throughput", AtLeast: true, Limit: 0.8},
}

// EvaluateTargets checks each issue target against the scenarios measured;
// a target whose scenario was not run is left out.
func EvaluateTargets(targets []IssueTarget, scenarios []ScenarioReport) []TargetCheck {
	var out []TargetCheck
	for _, t := range targets {
		var sc *ScenarioReport
		for i := range scenarios {
			if scenarios[i].ID == t.Scenario {
				sc = &scenarios[i]
			}
		}
		if sc == nil {
			continue
		}
		c := TargetCheck{Scenario: t.Scenario, Target: t.Gateway, Issues: t.Issues, Goal: t.Goal(), Verdict: "ERROR"}
		r := sc.ratios(t.Gateway)
		if r == nil || !sc.measured(t.Gateway) || !sc.measured(TargetNginx) {
			out = append(out, c)
			continue
		}
		switch t.Metric {
		case "throughput":
			c.Ratio = r.OverNginx.Throughput
		case "p99":
			c.Ratio = r.OverNginx.P99
		default:
			panic("BUG: unknown target metric " + t.Metric)
		}
		pass := c.Ratio <= t.Limit
		if t.AtLeast {
			pass = c.Ratio >= t.Limit
		}
		c.Verdict = "FAIL"
		if pass && c.Ratio > 0 {
			c.Verdict = "PASS"
		}
		if slices.Contains(sc.Saturated, TargetNginx) {
			c.Note = "nginx did not keep up with the offered rate, so this compares queues; rerun on a quiet machine"
		}
		out = append(out, c)
	}
	return out
}

// findScenario returns the scenario with id, or nil.
func findScenario(ss []ScenarioReport, id string) *ScenarioReport {
	for i := range ss {
		if ss[i].ID == id {
			return &ss[i]
		}
	}
	return nil
}

// runs returns the target's runs, or nil.
func (s *ScenarioReport) runs(target string) *TargetRuns {
	for i := range s.Targets {
		if s.Targets[i].Target == target {
			return &s.Targets[i]
		}
	}
	return nil
}

// ratios returns the ratios of a gateway target, or nil when the scenario
// did not measure it.
func (s *ScenarioReport) ratios(target string) *GatewayRatios {
	for i := range s.Ratios {
		if s.Ratios[i].Target == target {
			return &s.Ratios[i]
		}
	}
	return nil
}

// measured reports whether target has a usable median.
func (s *ScenarioReport) measured(target string) bool {
	r := s.runs(target)
	return r != nil && r.Error == "" && r.Median != nil
}

// Summarize picks each target's median round and computes the ratios of
// each mcpgw target measured.
func (s *ScenarioReport) Summarize() {
	key := func(r *Result) float64 { return r.Throughput }
	if s.Load.OpenLoop() {
		key = func(r *Result) float64 { return r.Latency.P99 }
	}
	for i := range s.Targets {
		t := &s.Targets[i]
		t.Median, t.MedianRound = nil, 0
		if t.Error == "" && len(t.Rounds) > 0 {
			i := MedianIndex(t.Rounds, key)
			t.Median, t.MedianRound = t.Rounds[i], i+1
		}
	}
	s.Saturated = nil
	for _, t := range s.Targets {
		if s.Load.OpenLoop() && t.Median != nil && t.Median.Throughput < MinOpenLoopShare*s.Load.Rate {
			s.Saturated = append(s.Saturated, t.Target)
		}
	}
	s.Ratios = nil
	for _, t := range s.Targets {
		if GatewayDurability(t.Target) == "" || !s.measured(t.Target) {
			continue
		}
		r := GatewayRatios{Target: t.Target}
		if s.measured(TargetNginx) {
			r.OverNginx = RatiosOf(t.Median, s.runs(TargetNginx).Median)
		}
		if s.measured(TargetDirect) {
			r.OverDirect = RatiosOf(t.Median, s.runs(TargetDirect).Median)
		}
		s.Ratios = append(s.Ratios, r)
	}
}

// MedianIndex returns the index of the element of rs whose key is the
// median (the lower of the two middle ones for an even count). rs must not
// be empty.
func MedianIndex(rs []*Result, key func(*Result) float64) int {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return key(rs[idx[a]]) < key(rs[idx[b]]) })
	return idx[(len(idx)-1)/2]
}

// RatiosOf divides a's figures by b's.
func RatiosOf(a, b *Result) Ratios {
	return Ratios{
		Throughput: ratio(a.Throughput, b.Throughput),
		P50:        ratio(a.Latency.P50, b.Latency.P50),
		P90:        ratio(a.Latency.P90, b.Latency.P90),
		P99:        ratio(a.Latency.P99, b.Latency.P99),
		P999:       ratio(a.Latency.P999, b.Latency.P999),
	}
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// MeasurementProblem says why a load run's result cannot be used, or ""
// when it can: no requests at all, or more than MaxErrorRate of them
// failed.
func MeasurementProblem(r *Result) string {
	total := r.Requests
	if total <= 0 {
		return fmt.Sprintf("no requests completed (%d errors%s)", r.Errors, errorKinds(r))
	}
	if rate := float64(r.Errors) / float64(total); rate > MaxErrorRate {
		return fmt.Sprintf("%d of %d requests failed (%.2f%%, limit %.1f%%)%s",
			r.Errors, total, 100*rate, 100*MaxErrorRate, errorKinds(r))
	}
	return ""
}

func errorKinds(r *Result) string {
	if len(r.ErrorKinds) == 0 {
		return ""
	}
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k, n := range r.ErrorKinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	return ": " + strings.Join(kinds, ", ")
}

// WriteMarkdown writes the report as markdown: the machine, one table per
// scenario with mcpgw's ratios, and the targets with their verdicts.
func WriteMarkdown(w io.Writer, r *CompareReport) error {
	var b strings.Builder
	m := r.Machine
	if len(r.Scenarios) > 0 {
		fmt.Fprintf(&b, "Run %s, %d rounds of %s per target and scenario (after %s warm-up each), interleaved; each figure is the median round.\n\n",
			r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Settings.Rounds, r.Settings.Duration, r.Settings.Warmup)
	} else {
		fmt.Fprintf(&b, "Run %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	}
	fmt.Fprintf(&b, "Machine: %s, %d cores, Linux %s, %s, %s, mcpgw %s; load average before %s, after %s; other processes used %.2f cores just before the first measurement.\n\n",
		orUnknown(m.CPU), m.Cores, orUnknown(m.Kernel), m.GoVersion, orUnknown(m.Nginx), orUnknown(m.Commit), m.LoadBefore, m.LoadAfter, m.OtherCPUBefore)
	for i := range r.Scenarios {
		writeScenarioTable(&b, &r.Scenarios[i])
	}
	if r.Streams != nil {
		writeStreamsTable(&b, r.Streams)
	}
	if len(r.Targets) > 0 {
		b.WriteString("### Targets\n\n")
		b.WriteString("| scenario | target | issue | measured | verdict |\n|---|---|---|---:|---|\n")
		for _, t := range r.Targets {
			measured := "—"
			switch {
			case t.Measured != "":
				measured = t.Measured
			case t.Verdict != "ERROR":
				measured = formatRatio(t.Ratio)
			}
			verdict := "**" + t.Verdict + "**"
			if t.Note != "" {
				verdict += " (" + t.Note + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.Scenario, t.Goal, t.Issues, measured, verdict)
		}
		b.WriteString("\n")
	}
	if len(r.Problems) > 0 {
		b.WriteString("### Problems\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(p, "\n", " "))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeScenarioTable(b *strings.Builder, s *ScenarioReport) {
	fmt.Fprintf(b, "### %s: %s\n\n", strings.ToUpper(s.ID[:1])+s.ID[1:], s.Title)
	b.WriteString("| target | req/s | p50 | p90 | p99 | p99.9 | max | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range s.Targets {
		if t.Median == nil {
			fmt.Fprintf(b, "| %s | error: %s |  |  |  |  |  |  |\n", t.Target, strings.ReplaceAll(t.Error, "|", "/"))
			continue
		}
		r := t.Median
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %d |\n", t.Target,
			thousands(r.Throughput), formatMicros(r.Latency.P50), formatMicros(r.Latency.P90),
			formatMicros(r.Latency.P99), formatMicros(r.Latency.P999), formatMicros(r.Latency.Max), r.Errors)
	}
	ratioRow := func(name string, r Ratios) {
		if r == (Ratios{}) {
			return
		}
		fmt.Fprintf(b, "| *%s* | %s | %s | %s | %s | %s |  |  |\n", name,
			formatRatio(r.Throughput), formatRatio(r.P50), formatRatio(r.P90),
			formatRatio(r.P99), formatRatio(r.P999))
	}
	for _, g := range s.Ratios {
		ratioRow(g.Target+" / nginx", g.OverNginx)
	}
	for _, g := range s.Ratios {
		ratioRow(g.Target+" / direct", g.OverDirect)
	}
	b.WriteString("\n")
	if worst, inMedians := otherCPUWorst(s); worst > MaxOtherCPU {
		fmt.Fprintf(b, "Other processes used up to %.2f cores during a round of this scenario, at most %.2f during the median rounds reported", worst, inMedians)
		if inMedians > MaxOtherCPU {
			b.WriteString(": the machine was not quiet, so compare with care")
		}
		b.WriteString(".\n\n")
	}
	if len(s.Saturated) > 0 {
		fmt.Fprintf(b, "Did not keep up with the offered %s req/s (answered less than %.0f%% of it; their latency is mostly queueing): %s.\n\n",
			thousands(s.Load.Rate), 100*MinOpenLoopShare, strings.Join(s.Saturated, ", "))
	}
}

// otherCPUWorst returns the most CPU other processes used during any round
// of s and during its median rounds.
func otherCPUWorst(s *ScenarioReport) (anyRound, medianRounds float64) {
	for _, t := range s.Targets {
		for i, c := range t.OtherCPU {
			anyRound = max(anyRound, c)
			if i+1 == t.MedianRound {
				medianRounds = max(medianRounds, c)
			}
		}
	}
	return anyRound, medianRounds
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func formatRatio(r float64) string { return strconv.FormatFloat(r, 'f', 2, 64) + "x" }

// thousands writes n rounded to an integer with thousands separators.
func thousands(n float64) string {
	s := strconv.FormatInt(int64(math.Round(n)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
