package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults of LoadConfig.
const (
	DefaultTool            = "echo"
	DefaultPayload         = 2 << 10
	DefaultProtocolVersion = latestLegacyVersion
	DefaultTimeout         = 30 * time.Second
)

// connectBackoff is how long a worker waits after a connection error, so
// that an unreachable target is not hammered in a tight loop.
const connectBackoff = 10 * time.Millisecond

// Run drives load against cfg.URL as LoadConfig describes and returns what
// it measured. It returns an error, and no Result, when cfg is invalid
// (every problem at once), when a session cannot be initialized (the target
// is unreachable or not an MCP endpoint) or when ctx ends before the
// measured part is over.
//
// Each of cfg.Concurrency workers owns a client session and at most one
// request in flight, so fasthttp's HostClient with MaxConns = Concurrency
// keeps one keep-alive connection per worker. Result.Requests counts every
// measured request that ended, Errors those that failed; Throughput and the
// latency percentiles cover the successful ones only, so that fast failures
// never flatter a target.
func Run(ctx context.Context, cfg LoadConfig) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	hc, err := newHostClient(&cfg)
	if err != nil {
		return nil, err
	}
	defer hc.CloseIdleConnections()
	shape := newRequestShape(&cfg)
	mix := newMixPicker(cfg.Mix)
	ws := make([]*worker, cfg.Concurrency)
	for i := range ws {
		ws[i] = newWorker(newConn(hc, shape), mix, uint64(i))
	}
	defer func() {
		for _, w := range ws {
			w.c.release()
		}
	}()
	if err := eachWorker(ws, func(w *worker) error { return w.c.initialize() }); err != nil {
		return nil, fmt.Errorf("cannot initialize sessions with %s: %w", cfg.URL, err)
	}
	defer func() { _ = eachWorker(ws, func(w *worker) error { w.c.close(); return nil }) }()

	interval := 0.0
	if cfg.Rate > 0 {
		interval = float64(time.Second) / cfg.Rate
	}
	if cfg.Warmup > 0 {
		start := time.Now()
		runPhase(ctx, ws, &phase{start: start, end: start.Add(cfg.Warmup), interval: interval}, nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ph := &phase{start: time.Now(), limit: cfg.Requests, interval: interval, record: true}
	if cfg.Duration > 0 {
		ph.end = ph.start.Add(cfg.Duration)
	}
	col := runPhase(ctx, ws, ph, cfg.Progress)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{
		Target:         cfg.URL,
		Requests:       col.ok + col.failed,
		Errors:         col.failed,
		Elapsed:        col.elapsed,
		Latency:        col.total.Percentiles(),
		Histogram:      col.total.Buckets(),
		ProgressEvents: col.progress,
	}
	if len(col.errs) > 0 {
		res.ErrorKinds = col.errs
	}
	if s := col.elapsed.Seconds(); s > 0 {
		res.Throughput = float64(col.ok) / s
	}
	return res, nil
}

// normalize applies the defaults and reports every invalid field at once.
func (cfg *LoadConfig) normalize() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("bench: "+format, args...)) }
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url %q: want http:// or https:// with a host", cfg.URL)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Concurrency < 0 {
		bad("concurrency %d: want at least 1", cfg.Concurrency)
	}
	if cfg.Duration < 0 || cfg.Requests < 0 || (cfg.Duration == 0 && cfg.Requests == 0) {
		bad("duration %v, requests %d: want a positive duration or number of requests", cfg.Duration, cfg.Requests)
	}
	if cfg.Warmup < 0 {
		bad("warmup %v: want 0 or more", cfg.Warmup)
	}
	if cfg.Rate < 0 {
		bad("rate %v: want 0 (closed loop) or more", cfg.Rate)
	}
	if len(cfg.Mix) == 0 {
		cfg.Mix = []MixEntry{{Method: "tools/call", Weight: 1}}
	}
	if err := checkMix(cfg.Mix); err != nil {
		errs = append(errs, err)
	}
	if cfg.Tool == "" {
		cfg.Tool = DefaultTool
	}
	if cfg.Payload == 0 {
		cfg.Payload = DefaultPayload
	}
	if cfg.Payload < 0 {
		bad("payload %d: want 0 (default) or more bytes", cfg.Payload)
	}
	if cfg.ProgressEvents < 0 {
		bad("progress events %d: want 0 or more", cfg.ProgressEvents)
	}
	if cfg.ProtocolVersion == "" {
		cfg.ProtocolVersion = DefaultProtocolVersion
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		bad("timeout %v: want more than 0", cfg.Timeout)
	}
	return errors.Join(errs...)
}

func newHostClient(cfg *LoadConfig) (*fasthttp.HostClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cannot parse url: %w", err)
	}
	tlsOn := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if tlsOn {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return &fasthttp.HostClient{
		Addr:                   addr,
		IsTLS:                  tlsOn,
		TLSConfig:              &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: cfg.Insecure},
		Name:                   "mcpgw-bench",
		MaxConns:               cfg.Concurrency,
		MaxConnWaitTimeout:     cfg.Timeout,
		ReadTimeout:            cfg.Timeout,
		WriteTimeout:           cfg.Timeout,
		MaxIdleConnDuration:    time.Minute,
		MaxResponseBodySize:    64 << 20,
		DisablePathNormalizing: true,
	}, nil
}

