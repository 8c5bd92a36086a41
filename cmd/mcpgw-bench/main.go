// Command mcpgw-bench drives load against an MCP Streamable HTTP endpoint
// (mcpgw-bench run, the default) or serves the fast mock MCP backend
// (mcpgw-bench backend). It parses the command line and calls package bench.
//
// Exit status: 0 ok, 1 the run failed (the target is unreachable, or every
// request failed), 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: mcpgw-bench [run] --url URL [flags]
       mcpgw-bench backend [--listen ADDR] [--tools N] [--sse] [--delay D] [--sessions]
       mcpgw-bench streams --url URL [--token T] [--streams N] [--hold D] [--json]
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return runLoad(ctx, args[1:], stdout, stderr)
		case "backend":
			return runBackend(ctx, args[1:], stdout, stderr)
		case "streams":
			return runStreams(ctx, args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	return runLoad(ctx, args, stdout, stderr)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mcpgw-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nflags of ", name, ":\n")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, returning an exit status when the command should stop
// (0 for -help, 2 for a usage error).
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	case err != nil:
		return 2, false
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "mcpgw-bench %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	var cfg bench.LoadConfig
	var mix, payload string
	var asJSON bool
	fs.StringVar(&cfg.URL, "url", "", "MCP endpoint, http:// or https:// (required)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token sent on every request")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections, each with its own session")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the measured run (0: bounded by --requests only)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "number of measured requests (0: bounded by --duration only)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second over all connections, latency counted from the scheduled time (0: closed loop)")
	fs.StringVar(&mix, "mix", "tools/call=100", "request mix by weight: tools/call, tools/list, prompts/list, resources/list, ping")
	fs.StringVar(&payload, "payload", "2KiB", "size of the tools/call arguments (B, KiB, MiB)")
	fs.StringVar(&cfg.Tool, "tool", bench.DefaultTool, "tool that tools/call names")
	fs.IntVar(&cfg.ProgressEvents, "progress-events", 0, "ask for N progress notifications per tools/call (arguments.progress; an SSE answer)")
	fs.StringVar(&cfg.ProtocolVersion, "protocol-version", bench.DefaultProtocolVersion, "protocol version to ask for; 2026-07-28 sends stateless requests")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "load before measuring, not recorded")
	fs.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "bound on each request")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "do not verify the TLS certificate")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON on stdout")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	// --requests alone bounds the run by count; the default duration
	// applies only when neither was given.
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if cfg.Requests > 0 && !durationSet {
		cfg.Duration = 0
	}
	if cfg.URL == "" {
		fmt.Fprintln(stderr, "mcpgw-bench run: --url is required")
		fs.Usage()
		return 2
	}
	var err error
	if cfg.Mix, err = bench.ParseMix(mix); err != nil {
		fmt.Fprintf(stderr, "mcpgw-bench run: --mix: %v\n", err)
		return 2
	}
	if cfg.Payload, err = bench.ParseSize(payload); err != nil {
		fmt.Fprintf(stderr, "mcpgw-bench run: --payload: %v\n", err)
		return 2
	}
	cfg.Progress = func(line string) { fmt.Fprintln(stderr, line) }
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw-bench run: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw-bench run: cannot write the result: %v\n", err)
		return 1
	}
	if res.Requests == 0 || res.Errors == res.Requests {
		fmt.Fprintln(stderr, "mcpgw-bench run: no request succeeded")
		return 1
	}
	return 0
}

func runBackend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backend", stderr)
	var cfg bench.BackendConfig
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9000", "address to listen on (port 0: any free port)")
	fs.IntVar(&cfg.Tools, "tools", 100, "canned tools in tools/list, 0 to 10000 (plus echo)")
	fs.BoolVar(&cfg.SSE, "sse", false, "answer every request as text/event-stream")
	fs.DurationVar(&cfg.Delay, "delay", 0, "delay before each answer")
	fs.BoolVar(&cfg.Sessions, "sessions", false, "issue Mcp-Session-Id and serve idle GET streams")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	err := bench.Serve(ctx, cfg, func(a net.Addr) { fmt.Fprintln(stdout, a.String()) })
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw-bench backend: %v\n", err)
		return 1
	}
	return 0
}

// runStreams opens many sessions with an idle GET stream each and holds
// them: the memory test of a gateway (issue 3: 10,000 idle SSE streams).
func runStreams(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("streams", stderr)
	url := fs.String("url", "", "MCP endpoint (plain http)")
	token := fs.String("token", "", "bearer token")
	n := fs.Int("streams", 10000, "sessions to open, each with one GET stream")
	parallel := fs.Int("parallel", 64, "streams being opened at once")
	hold := fs.Duration("hold", 30*time.Second, "how long to hold them once open (0: until interrupted)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if *url == "" {
		fmt.Fprintln(stderr, "mcpgw-bench streams: --url is required")
		return 2
	}
	if *hold > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-time.After(*hold):
			case <-ctx.Done():
			}
			cancel()
		}()
	}
	cfg := bench.StreamsConfig{URL: *url, Token: *token, Streams: *n, Parallel: *parallel,
		Progress: func(line string) { fmt.Fprintln(stderr, line) }}
	res, err := bench.HoldStreams(ctx, cfg, func(r *bench.StreamsResult) {
		fmt.Fprintf(stderr, "held: %d open, %d failed in %v\n", r.Opened, r.Failed, r.OpenTime.Round(time.Millisecond))
	})
	if err != nil {
		fmt.Fprintln(stderr, "mcpgw-bench streams:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		fmt.Fprintf(stdout, "opened %d, failed %d, closed by the server while held %d, open time %v\n",
			res.Opened, res.Failed, res.Closed, res.OpenTime.Round(time.Millisecond))
		if res.FirstErr != "" {
			fmt.Fprintln(stdout, "first error:", res.FirstErr)
		}
	}
	if res.Failed > 0 || res.Closed > 0 {
		return 1
	}
	return 0
}
