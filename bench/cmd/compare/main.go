// Command compare is the comparison runner behind make bench and make soak
// (DESIGN.md section 8). It starts the mock MCP backend (bin/mcpgw-bench
// backend), nginx as a plain keepalive reverse proxy and two mcpgw
// instances (bin/mcpgw serve), mcpgw-sync and mcpgw-async, alike but for
// audit.durability, each on free loopback ports, and measures every
// scenario against the backend directly, through nginx and through each
// mcpgw (s1o through mcpgw-async only), interleaved. It writes
// bench/results/latest.json, latest.md and latest.svg and prints the
// markdown table. Scenario "streams" instead holds up to 10,000 idle SSE
// streams through an mcpgw of its own and reports its settled RSS. The
// gateways' audit spools are removed when their processes stop, also with
// --keep.
//
// With --soak DURATION it instead soaks mcpgw at constant load and checks
// that its memory, threads and descriptors stay flat.
//
// Exit status: 0 when everything was measured (a missed speed target is a
// FAIL line in the table, not an error), 1 when a measurement broke (a
// process did not start or died, more than 0.1% of requests failed) or a
// soak found growth, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		bin         = flag.String("bin", "bin", "folder holding mcpgw and mcpgw-bench")
		nginx       = flag.String("nginx", "", "nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
		out         = flag.String("out", "bench/results", "folder for latest.json, latest.md and latest.svg (soak.json and soak.md for --soak)")
		rounds      = flag.Int("rounds", 3, "measurements per scenario and target; the median is reported")
		duration    = flag.Duration("duration", 10*time.Second, "length of each measurement")
		warmup      = flag.Duration("warmup", 2*time.Second, "unrecorded load before each measurement")
		concurrency = flag.Int("concurrency", 64, "connections")
		payload     = flag.Int("payload", 2048, "tools/call argument bytes")
		tools       = flag.Int("tools", 1000, "canned tools of the backend (scenario 3 lists them)")
		scenarios   = flag.String("scenarios", "", "comma-separated scenario ids to run (default all: s1,s1o,s2,s3,s4,streams)")
		streams     = flag.Int("streams", bench.StreamsTarget, "idle streams of the streams scenario (capped to fit RLIMIT_NOFILE)")
		settle      = flag.Duration("streams-settle", 150*time.Second, "how long the streams scenario holds its streams while sampling mcpgw's RSS")
		rate        = flag.Float64("rate", 0, "open-loop rate of s2 when s1 is not run; with --soak, the soak's rate (default half of a probe's throughput)")
		soak        = flag.Duration("soak", 0, "soak mcpgw at constant load for this long instead of comparing")
		waitQuiet   = flag.Duration("wait-quiet", 2*time.Minute, "before measuring, wait up to this long for other processes to leave the CPU (0: don't)")
		keep        = flag.Bool("keep", false, "keep the work folder (configs, logs) after a clean run")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "compare: unexpected arguments %q\n", flag.Args())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	binDir, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		return 2
	}
	work, err := os.MkdirTemp("", "mcpgw-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		return 1
	}
	fmt.Printf("compare: configs and logs in %s\n", work)

	var code int
	if *soak > 0 {
		code, err = runSoak(ctx, bench.SoakOptions{
			Bin: binDir, WorkDir: work, Duration: *soak, Concurrency: *concurrency,
			Payload: *payload, Rate: *rate, Log: os.Stdout,
		}, *out)
	} else {
		var ids []string
		if *scenarios != "" {
			ids = strings.Split(*scenarios, ",")
		}
		nginxBin := *nginx
		if nginxBin == "" {
			nginxBin = findNginx()
		}
		root, _ := os.Getwd()
		idp, ierr := startMockIDP()
		if ierr != nil {
			fmt.Fprintln(os.Stderr, "compare: cannot start the OpenID provider:", ierr)
			return 1
		}
		defer idp.Close()
		code, err = runCompare(ctx, bench.CompareOptions{
			Bin: binDir, Nginx: nginxBin, Root: root, WorkDir: work,
			Rounds: *rounds, Duration: *duration, Warmup: *warmup, Concurrency: *concurrency,
			Payload: *payload, Tools: *tools, Scenarios: ids, Rate: *rate, WaitQuiet: *waitQuiet,
			Streams: *streams, StreamsSettle: *settle, IDP: idp, Log: os.Stdout,
		}, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "compare: interrupted")
		code = 130
	}
	if code == 0 && !*keep {
		os.RemoveAll(work)
	} else {
		fmt.Printf("compare: configs and logs kept in %s\n", work)
	}
	return code
}

func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

func runCompare(ctx context.Context, o bench.CompareOptions, out string) (int, error) {
	rep, err := bench.Compare(ctx, o)
	if err != nil {
		return 1, err
	}
	if err := bench.WriteCompareResults(out, rep); err != nil {
		return 1, err
	}
	fmt.Println()
	if err := bench.WriteMarkdown(os.Stdout, rep); err != nil {
		return 1, err
	}
	fmt.Printf("compare: wrote %s\n", filepath.Join(out, "latest.{json,md,svg}"))
	if len(rep.Problems) > 0 {
		return 1, fmt.Errorf("%d measurement(s) broke; see Problems above", len(rep.Problems))
	}
	return 0, nil
}

func runSoak(ctx context.Context, o bench.SoakOptions, out string) (int, error) {
	rep, err := bench.Soak(ctx, o)
	if err != nil {
		return 1, err
	}
	if err := bench.WriteSoakResults(out, rep); err != nil {
		return 1, err
	}
	fmt.Println()
	if err := bench.WriteSoakMarkdown(os.Stdout, rep); err != nil {
		return 1, err
	}
	if !rep.Flat() {
		return 1, errors.New("soak: FAIL: mcpgw's process grew or the load broke")
	}
	fmt.Println("\ncompare: soak: ok: mcpgw's memory, threads and descriptors stayed flat")
	return 0, nil
}
