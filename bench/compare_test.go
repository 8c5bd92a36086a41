package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestNginxConfig(t *testing.T) {
	conf := NginxConfig(NginxSetup{Dir: "/tmp/run dir", Listen: "127.0.0.1:8081", Upstream: "127.0.0.1:9001"})
	for _, want := range []string{
		"daemon off;",
		"worker_processes auto;",
		`pid "/tmp/run dir/nginx.pid";`,
		`error_log "/tmp/run dir/nginx-error.log" warn;`,
		"server 127.0.0.1:9001;",
		"keepalive 128;",
		"listen 127.0.0.1:8081;",
		"proxy_pass http://mcp_backend;",
		"proxy_http_version 1.1;",
		`proxy_set_header Connection "";`,
		"proxy_buffering off;",
		"access_log off;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if open, closed := strings.Count(conf, "{"), strings.Count(conf, "}"); open != closed {
		t.Errorf("got %d { and %d }, want them balanced", open, closed)
	}
	// Every temp path nginx would otherwise create under /var/lib/nginx
	// is in the run's folder.
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+_temp_path) (.*);$`).FindAllStringSubmatch(conf, -1) {
		if !strings.HasPrefix(m[2], `"/tmp/run dir/`) {
			t.Errorf("%s is %s, want it in the run folder", m[1], m[2])
		}
	}
	if n := strings.Count(conf, "_temp_path"); n != 5 {
		t.Errorf("got %d temp paths, want 5", n)
	}
}

func TestNginxQuote(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:   `"/tmp/a"`,
		`/tmp/a"b`: `"/tmp/a\"b"`,
		`/tmp/a\b`: `"/tmp/a\\b"`,
	} {
		if got := nginxQuote(in); got != want {
			t.Errorf("nginxQuote(%q): got %s, want %s", in, got, want)
		}
	}
}

func TestGatewayConfigOAuth(t *testing.T) {
	s := GatewaySetup{
		Dir: "/tmp/run", Listen: "127.0.0.1:8082", Admin: "127.0.0.1:8083",
		Upstream: "http://127.0.0.1:9001/mcp", CallerToken: "caller-tok", ListerToken: "lister-tok",
		ListerTools: "tool_0", EnvFile: "/tmp/run/pingone.env", Issuer: "http://127.0.0.1:7000/oidc",
	}
	var got struct {
		Server struct {
			URL string `yaml:"url"`
		} `yaml:"server"`
		Identity struct {
			Mode    string `yaml:"mode"`
			EnvFile string `yaml:"env_file"`
			Issuer  string `yaml:"issuer"`
		} `yaml:"identity"`
	}
	if err := yaml.Unmarshal([]byte(GatewayConfig(s)), &got); err != nil {
		t.Fatal(err)
	}
	if got.Server.URL != "http://127.0.0.1:8082" || got.Identity.Mode != "broker" || got.Identity.EnvFile != s.EnvFile || got.Identity.Issuer != s.Issuer {
		t.Errorf("got %+v", got)
	}
	if strings.Contains(GatewayConfig(GatewaySetup{Listen: "x:1"}), "env_file") {
		t.Error("a setup without an env file names one")
	}
}

