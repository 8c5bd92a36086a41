//go:build unix

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SoakOptions configures a soak (make soak): constant load through mcpgw
// while its memory, threads, descriptors and goroutines are sampled.
type SoakOptions struct {
	Bin     string // folder holding mcpgw and mcpgw-bench
	WorkDir string

	Duration    time.Duration // of the sampled load (default 2m)
	Interval    time.Duration // between samples (default Duration/30, 1s to 10s)
	Concurrency int           // connections (default 64)
	Payload     int           // tools/call argument bytes (default 2 KiB)
	// Rate is the open-loop arrival rate; 0 takes half of what mcpgw
	// reaches in a 5 s closed-loop probe.
	Rate float64

	Log io.Writer
}

// soakMaxSpool bounds the soak's audit spool (audit.max_spool, with
// when_full drop_oldest_shipped, and every record counts as shipped when
// nothing ships): at ~17k calls a second a 10-minute soak appends 15 GB or
// more, which mcpgw's default 10 GiB, reject, would refuse.
const soakMaxSpool = "2GiB"

// Soak starts the backend and mcpgw, applies constant open-loop load through
// mcpgw and samples its process every Interval.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = min(max(o.Duration/30, time.Second), 10*time.Second)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Payload <= 0 {
		o.Payload = 2 << 10
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	rep := &SoakReport{Started: time.Now(), Machine: ReadMachineInfo(ctx, "", "")}
	// The production default, sync audit, with the spool bounded
	// (soakMaxSpool) so that a long soak reaches the steady state of a
	// deployment that prunes, instead of a full spool refusing calls.
	st, err := startStack(ctx, stackOptions{
		bin: o.Bin, dir: o.WorkDir, tools: 100, listerTools: "tool_0000[0-9]", log: o.Log,
		gateways: []string{TargetMCPGWSync}, maxSpool: soakMaxSpool, whenFull: "drop_oldest_shipped",
	})
	if err != nil {
		return nil, err
	}
	defer st.stop()
	if err := st.verify(ctx, 100); err != nil {
		return nil, err
	}
	gw := st.gateways[0]
	url := gw.setup.Frontend()

	rep.Rate = o.Rate
	if rep.Rate <= 0 {
		probe, err := Run(ctx, LoadConfig{URL: url, Token: st.callerToken, Concurrency: o.Concurrency, Payload: o.Payload, Duration: 5 * time.Second, Warmup: time.Second})
		if err != nil {
			return nil, fmt.Errorf("bench: probing mcpgw's throughput: %w", err)
		}
		if p := MeasurementProblem(probe); p != "" {
			return nil, fmt.Errorf("bench: probing mcpgw's throughput: %s", p)
		}
		rep.Rate = probe.Throughput / 2
		fmt.Fprintf(o.Log, "probe: mcpgw reaches %s req/s closed loop; soaking at %s req/s\n", thousands(probe.Throughput), thousands(rep.Rate))
	}

	pid := gw.proc.Pid()
	var (
		mu      sync.Mutex // guards samples
		samples []SoakSample
	)
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	const warmup = 10 * time.Second
	go func() {
		defer wg.Done()
		// Sample the measured load only, not its warm-up.
		select {
		case <-sctx.Done():
			return
		case <-time.After(warmup):
		}
		start := time.Now()
		tick := time.NewTicker(o.Interval)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			s, err := sampleProcess(pid)
			if err != nil {
				continue // the process is gone; st.alive reports it
			}
			if s.Goroutines, err = st.goroutines(sctx); err != nil {
				fmt.Fprintf(o.Log, "  cannot count goroutines: %v\n", err)
				continue
			}
			s.At = time.Since(start)
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			fmt.Fprintf(o.Log, "  %6s  rss %7.1f MiB  threads %3d  fds %4d  goroutines %5d\n", s.At.Round(time.Second), float64(s.RSSKiB)/1024, s.Threads, s.FDs, s.Goroutines)
		}
	}()
	res, err := Run(ctx, LoadConfig{
		URL: url, Token: st.callerToken, Concurrency: o.Concurrency, Payload: o.Payload,
		Rate: rep.Rate, Duration: o.Duration, Warmup: warmup,
	})
	stopSampling()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.Samples = samples
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	} else {
		rep.Load = res
		if p := MeasurementProblem(res); p != "" {
			rep.Problems = append(rep.Problems, p)
		}
	}
	if err := st.alive(); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.Checks = SoakChecks(samples)
	if len(rep.Checks) == 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("only %d samples: too few to tell a trend", len(samples)))
	}
	return rep, nil
}

// goroutines reads the number of goroutines from the first line of the
// admin listener's goroutine profile ("goroutine profile: total N"), with
// the admin token mcpgw generated under its data_dir.
func (st *stack) goroutines(ctx context.Context) (int64, error) {
	tok, err := os.ReadFile(filepath.Join(st.gateways[0].setup.Dir, "data", "admin.token"))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+st.gateways[0].setup.Admin+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("goroutine profile: HTTP %d", resp.StatusCode)
	}
	n, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok || err != nil {
		return 0, fmt.Errorf("goroutine profile: unexpected first line %q", line)
	}
	return strconv.ParseInt(n, 10, 64)
}

// sampleProcess reads VmRSS and Threads from /proc/PID/status and counts
// /proc/PID/fd.
func sampleProcess(pid int) (SoakSample, error) {
	var s SoakSample
	dir := "/proc/" + strconv.Itoa(pid)
	f, err := os.Open(dir + "/status")
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSSKiB = n // "VmRSS:	  12345 kB"
		case "Threads":
			s.Threads = n
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return s, err
	}
	s.FDs = int64(len(fds))
	return s, nil
}
