//go:build unix

package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// CompareOptions configures a comparison run (make bench).
type CompareOptions struct {
	Bin     string // folder holding mcpgw and mcpgw-bench
	Nginx   string // the nginx binary
	Root    string // module root, for the commit measured ("" to leave it out)
	WorkDir string // configs and logs of the processes started; created if missing

	Rounds      int           // measurements per scenario and target (default 3)
	Duration    time.Duration // of each measurement (default 10s)
	Warmup      time.Duration // unrecorded load before each (default 2s)
	Concurrency int           // connections (default 64)
	Payload     int           // tools/call argument bytes (default 2 KiB)
	Tools       int           // canned tools of the backend (default 1,000)
	// ListerTools is the whole-name pattern of the tools the scenario 3
	// caller may see (default DefaultListerTools).
	ListerTools string
	// Scenarios picks scenarios by id ("s1", "s1o", "s2" … "s4",
	// "streams"); empty runs
	// all. s2 needs s1 (its rate is half of nginx's s1 throughput) unless
	// Rate is set.
	Scenarios []string
	Rate      float64 // open-loop rate of s2 when s1 is not run
	// WaitQuiet bounds the wait, before the first measurement, for other
	// processes to use less than MaxOtherCPU (0: do not wait).
	WaitQuiet time.Duration

	// Streams is how many idle streams the streams scenario asks for
	// (default StreamsTarget; fewer when RLIMIT_NOFILE does not fit them).
	Streams int
	// StreamsSettle is how long the streams are held while mcpgw's RSS is
	// sampled every StreamsInterval (defaults 150s and 5s).
	StreamsSettle   time.Duration
	StreamsInterval time.Duration

	// IDP is the OpenID provider behind mcpgw's authorization server for
	// scenario s1o; without one, s1o cannot run.
	IDP IdentityProvider

	Log io.Writer // progress lines (default io.Discard)
}

func oauthProvider(o *CompareOptions, picked map[string]bool) IdentityProvider {
	if picked["s1o"] {
		return o.IDP
	}
	return nil
}