// eachWorker runs fn for every worker concurrently and joins the errors of
// the first few that failed, with how many did.
func eachWorker(ws []*worker, fn func(*worker) error) error {
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { errs[i] = fn(w) })
	}
	wg.Wait()
	var failed []error
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
			if len(failed) < 3 {
				failed = append(failed, err)
			}
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d failed: %w", n, len(ws), errors.Join(failed...))
}

// phase is one stretch of load (the warmup or the measured run) that every
// worker runs.
type phase struct {
	start, end time.Time // end zero: no time bound
	limit      int64     // 0: no bound on the number of requests
	// interval is the time between two scheduled arrivals in nanoseconds
	// (open loop); 0 is a closed loop.
	interval float64
	record   bool
	issued   atomic.Int64 // requests taken by workers, counting from 1
}

// worker is one connection's loop. Its counters are guarded by mu because
// the collector drains them once a second while the worker runs.
type worker struct {
	c     *conn
	mix   *mixPicker
	rng   uint64
	timer *time.Timer

	mu       sync.Mutex // guards the fields below
	hist     Histogram
	ok       int64
	failed   int64
	progress int64
	errs     map[string]int64
}

func newWorker(c *conn, mix *mixPicker, seed uint64) *worker {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &worker{c: c, mix: mix, rng: seed*0x9E3779B97F4A7C15 + 1, timer: t, errs: make(map[string]int64)}
}

// sleep waits d or until ctx ends, reporting whether it waited d.
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	w.timer.Reset(d)
	select {
	case <-w.timer.C:
		return true
	case <-ctx.Done():
		w.timer.Stop()
		return false
	}
}

// run sends requests until the phase ends. In an open loop each request
// takes the next scheduled arrival time and its latency counts from there,
// whether or not the worker was free then: a stall shows as the latency of
// every request scheduled during it (no coordinated omission).
func (w *worker) run(ctx context.Context, ph *phase) {
	for ctx.Err() == nil {
		n := ph.issued.Add(1)
		if ph.limit > 0 && n > ph.limit {
			return
		}
		var intended time.Time
		if ph.interval > 0 {
			intended = ph.start.Add(time.Duration(float64(n-1) * ph.interval))
			if !ph.end.IsZero() && !intended.Before(ph.end) {
				return
			}
			if d := time.Until(intended); d > 0 && !w.sleep(ctx, d) {
				return
			}
		} else {
			intended = time.Now()
			if !ph.end.IsZero() && !intended.Before(ph.end) {
				return
			}
		}
		kind := w.c.call(w.mix.pick(&w.rng))
		latency := time.Since(intended).Microseconds()
		if ph.record {
			w.mu.Lock()
			if kind == "" {
				w.ok++
				w.hist.Record(latency)
			} else {
				w.failed++
				w.errs[kind]++
			}
			w.progress += int64(w.c.progress)
			w.mu.Unlock()
		}
		if kind == kindConnect && !w.sleep(ctx, connectBackoff) {
			return
		}
	}
}

// collector gathers what the workers recorded.
type collector struct {
	total, interval Histogram
	ok, failed      int64
	progress        int64
	errs            map[string]int64
	elapsed         time.Duration
}

// drain moves every worker's counts into col.interval and the counters.
func (col *collector) drain(ws []*worker) {
	for _, w := range ws {
		w.mu.Lock()
		col.interval.Merge(&w.hist)
		if w.hist.Count() > 0 {
			w.hist.Reset()
		}
		col.ok += w.ok
		col.failed += w.failed
		col.progress += w.progress
		w.ok, w.failed, w.progress = 0, 0, 0
		for k, n := range w.errs {
			col.errs[k] += n
		}
		clear(w.errs)
		w.mu.Unlock()
	}
}

// runPhase runs every worker through ph, calling progress about once a
// second when not nil, and returns what they recorded.
func runPhase(ctx context.Context, ws []*worker, ph *phase, progress func(string)) *collector {
	col := &collector{errs: make(map[string]int64)}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(ctx, ph) })
	}
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastDone := ph.start, int64(0)
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				col.drain(ws)
				done := col.ok + col.failed
				if progress != nil {
					rate := float64(done-lastDone) / now.Sub(last).Seconds()
					progress(fmt.Sprintf("%s req/s, p99 %s, errors %d",
						formatCount(rate), formatMicros(float64(col.interval.Quantile(0.99))), col.failed))
				}
				last, lastDone = now, done
				col.total.Merge(&col.interval)
				col.interval.Reset()
			}
		}
	}()
	wg.Wait()
	col.elapsed = time.Since(ph.start)
	close(stop)
	<-ticked
	col.drain(ws)
	col.total.Merge(&col.interval)
	return col
}