func TestGatewayConfig(t *testing.T) {
	s := GatewaySetup{
		Dir: "/tmp/run", Listen: "127.0.0.1:8082", Admin: "127.0.0.1:8083",
		Upstream: "http://127.0.0.1:9001/mcp", CallerToken: `caller-"tok"`, ListerToken: "lister-tok",
		ListerTools: "tool_000[0-9][0-9]", Durability: "async",
	}
	var got struct {
		Server struct {
			Listen  string                  `yaml:"listen"`
			Admin   struct{ Listen string } `yaml:"admin"`
			DataDir string                  `yaml:"data_dir"`
		} `yaml:"server"`
		Identity struct {
			DevUsers []struct {
				Token, User string
				Groups      []string
			} `yaml:"dev_users"`
		} `yaml:"identity"`
		Applications []struct {
			Name        string `yaml:"name"`
			FrontendURL string `yaml:"frontend_url"`
			UpstreamURL string `yaml:"upstream_url"`
			Rules       []struct {
				Name     string
				Subjects struct{ Groups []string }
				Tools    []string
			} `yaml:"rules"`
		} `yaml:"applications"`
		Audit struct {
			Dir, Durability, Arguments string
		} `yaml:"audit"`
	}
	dec := yaml.NewDecoder(strings.NewReader(GatewayConfig(s)))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding the config: %v\n%s", err, GatewayConfig(s))
	}
	if got.Server.Listen != s.Listen || got.Server.Admin.Listen != s.Admin || got.Server.DataDir != "/tmp/run/data" {
		t.Errorf("server: got %+v", got.Server)
	}
	if len(got.Identity.DevUsers) != 2 || got.Identity.DevUsers[0].Token != s.CallerToken || got.Identity.DevUsers[1].Token != s.ListerToken {
		t.Errorf("dev users: got %+v", got.Identity.DevUsers)
	}
	if len(got.Applications) != 1 {
		t.Fatalf("got %d applications, want 1", len(got.Applications))
	}
	app := got.Applications[0]
	if app.FrontendURL != "http://127.0.0.1:8082/mcp" || app.UpstreamURL != s.Upstream {
		t.Errorf("application: got %+v", app)
	}
	rules := map[string][]string{}
	for _, r := range app.Rules {
		rules[r.Subjects.Groups[0]] = r.Tools
	}
	if diff := cmp.Diff(map[string][]string{"callers": {"echo"}, "listers": {s.ListerTools}}, rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if got.Audit.Dir != "/tmp/run/audit" || got.Audit.Durability != "async" || got.Audit.Arguments != "full" {
		t.Errorf("audit: got %+v, want dir /tmp/run/audit, durability async, arguments full", got.Audit)
	}
}

