//go:build unix

package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// Defaults of the idle-streams scenario.
const (
	defaultStreamsSettle   = 150 * time.Second // past the runtime's forced GC (2 minutes)
	defaultStreamsInterval = 5 * time.Second
)

// measureStreams runs the idle-streams scenario on a stack of its own (the
// backend with --sessions and mcpgw, no nginx): it opens up to o.Streams
// streams through mcpgw, as many as mcpgw's descriptor limit allows (mcpgw
// inherits the runner's RLIMIT_NOFILE), holds them for o.StreamsSettle while
// sampling mcpgw's VmRSS, and reports the last sample. Its problems are
// streams that failed to open or were closed by the server while held, and
// processes that died.
func measureStreams(ctx context.Context, o *CompareOptions) (*StreamsReport, []string) {
	want := o.Streams
	if want <= 0 {
		want = StreamsTarget
	}
	settle, interval := o.StreamsSettle, o.StreamsInterval
	if settle <= 0 {
		settle = defaultStreamsSettle
	}
	if interval <= 0 {
		interval = defaultStreamsInterval
	}
	sr := &StreamsReport{Wanted: want}
	fail := func(format string, args ...any) (*StreamsReport, []string) {
		sr.Error = fmt.Sprintf(format, args...)
		return sr, []string{"streams: " + sr.Error}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fail("cannot read RLIMIT_NOFILE: %v", err)
	}
	sr.NoFile = uint64(lim.Cur)
	sr.Streams, sr.Capped = StreamsCount(sr.NoFile, want)
	sr.Title = fmt.Sprintf("%s idle SSE streams through mcpgw, each its own legacy session with a standalone GET stream, held %s", thousands(float64(sr.Streams)), settle)
	fmt.Fprintf(o.Log, "\nstreams: %s\n", sr.Title)
	if sr.Capped != "" {
		fmt.Fprintf(o.Log, "  %s\n", sr.Capped)
	}
	if sr.Streams <= 0 {
		return fail("no stream fits: %s", sr.Capped)
	}

	st, err := startStack(ctx, stackOptions{
		bin: o.Bin, dir: filepath.Join(o.WorkDir, "streams"), tools: 10, listerTools: "tool_0000[0-4]", sessions: true, log: o.Log,
		gateways: []string{TargetMCPGWSync}, // the production default; idle streams append no records
	})
	if err != nil {
		return fail("%v", err)
	}
	defer st.stop()
	gw := st.gateways[0]
	pid := gw.proc.Pid()

	// A moment for mcpgw to finish starting, then its RSS with no stream.
	select {
	case <-ctx.Done():
		return sr, nil
	case <-time.After(2 * time.Second):
	}
	base, err := sampleProcess(pid)
	if err != nil {
		return fail("cannot sample mcpgw: %v", err)
	}
	sr.BaseRSSKiB = base.RSSKiB

	hctx, release := context.WithCancel(ctx)
	defer release()
	heldc := make(chan StreamsResult, 1)
	type outcome struct {
		res *StreamsResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := HoldStreams(hctx, StreamsConfig{
			URL: gw.setup.Frontend(), Token: st.callerToken, Streams: sr.Streams,
			Progress: func(line string) { fmt.Fprintf(o.Log, "  %s\n", line) },
		}, func(r *StreamsResult) { heldc <- *r })
		done <- outcome{res, err}
	}()
	var held StreamsResult
	select {
	case held = <-heldc:
	case out := <-done:
		return fail("holding streams: %v", out.err)
	case <-ctx.Done():
		return sr, nil
	}
	sr.Opened, sr.Failed, sr.FirstError = held.Opened, held.Failed, held.FirstErr
	sr.OpenSeconds = held.OpenTime.Seconds()
	if s, err := sampleProcess(pid); err == nil {
		sr.OpenRSSKiB = s.RSSKiB
	}
	fmt.Fprintf(o.Log, "  %s opened in %.1f s, %d failed; mcpgw rss %.1f MiB (%.1f before)\n",
		thousands(float64(held.Opened)), sr.OpenSeconds, held.Failed, float64(sr.OpenRSSKiB)/1024, float64(sr.BaseRSSKiB)/1024)

	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var problems []string
hold:
	for time.Since(start) < settle {
		select {
		case <-ctx.Done():
			return sr, nil
		case <-tick.C:
		}
		if err := st.alive(); err != nil {
			problems = append(problems, "streams: "+err.Error())
			break hold
		}
		s, err := sampleProcess(pid)
		if err != nil {
			continue
		}
		s.At = time.Since(start)
		sr.Samples = append(sr.Samples, s)
		fmt.Fprintf(o.Log, "  %6s  rss %7.1f MiB  threads %3d  fds %5d\n", s.At.Round(time.Second), float64(s.RSSKiB)/1024, s.Threads, s.FDs)
	}
	sr.HeldSeconds = time.Since(start).Seconds()
	release()
	out := <-done
	if ctx.Err() != nil {
		return sr, nil
	}
	if out.err != nil {
		problems = append(problems, "streams: "+out.err.Error())
	} else {
		sr.Closed = out.res.Closed
	}
	if n := len(sr.Samples); n > 0 {
		sr.SettledRSSKiB = sr.Samples[n-1].RSSKiB
		sr.PerStreamKiB, sr.ProjectedKiB = ProjectRSS(sr.BaseRSSKiB, sr.SettledRSSKiB, sr.Opened, StreamsTarget)
	} else {
		problems = append(problems, "streams: no RSS sample of mcpgw while the streams were held")
	}
	if sr.Failed > 0 {
		problems = append(problems, fmt.Sprintf("streams: %d of %d streams failed to open (first: %s)", sr.Failed, sr.Streams, sr.FirstError))
	}
	if sr.Closed > 0 {
		problems = append(problems, fmt.Sprintf("streams: the server closed %d of %d held streams", sr.Closed, sr.Opened))
	}
	if len(problems) > 0 {
		sr.Error = problems[0][len("streams: "):]
	}
	return sr, problems
}