func (o *CompareOptions) defaults() {
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Payload <= 0 {
		o.Payload = 2 << 10
	}
	if o.Tools <= 0 {
		o.Tools = 1000
	}
	if o.ListerTools == "" {
		o.ListerTools = DefaultListerTools
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// A comparison scenario: how to build its load from the run's options.
type scenario struct {
	id      string
	summary func(o *CompareOptions, rate float64) LoadSummary
	load    func(o *CompareOptions, rate float64) LoadConfig
	lister  bool // uses the lister's token
	oauth   bool // mcpgw gets the caller's OAuth access token, not the dev token
	// asyncOnly measures only mcpgw-async of the two gateways: the
	// scenario is not about the audit log's cost.
	asyncOnly bool
}

// targets returns the targets a scenario measures, in CompareTargets
// order.
func (sc scenario) targets() []string {
	if !sc.asyncOnly {
		return CompareTargets
	}
	return []string{TargetDirect, TargetNginx, TargetMCPGWAsync}
}

var compareScenarios = []scenario{
	{
		id: "s1",
		summary: func(o *CompareOptions, _ float64) LoadSummary {
			return LoadSummary{Method: "tools/call", Concurrency: o.Concurrency, Payload: o.Payload, Caller: "may call echo"}
		},
		load: func(o *CompareOptions, _ float64) LoadConfig {
			return LoadConfig{Concurrency: o.Concurrency, Payload: o.Payload}
		},
	},
	{
		// s1 with the access token mcpgw's authorization server issued
		// (issue 4: the speed holds with OAuth tokens, a cached check per
		// request). Direct and nginx do not authenticate; they are s1's
		// again, measured beside it. The token check costs the same in
		// either audit mode, and s1 measures both.
		id:        "s1o",
		oauth:     true,
		asyncOnly: true,
		summary: func(o *CompareOptions, _ float64) LoadSummary {
			return LoadSummary{Method: "tools/call", Concurrency: o.Concurrency, Payload: o.Payload, Caller: "may call echo (OAuth access token)"}
		},
		load: func(o *CompareOptions, _ float64) LoadConfig {
			return LoadConfig{Concurrency: o.Concurrency, Payload: o.Payload}
		},
	},
	{
		id: "s2",
		summary: func(o *CompareOptions, rate float64) LoadSummary {
			return LoadSummary{Method: "tools/call", Concurrency: o.Concurrency, Rate: rate, Payload: o.Payload, Caller: "may call echo"}
		},
		load: func(o *CompareOptions, rate float64) LoadConfig {
			return LoadConfig{Concurrency: o.Concurrency, Payload: o.Payload, Rate: rate}
		},
	},
	{
		id:     "s3",
		lister: true,
		summary: func(o *CompareOptions, _ float64) LoadSummary {
			return LoadSummary{Method: "tools/list", Concurrency: o.Concurrency, Caller: "mcpgw shows " + o.ListerTools}
		},
		load: func(o *CompareOptions, _ float64) LoadConfig {
			return LoadConfig{Concurrency: o.Concurrency, Mix: []MixEntry{{Method: "tools/list", Weight: 1}}}
		},
	},
	{
		id: "s4",
		summary: func(o *CompareOptions, _ float64) LoadSummary {
			return LoadSummary{Method: "tools/call", Concurrency: o.Concurrency, Payload: o.Payload, ProgressEvents: 10, Caller: "may call echo"}
		},
		load: func(o *CompareOptions, _ float64) LoadConfig {
			return LoadConfig{Concurrency: o.Concurrency, Payload: o.Payload, ProgressEvents: 10}
		},
	},
}

// scenarioTitle describes a scenario's load for the tables.
func scenarioTitle(id string, l LoadSummary, tools int) string {
	switch id {
	case "s1":
		return fmt.Sprintf("tools/call, %s arguments, %d connections, closed loop", formatBytes(l.Payload), l.Concurrency)
	case "s1o":
		return fmt.Sprintf("tools/call, %s arguments, %d connections, closed loop; mcpgw authenticates an access token its authorization server issued (broker mode)", formatBytes(l.Payload), l.Concurrency)
	case "s2":
		return fmt.Sprintf("tools/call, %s arguments, open loop at %s req/s (half of nginx's s1 throughput), %d connections", formatBytes(l.Payload), thousands(l.Rate), l.Concurrency)
	case "s3":
		return fmt.Sprintf("tools/list of %d tools, %d connections, closed loop; mcpgw filters it to what its policy shows (%s), nginx and direct serve it whole", tools+1, l.Concurrency, l.Caller[len("mcpgw shows "):])
	case "s4":
		return fmt.Sprintf("tools/call answered as SSE with %d progress events, %s arguments, %d connections, closed loop", l.ProgressEvents, formatBytes(l.Payload), l.Concurrency)
	}
	return id
}

// Compare starts the mock backend, nginx and mcpgw, measures every scenario
// against the three, interleaved (each round drives direct, nginx and mcpgw
// in turn, the order rotated by one per round, so drift on the machine hits
// all alike), and returns the report. It returns an error only when it could
// not measure at all; a measurement that broke is recorded in the report's
// Problems and its scenario's targets are ERROR.
func Compare(ctx context.Context, o CompareOptions) (*CompareReport, error) {
	o.defaults()
	picked, err := pickScenarios(o.Scenarios)
	if err != nil {
		return nil, err
	}
	if picked["s1o"] && o.IDP == nil {
		return nil, errors.New("bench: scenario s1o needs an OpenID provider")
	}
	if picked["s2"] && !picked["s1"] && o.Rate <= 0 {
		return nil, errors.New("bench: scenario s2 needs s1 (for nginx's throughput) or a rate")
	}
	rep := &CompareReport{
		Started: time.Now(),
		Settings: CompareSettings{
			Rounds: o.Rounds, Duration: o.Duration.String(), Warmup: o.Warmup.String(),
			Concurrency: o.Concurrency, Payload: o.Payload, Tools: o.Tools,
		},
	}
	rep.Machine = ReadMachineInfo(ctx, o.Nginx, o.Root)

	loads := false
	for _, sc := range compareScenarios {
		loads = loads || picked[sc.id]
	}
	rep.Format = ReportFormat
	if loads {
		if err := compareLoads(ctx, &o, picked, rep); err != nil {
			return nil, err
		}
	}
	if picked[StreamsScenario] {
		sr, problems := measureStreams(ctx, &o)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Streams = sr
		rep.Problems = append(rep.Problems, problems...)
		rep.Targets = append(rep.Targets, StreamsCheck(sr))
	}
	rep.Machine.LoadAfter = LoadAverage()
	rep.Finished = time.Now()
	return rep, nil
}

// compareMaxSpool is the audit.max_spool of the compared gateways: a full
// make bench appends several GB to each spool (about 1.2–1.6 KB a tools/call
// with full 2 KiB arguments), near mcpgw's default of 10 GiB, at which it
// would refuse calls (when_full reject) and break the measurement. The
// free-disk check before each measurement (MinFreeDisk) bounds the spools
// instead; the limit costs nothing on the hot path either way (an atomic
// load).
const compareMaxSpool = "64GiB"

// compareLoads measures the load scenarios picked (s1 … s4) against every
// target on one stack, stopped before it returns.
func compareLoads(ctx context.Context, o *CompareOptions, picked map[string]bool, rep *CompareReport) error {
	st, err := startStack(ctx, stackOptions{
		bin: o.Bin, nginx: o.Nginx, dir: o.WorkDir, tools: o.Tools, listerTools: o.ListerTools, log: o.Log,
		gateways: pickedGateways(picked), idp: oauthProvider(o, picked),
		maxSpool: compareMaxSpool,
	})
	if err != nil {
		return err
	}
	defer st.stop()
	if err := st.verify(ctx, o.Tools); err != nil {
		return err
	}
	if o.WaitQuiet > 0 {
		fmt.Fprintf(o.Log, "waiting up to %s for other processes to use less than %.2f cores\n", o.WaitQuiet, MaxOtherCPU)
	}
	other, quiet := awaitQuiet(ctx, st.meter, rep.Machine.Cores, MaxOtherCPU, o.WaitQuiet)
	rep.Machine.OtherCPUBefore = other
	if !quiet && o.WaitQuiet > 0 {
		fmt.Fprintf(o.Log, "the machine is not quiet (other processes use %.2f cores); measuring anyway\n", other)
	}

	s2rate := o.Rate
	for _, sc := range compareScenarios {
		if !picked[sc.id] {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sc.id == "s2" && picked["s1"] {
			s2rate = 0
			if s1 := findScenario(rep.Scenarios, "s1"); s1 != nil && s1.measured(TargetNginx) {
				s2rate = s1.runs(TargetNginx).Median.Throughput / 2
			}
		}
		summary := sc.summary(o, s2rate)
		sr := ScenarioReport{ID: sc.id, Title: scenarioTitle(sc.id, summary, o.Tools), Load: summary}
		for _, t := range sc.targets() {
			sr.Targets = append(sr.Targets, TargetRuns{Target: t})
		}
		fmt.Fprintf(o.Log, "\n%s: %s\n", sc.id, sr.Title)
		if sc.id == "s2" && s2rate <= 0 {
			for i := range sr.Targets {
				sr.Targets[i].Error = "not run: nginx has no s1 throughput to take half of"
			}
			rep.Problems = append(rep.Problems, "s2: not run, for nginx has no s1 throughput")
		} else {
			rep.Problems = append(rep.Problems, st.measureScenario(ctx, o, sc, s2rate, &sr, rep.Machine.Cores)...)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sr.Summarize()
		rep.Scenarios = append(rep.Scenarios, sr)
		fmt.Fprintf(o.Log, "  %s\n", st.spoolSizes())
	}
	rep.Targets = EvaluateTargets(IssueTargets, rep.Scenarios)
	return nil
}

// pickedGateways returns the gateway targets the picked load scenarios
// measure, in GatewayTargets order.
func pickedGateways(picked map[string]bool) []string {
	need := make(map[string]bool)
	for _, sc := range compareScenarios {
		if !picked[sc.id] {
			continue
		}
		for _, t := range sc.targets() {
			need[t] = true
		}
	}
	var out []string
	for _, t := range GatewayTargets {
		if need[t] {
			out = append(out, t)
		}
	}
	return out
}

func pickScenarios(ids []string) (map[string]bool, error) {
	picked := make(map[string]bool)
	known := make(map[string]bool)
	for _, sc := range compareScenarios {
		known[sc.id] = true
	}
	known[StreamsScenario] = true
	if len(ids) == 0 {
		return known, nil
	}
	for _, id := range ids {
		if !known[id] {
			ids := make([]string, 0, len(compareScenarios)+1)
			for _, sc := range compareScenarios {
				ids = append(ids, sc.id)
			}
			return nil, fmt.Errorf("bench: no scenario %q (there are %s)", id, strings.Join(append(ids, StreamsScenario), ", "))
		}
		picked[id] = true
	}
	return picked, nil
}

// measureScenario runs the rounds of one scenario and fills sr's runs. It
// returns the problems met; a target whose measurement broke is not driven
// again. It stops, with a problem, when the disk holding the run folder
// has less than MinFreeDisk left, before the gateways' audit spools fill
// it.
func (st *stack) measureScenario(ctx context.Context, o *CompareOptions, sc scenario, rate float64, sr *ScenarioReport, cores int) []string {
	var problems []string
	for round := range o.Rounds {
		for k := range sr.Targets {
			ti := (k + round) % len(sr.Targets)
			tr := &sr.Targets[ti]
			if tr.Error != "" {
				continue
			}
			if free, err := freeDisk(st.dir); err != nil || free < MinFreeDisk {
				msg := fmt.Sprintf("%s: stopped before round %d: ", sc.id, round+1)
				if err != nil {
					msg += err.Error()
				} else {
					msg += fmt.Sprintf("%s free on the disk of %s, less than the %s the runner keeps (the audit spools grow by GBs)", formatSize(free), st.dir, formatSize(MinFreeDisk))
				}
				for i := range sr.Targets {
					if sr.Targets[i].Error == "" && len(sr.Targets[i].Rounds) < o.Rounds {
						sr.Targets[i].Error = "not measured: too little free disk"
					}
				}
				fmt.Fprintln(o.Log, "  "+msg)
				return append(problems, msg)
			}
			lc := sc.load(o, rate)
			lc.URL = st.url(tr.Target)
			lc.Token = st.callerToken
			if sc.lister {
				lc.Token = st.listerToken
			}
			if g := st.gateway(tr.Target); sc.oauth && g != nil {
				lc.Token = g.setup.OAuthToken
			}
			lc.Duration = o.Duration
			lc.Warmup = o.Warmup
			before := st.meter.snapshot()
			res, err := Run(ctx, lc)
			other := otherCores(before, st.meter.snapshot(), cores)
			if ctx.Err() != nil {
				return problems
			}
			problem := ""
			switch {
			case err != nil:
				problem = err.Error()
			default:
				res.Target = tr.Target
				problem = MeasurementProblem(res)
			}
			if err := st.alive(); err != nil {
				problem = err.Error()
			}
			if problem != "" {
				tr.Error = problem
				msg := fmt.Sprintf("%s %s round %d: %s", sc.id, tr.Target, round+1, problem)
				problems = append(problems, msg)
				fmt.Fprintln(o.Log, "  "+msg)
				continue
			}
			tr.Rounds = append(tr.Rounds, res)
			tr.OtherCPU = append(tr.OtherCPU, other)
			fmt.Fprintf(o.Log, "  round %d/%d  %-11s %9s req/s  p50 %-9s p99 %-9s p99.9 %-9s errors %d  other cpu %.2f\n",
				round+1, o.Rounds, tr.Target, thousands(res.Throughput), formatMicros(res.Latency.P50),
				formatMicros(res.Latency.P99), formatMicros(res.Latency.P999), res.Errors, other)
		}
	}
	return problems
}

// randomToken returns a fresh bearer token for a dev user.
func randomToken(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