func TestGatewayConfigAudit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup GatewaySetup
		want  map[string]string
	}{
		{"default durability", GatewaySetup{Dir: "/r"}, map[string]string{"dir": "/r/audit", "arguments": "full"}},
		{"sync", GatewaySetup{Dir: "/r", Durability: "sync"}, map[string]string{"dir": "/r/audit", "durability": "sync", "arguments": "full"}},
		{"bounded spool", GatewaySetup{Dir: "/r", Durability: "sync", MaxSpool: "2GiB", WhenFull: "drop_oldest_shipped"},
			map[string]string{"dir": "/r/audit", "durability": "sync", "arguments": "full", "max_spool": "2GiB", "when_full": "drop_oldest_shipped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				Audit map[string]string `yaml:"audit"`
			}
			if err := yaml.Unmarshal([]byte(GatewayConfig(tc.setup)), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.Audit); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGatewayDurability(t *testing.T) {
	for _, target := range CompareTargets {
		d := GatewayDurability(target)
		isGateway := slices.Contains(GatewayTargets, target)
		if isGateway != (d != "") || isGateway && "mcpgw-"+d != target {
			t.Errorf("GatewayDurability(%q): got %q", target, d)
		}
	}
}

func TestScenarioTargets(t *testing.T) {
	got := map[string][]string{}
	for _, sc := range compareScenarios {
		got[sc.id] = sc.targets()
	}
	all := []string{TargetDirect, TargetNginx, TargetMCPGWSync, TargetMCPGWAsync}
	want := map[string][]string{
		"s1": all, "s2": all, "s3": all, "s4": all,
		"s1o": {TargetDirect, TargetNginx, TargetMCPGWAsync},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("targets per scenario (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{TargetMCPGWAsync}, pickedGateways(map[string]bool{"s1o": true})); diff != "" {
		t.Errorf("gateways of s1o alone (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(GatewayTargets, pickedGateways(map[string]bool{"s1o": true, "s3": true})); diff != "" {
		t.Errorf("gateways of s1o and s3 (-want +got):\n%s", diff)
	}
}

// The default lister pattern must show exactly 100 of the backend's tools.
func TestListerPatternShowsHundred(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + DefaultListerTools + `)$`)
	n := 0
	for i := range 1000 {
		if re.MatchString(string(appendToolName(nil, i))) {
			n++
		}
	}
	if re.MatchString("echo") {
		n++
	}
	if n != 100 {
		t.Errorf("pattern %q matches %d of 1,001 tools, want 100", DefaultListerTools, n)
	}
}

func results(throughputs ...float64) []*Result {
	rs := make([]*Result, len(throughputs))
	for i, v := range throughputs {
		rs[i] = &Result{Throughput: v, Latency: Percentiles{P99: 1000 / v}}
	}
	return rs
}

func TestMedianIndex(t *testing.T) {
	tp := func(r *Result) float64 { return r.Throughput }
	for _, tc := range []struct {
		name string
		in   []float64
		want int
	}{
		{"one", []float64{5}, 0},
		{"odd", []float64{30, 10, 20}, 2},
		{"even takes the lower middle", []float64{40, 10, 30, 20}, 3},
		{"ties keep order", []float64{7, 7, 7}, 1},
		{"five", []float64{9, 1, 5, 3, 7}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MedianIndex(results(tc.in...), tp); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// scenarioWith builds a scenario whose targets each ran the given rounds.
func scenarioWith(id string, open bool, rounds map[string][]*Result) ScenarioReport {
	s := ScenarioReport{ID: id, Load: LoadSummary{Concurrency: 64}}
	if open {
		s.Load.Rate = 1000
	}
	for _, t := range CompareTargets {
		if _, ok := rounds[t]; ok || GatewayDurability(t) == "" {
			s.Targets = append(s.Targets, TargetRuns{Target: t, Rounds: rounds[t]})
		}
	}
	s.Summarize()
	return s
}

func TestSummarize(t *testing.T) {
	s := scenarioWith("s1", false, map[string][]*Result{
		TargetDirect:     results(100, 90, 110),
		TargetNginx:      results(50, 40, 45),
		TargetMCPGWSync:  results(30, 40, 36),
		TargetMCPGWAsync: results(60, 45, 50),
	})
	if got := s.runs(TargetNginx).Median.Throughput; got != 45 {
		t.Errorf("nginx median: got %v, want 45", got)
	}
	got := map[string][2]float64{}
	for _, r := range s.Ratios {
		got[r.Target] = [2]float64{r.OverNginx.Throughput, r.OverDirect.Throughput}
	}
	want := map[string][2]float64{TargetMCPGWSync: {36.0 / 45, 0.36}, TargetMCPGWAsync: {50.0 / 45, 0.5}}
	if diff := cmp.Diff(want, got, cmpApprox); diff != "" {
		t.Errorf("throughput ratios over nginx and direct (-want +got):\n%s", diff)
	}
	if len(s.Ratios) != 2 || s.Ratios[0].Target != TargetMCPGWSync {
		t.Errorf("ratios: got %+v, want sync then async", s.Ratios)
	}
	// Open loop: the median is by p99, which here falls as throughput rises.
	open := scenarioWith("s2", true, map[string][]*Result{
		TargetNginx:      {{Latency: Percentiles{P99: 300}}, {Latency: Percentiles{P99: 100}}, {Latency: Percentiles{P99: 200}}},
		TargetMCPGWAsync: {{Latency: Percentiles{P99: 250}}},
	})
	if len(open.Ratios) != 1 {
		t.Fatalf("open loop ratios: got %+v, want mcpgw-async's only", open.Ratios)
	}
	if got := open.Ratios[0].OverNginx.P99; got != 1.25 {
		t.Errorf("open loop mcpgw-async/nginx p99: got %v, want 1.25", got)
	}
	if open.Ratios[0].OverDirect != (Ratios{}) {
		t.Errorf("mcpgw-async/direct without direct runs: got %+v, want zero", open.Ratios[0].OverDirect)
	}
}

func TestEvaluateTargets(t *testing.T) {
	s1 := scenarioWith("s1", false, map[string][]*Result{
		TargetDirect: results(100), TargetNginx: results(50), TargetMCPGWSync: results(39), TargetMCPGWAsync: results(55),
	})
	s2 := scenarioWith("s2", true, map[string][]*Result{
		TargetDirect:     {{Throughput: 1000, Latency: Percentiles{P99: 100}}},
		TargetNginx:      {{Throughput: 1000, Latency: Percentiles{P99: 200}}},
		TargetMCPGWSync:  {{Throughput: 1000, Latency: Percentiles{P99: 400}}},
		TargetMCPGWAsync: {{Throughput: 1000, Latency: Percentiles{P99: 320}}},
	})
	s3 := scenarioWith("s3", false, map[string][]*Result{
		TargetDirect: results(10), TargetNginx: results(8), TargetMCPGWAsync: results(6.4),
	})
	saturated := scenarioWith("s2", true, map[string][]*Result{
		TargetDirect:     {{Throughput: 1000, Latency: Percentiles{P99: 100}}},
		TargetNginx:      {{Throughput: 900, Latency: Percentiles{P99: 200}}},
		TargetMCPGWAsync: {{Throughput: 990, Latency: Percentiles{P99: 250}}},
	})
	if diff := cmp.Diff([]string{TargetNginx}, saturated.Saturated); diff != "" {
		t.Errorf("saturated (-want +got):\n%s", diff)
	}
	broken := scenarioWith("s1", false, map[string][]*Result{
		TargetDirect: results(10), TargetNginx: results(8), TargetMCPGWSync: nil, TargetMCPGWAsync: results(8.8),
	})
	broken.runs(TargetMCPGWSync).Error = "mcpgw-sync exited"
	broken.Summarize()

	for _, tc := range []struct {
		name      string
		scenarios []ScenarioReport
		want      []TargetCheck
	}{
		{
			name:      "all measured",
			scenarios: []ScenarioReport{s1, s2, s3},
			want: []TargetCheck{
				{Scenario: "s1", Target: TargetMCPGWAsync, Issues: "3, 5", Goal: "mcpgw-async throughput ≥ 1.0x nginx", Ratio: 1.1, Verdict: "PASS"},
				{Scenario: "s1", Target: TargetMCPGWSync, Issues: "5", Goal: "mcpgw-sync throughput ≥ 0.8x nginx", Ratio: 0.78, Verdict: "FAIL"},
				{Scenario: "s2", Target: TargetMCPGWAsync, Issues: "3", Goal: "mcpgw-async p99 ≤ 1.5x nginx", Ratio: 1.6, Verdict: "FAIL"},
				{Scenario: "s3", Target: TargetMCPGWAsync, Issues: "3", Goal: "mcpgw-async throughput ≥ 0.8x nginx", Ratio: 0.8, Verdict: "PASS"},
			},
		},
		{
			name:      "a saturated nginx is noted",
			scenarios: []ScenarioReport{saturated},
			want: []TargetCheck{{Scenario: "s2", Target: TargetMCPGWAsync, Issues: "3", Goal: "mcpgw-async p99 ≤ 1.5x nginx", Ratio: 1.25, Verdict: "PASS",
				Note: "nginx did not keep up with the offered rate, so this compares queues; rerun on a quiet machine"}},
		},
		{
			name:      "a broken target is an error, a missing scenario is left out",
			scenarios: []ScenarioReport{broken},
			want: []TargetCheck{
				{Scenario: "s1", Target: TargetMCPGWAsync, Issues: "3, 5", Goal: "mcpgw-async throughput ≥ 1.0x nginx", Ratio: 1.1, Verdict: "PASS"},
				{Scenario: "s1", Target: TargetMCPGWSync, Issues: "5", Goal: "mcpgw-sync throughput ≥ 0.8x nginx", Verdict: "ERROR"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EvaluateTargets(IssueTargets, tc.scenarios)
			if diff := cmp.Diff(tc.want, got, cmpApprox); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// cmpApprox compares floats to 1e-9.
var cmpApprox = cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })

func TestMeasurementProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Result
		want string // a substring; "" means no problem
	}{
		{"clean", Result{Requests: 10000}, ""},
		{"at the limit", Result{Requests: 10000, Errors: 10}, ""},
		{"over the limit", Result{Requests: 10000, Errors: 11, ErrorKinds: map[string]int64{"http_502": 11}}, "11 of 10000 requests failed (0.11%, limit 0.1%): http_502=11"},
		{"nothing", Result{Errors: 3, ErrorKinds: map[string]int64{"connect": 3}}, "no requests completed (3 errors: connect=3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MeasurementProblem(&tc.r)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 43210.6: "43,211", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v): got %q, want %q", in, got, want)
		}
	}
}

func sampleReport() *CompareReport {
	hist := func(scale int64) [][2]int64 {
		var h [][2]int64
		for i := int64(1); i <= 60; i++ {
			h = append(h, [2]int64{i * scale * 50, 1000 / i})
		}
		return h
	}
	res := func(tp float64, scale int64) []*Result {
		return []*Result{{Requests: 1000, Throughput: tp, Latency: Percentiles{P50: 100 * float64(scale), P90: 400 * float64(scale), P99: 1500 * float64(scale), P999: 2800 * float64(scale), Max: 3000 * float64(scale)}, Histogram: hist(scale)}}
	}
	s1 := scenarioWith("s1", false, map[string][]*Result{
		TargetDirect: res(90000, 1), TargetNginx: res(45000, 2), TargetMCPGWSync: res(40500, 2), TargetMCPGWAsync: res(47000, 2),
	})
	s1.Title = "tools/call, 2 KiB arguments, 64 connections, closed loop"
	s2 := scenarioWith("s2", true, map[string][]*Result{
		TargetDirect: res(22500, 1), TargetNginx: res(22500, 2), TargetMCPGWSync: res(22500, 4), TargetMCPGWAsync: res(22500, 3),
	})
	s2.Title = "open loop <& \"quoted\">"
	s2.Load.Payload = 2048
	rep := &CompareReport{
		Started:   time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Settings:  CompareSettings{Rounds: 1, Duration: "10s", Warmup: "2s"},
		Scenarios: []ScenarioReport{s1, s2},
	}
	rep.Targets = EvaluateTargets(IssueTargets, rep.Scenarios)
	return rep
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| mcpgw-async | 47,000 | 200µs | 800µs | 3.00ms | 5.60ms | 6.00ms | 0 |",
		"| mcpgw-sync | 40,500 | 200µs |",
		"| *mcpgw-sync / nginx* | 0.90x | 1.00x | 1.00x | 1.00x | 1.00x |  |  |\n| *mcpgw-async / nginx* | 1.04x | 1.00x | 1.00x | 1.00x | 1.00x |",
		"| *mcpgw-async / direct* | 0.52x | 2.00x |",
		"| *mcpgw-sync / direct* | 0.45x | 2.00x |",
		"| scenario | target | issue | measured | verdict |",
		"| s1 | mcpgw-async throughput ≥ 1.0x nginx | 3, 5 | 1.04x | **PASS** |",
		"| s1 | mcpgw-sync throughput ≥ 0.8x nginx | 5 | 0.90x | **PASS** |",
		"| s2 | mcpgw-async p99 ≤ 1.5x nginx | 3 | 1.50x | **PASS** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table row has as many cells as its header.
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| target |") || strings.HasPrefix(line, "| mcpgw") || strings.HasPrefix(line, "| *") {
			if n := strings.Count(line, "|"); n != 9 {
				t.Errorf("row has %d bars, want 9: %s", n, line)
			}
		}
	}
}

func TestOtherCPUNote(t *testing.T) {
	s := scenarioWith("s1", false, map[string][]*Result{
		TargetDirect: results(100, 90, 110), TargetNginx: results(50, 40, 45), TargetMCPGWAsync: results(60, 45, 50),
	})
	for i := range s.Targets {
		s.Targets[i].OtherCPU = []float64{0, 0, 0}
	}
	note := func() string {
		var b strings.Builder
		writeScenarioTable(&b, &s)
		_, after, _ := strings.Cut(b.String(), "|\n\n")
		return strings.TrimSpace(after)
	}
	if got := note(); got != "" {
		t.Errorf("quiet rounds: got note %q, want none", got)
	}
	// The busy round is direct's second (90 req/s), not its median, the
	// first (100).
	s.Targets[0].OtherCPU[1] = 2.27
	if got, want := note(), "Other processes used up to 2.27 cores during a round of this scenario, at most 0.00 during the median rounds reported."; got != want {
		t.Errorf("busy non-median round: got %q, want %q", got, want)
	}
	s.Targets[0].OtherCPU[0], s.Targets[0].OtherCPU[1] = 0.5, 0
	if got := note(); !strings.HasSuffix(got, "at most 0.50 during the median rounds reported: the machine was not quiet, so compare with care.") {
		t.Errorf("busy median round: got %q", got)
	}
}

func TestPercentileCurve(t *testing.T) {
	// 1000 requests: 900 within 100 µs, 90 within 1 ms, 9 within 10 ms,
	// 1 within 100 ms.
	hist := [][2]int64{{10_000, 9}, {100, 900}, {100_000, 1}, {1000, 90}}
	curve := PercentileCurve(hist, 301)
	if len(curve) != 301 {
		t.Fatalf("got %d points, want 301", len(curve))
	}
	if curve[0][0] != PlotMinPercentile || math.Abs(curve[300][0]-PlotMaxPercentile) > 1e-9 {
		t.Errorf("curve spans %v to %v, want %v to %v", curve[0][0], curve[300][0], PlotMinPercentile, PlotMaxPercentile)
	}
	// at is the curve's value at the point nearest to percentile p.
	at := func(p float64) float64 {
		best := curve[0]
		for _, c := range curve {
			if math.Abs(c[0]-p) < math.Abs(best[0]-p) {
				best = c
			}
		}
		return best[1]
	}
	for p, want := range map[float64]float64{50: 100, 85: 100, 95: 1000, 98.5: 1000, 99.5: 10_000, 99.95: 100_000} {
		if got := at(p); got != want {
			t.Errorf("at p%v: got %v µs, want %v", p, got, want)
		}
	}
	for i := 1; i < len(curve); i++ {
		if curve[i][1] < curve[i-1][1] {
			t.Fatalf("curve falls at %v", curve[i][0])
		}
	}
	if PercentileCurve(nil, 10) != nil {
		t.Error("an empty histogram gave a curve")
	}
}

func TestLatencyTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
	}{
		{90, 12000, []float64{100, 200, 500, 1000, 2000, 5000, 10000}},
		{1400, 14000, []float64{2000, 5000, 10000}},
		{350, 1100, []float64{400, 500, 600, 700, 800, 900, 1000}},
	} {
		if diff := cmp.Diff(tc.want, latencyTicks(tc.lo, tc.hi), cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-6 })); diff != "" {
			t.Errorf("latencyTicks(%v, %v) (-want +got):\n%s", tc.lo, tc.hi, diff)
		}
	}
}