// mixPicker chooses a method by weight.
type mixPicker struct {
	methods []int
	cum     []uint64 // cumulative weights
}

func newMixPicker(mix []MixEntry) *mixPicker {
	p := &mixPicker{}
	var sum uint64
	for _, e := range mix {
		if e.Weight <= 0 {
			continue
		}
		sum += uint64(e.Weight)
		p.methods = append(p.methods, slices.Index(methodNames[:], e.Method))
		p.cum = append(p.cum, sum)
	}
	return p
}

// pick draws a method with the caller's random state (xorshift64*).
func (p *mixPicker) pick(state *uint64) int {
	if len(p.methods) == 1 {
		return p.methods[0]
	}
	x := *state
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*state = x
	r := (x * 0x2545F4914F6CDD1D) % p.cum[len(p.cum)-1]
	for i, c := range p.cum {
		if r < c {
			return p.methods[i]
		}
	}
	return p.methods[len(p.methods)-1]
}

// checkMix reports unknown methods, negative weights and an all-zero mix.
func checkMix(mix []MixEntry) error {
	var errs []error
	sum := 0
	for _, e := range mix {
		if !slices.Contains(methodNames[:], e.Method) {
			errs = append(errs, fmt.Errorf("bench: mix method %q: want one of %s", e.Method, strings.Join(methodNames[:], ", ")))
		}
		if e.Weight < 0 {
			errs = append(errs, fmt.Errorf("bench: mix weight %d of %s: want 0 or more", e.Weight, e.Method))
		}
		sum += max(e.Weight, 0)
	}
	if sum == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("bench: mix: want a positive weight"))
	}
	return errors.Join(errs...)
}

// ParseMix reads a request mix such as "tools/call=90,tools/list=10"; a
// method without "=weight" has weight 1. The methods are tools/call,
// tools/list, prompts/list, resources/list and ping.
func ParseMix(s string) ([]MixEntry, error) {
	var mix []MixEntry
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		method, weight, hasWeight := strings.Cut(item, "=")
		e := MixEntry{Method: strings.TrimSpace(method), Weight: 1}
		if hasWeight {
			w, err := strconv.Atoi(strings.TrimSpace(weight))
			if err != nil {
				errs = append(errs, fmt.Errorf("bench: mix %q: weight %q is not an integer", item, weight))
				continue
			}
			e.Weight = w
		}
		mix = append(mix, e)
	}
	if len(mix) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("bench: mix %q: want method=weight[,method=weight…]", s))
	}
	if len(errs) == 0 {
		if err := checkMix(mix); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return mix, nil
}

// ParseSize reads a size in bytes: a whole number with an optional unit B,
// KiB, MiB or GiB (powers of 1024) or kB, MB, GB (powers of 1000), such as
// "2KiB" or "512".
func ParseSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(t[:i])
	if err != nil {
		return 0, fmt.Errorf("bench: size %q: want a number of bytes such as 2KiB", s)
	}
	mult := 0
	switch strings.TrimSpace(t[i:]) {
	case "", "B":
		mult = 1
	case "KiB":
		mult = 1 << 10
	case "MiB":
		mult = 1 << 20
	case "GiB":
		mult = 1 << 30
	case "kB", "KB":
		mult = 1e3
	case "MB":
		mult = 1e6
	case "GB":
		mult = 1e9
	default:
		return 0, fmt.Errorf("bench: size %q: unknown unit %q (B, KiB, MiB, GiB, kB, MB, GB)", s, t[i:])
	}
	if n > (1<<31-1)/mult {
		return 0, fmt.Errorf("bench: size %q: too large", s)
	}
	return n * mult, nil
}

// formatCount writes a rate as 950, 12.3k or 1.05M.
func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// formatMicros writes a latency given in microseconds as 850µs, 1.20ms or
// 2.50s.
func formatMicros(us float64) string {
	switch {
	case us >= 1e6:
		return strconv.FormatFloat(us/1e6, 'f', 2, 64) + "s"
	case us >= 1e3:
		return strconv.FormatFloat(us/1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
}

// WriteText writes r as a short human-readable report.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Target != "" {
		fmt.Fprintf(&b, "target      %s\n", r.Target)
	}
	fmt.Fprintf(&b, "requests    %d in %s (%d errors)\n", r.Requests, r.Elapsed.Round(time.Millisecond), r.Errors)
	fmt.Fprintf(&b, "throughput  %.1f req/s\n", r.Throughput)
	l := r.Latency
	fmt.Fprintf(&b, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		formatMicros(l.P50), formatMicros(l.P90), formatMicros(l.P99), formatMicros(l.P999), formatMicros(l.Max))
	if r.ProgressEvents > 0 {
		fmt.Fprintf(&b, "progress    %d events\n", r.ProgressEvents)
	}
	if len(r.ErrorKinds) > 0 {
		kinds := make([]string, 0, len(r.ErrorKinds))
		for k := range r.ErrorKinds {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		b.WriteString("errors     ")
		for _, k := range kinds {
			fmt.Fprintf(&b, " %s %d", k, r.ErrorKinds[k])
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