func TestWriteLatencySVG(t *testing.T) {
	var b bytes.Buffer
	if err := WriteLatencySVG(&b, ComparePanels(sampleReport())); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	dec.Strict = true
	counts := map[string]int{}
	var texts []string
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace: got %q", tok.Name.Space)
				}
			}
			counts[tok.Name.Local]++
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	if root != "svg" {
		t.Errorf("root element: got %q, want svg", root)
	}
	if counts["polyline"] != 8 {
		t.Errorf("got %d curves, want 8 (4 targets in 2 panels)", counts["polyline"])
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"50%", "99.99%", "nginx 45,000 req/s", "mcpgw-async 47,000 req/s", "mcpgw-sync 40,500 req/s", "direct", "latency (log scale)", "Scenario 2: tools/call 2 KiB, open loop at 1,000 req/s, 64 connections"} {
		if !strings.Contains(all, want) {
			t.Errorf("the plot lacks the text %q", want)
		}
	}
}

func TestJoinPairs(t *testing.T) {
	in := []byte("{\n  \"histogram\": [\n    [\n      31,\n      2\n    ],\n    [\n      -1,\n      40\n    ]\n  ],\n  \"rounds\": [\n    1,\n    2,\n    3\n  ]\n}")
	want := "{\n  \"histogram\": [\n    [31, 2],\n    [-1, 40]\n  ],\n  \"rounds\": [\n    1,\n    2,\n    3\n  ]\n}"
	got := joinPairs(in)
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var v any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Errorf("joined JSON does not parse: %v", err)
	}
}

func TestSoakChecks(t *testing.T) {
	flat := []SoakSample{}
	growing := []SoakSample{}
	for i := range 9 {
		flat = append(flat, SoakSample{RSSKiB: 30000 + int64(i%2)*500, Threads: 9 + int64(i%3), FDs: 140, Goroutines: 140 + int64(i%2)*10})
		growing = append(growing, SoakSample{RSSKiB: 30000 + int64(i)*3000, Threads: 9, FDs: 140 + int64(i)*20, Goroutines: 140 + int64(i)*30})
	}
	verdicts := func(cs []SoakCheck) map[string]bool {
		m := map[string]bool{}
		for _, c := range cs {
			m[c.Metric] = c.Flat
		}
		return m
	}
	if diff := cmp.Diff(map[string]bool{"rss_kib": true, "threads": true, "fds": true, "goroutines": true}, verdicts(SoakChecks(flat))); diff != "" {
		t.Errorf("flat samples (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"rss_kib": false, "threads": true, "fds": false, "goroutines": false}, verdicts(SoakChecks(growing))); diff != "" {
		t.Errorf("growing samples (-want +got):\n%s", diff)
	}
	if SoakChecks(flat[:5]) != nil {
		t.Error("5 samples gave a verdict")
	}
	r := &SoakReport{Checks: SoakChecks(flat)}
	if !r.Flat() {
		t.Error("a flat soak is not Flat")
	}
	r.Problems = []string{"mcpgw exited"}
	if r.Flat() {
		t.Error("a soak with a problem is Flat")
	}
}

func TestCPUTicks(t *testing.T) {
	total, ok := machineTicks("cpu  100 5 50 800 20 3 2 1 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if !ok || total != 981 {
		t.Errorf("machineTicks: got total %d, ok %v; want 981, true", total, ok)
	}
	if _, ok := machineTicks("intr 1 2 3"); ok {
		t.Error("machineTicks accepted a line that is not cpu")
	}
	for _, tc := range []struct {
		name, stat string
		want       int64
		ok         bool
	}{
		// The command name may hold spaces and parentheses.
		{"process", "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 37 12 3 1 20 0 9 0 100 0 0", 53, true},
		{"kernel thread", "15 (ksoftirqd/0) S 2 0 0 0 -1 69238848 0 0 0 0 0 310 0 0 20 0 1 0 9 0 0", 0, false},
		{"garbage", "garbage", 0, false},
	} {
		got, ok := processTicks(tc.stat)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// 1000 ticks passed over 2 cores (500 per core). Process 1 used 100
	// more, process 3 started and used 100, process 2 ended: the others
	// used 200 ticks, 0.4 cores.
	a := cpuSnapshot{total: 1000, others: map[int]int64{1: 50, 2: 500}, ok: true}
	b := cpuSnapshot{total: 2000, others: map[int]int64{1: 150, 3: 100}, ok: true}
	if got := otherCores(a, b, 2); math.Abs(got-0.4) > 1e-9 {
		t.Errorf("otherCores: got %v, want 0.4", got)
	}
	if got := otherCores(cpuSnapshot{}, b, 2); got != 0 {
		t.Errorf("otherCores without a first snapshot: got %v, want 0", got)
	}
}
