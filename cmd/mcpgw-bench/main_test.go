package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/bench"
)

// syncBuffer is a bytes.Buffer safe to write from one goroutine while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBackend runs "mcpgw-bench backend" and returns its URL.
func startBackend(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"backend", "--listen", "127.0.0.1:0"}, args...), &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("backend exited %d: %s", code, errOut.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if addr := strings.TrimSpace(out.String()); addr != "" {
			return "http://" + addr + "/mcp"
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("backend printed no address; stderr: %s", errOut.String())
	return ""
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"no url", []string{"run"}, 2},
		{"unknown flag", []string{"--nope"}, 2},
		{"bad mix", []string{"--url", "http://127.0.0.1:1/", "--mix", "tools/call=x"}, 2},
		{"bad payload", []string{"--url", "http://127.0.0.1:1/", "--payload", "2 parsecs"}, 2},
		{"extra argument", []string{"run", "--url", "http://127.0.0.1:1/", "extra"}, 2},
		{"backend bad flag", []string{"backend", "--tools", "many"}, 2},
		{"help", []string{"help"}, 0},
		{"-h", []string{"run", "-h"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := run(context.Background(), tc.args, &out, &errOut); got != tc.want {
				t.Errorf("got exit %d, want %d; stderr: %s", got, tc.want, errOut.String())
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	url := startBackend(t, "--tools", "20", "--sessions")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"run", "--url", url, "--concurrency", "4", "--requests", "200",
		"--mix", "tools/call=3,tools/list=1", "--payload", "1KiB", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, errOut.String())
	}
	var res bench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not a Result: %v\n%s", err, out.String())
	}
	if res.Requests != 200 || res.Errors != 0 || res.Latency.P99 <= 0 {
		t.Errorf("result %+v", res)
	}
}

func TestRunText(t *testing.T) {
	url := startBackend(t, "--sse")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--url", url, "--concurrency", "2", "--duration", "1200ms",
		"--progress-events", "2", "--protocol-version", "2026-07-28"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, errOut.String())
	}
	for _, want := range []string{"throughput", "p99", "progress"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "req/s, p99 ") {
		t.Errorf("no progress line on stderr: %q", errOut.String())
	}
}

func TestRunFails(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--url", "http://127.0.0.1:1/mcp", "--requests", "5", "--timeout", "1s"}, &out, &errOut); code != 1 {
		t.Errorf("unreachable: got exit %d, want 1", code)
	}
	url := startBackend(t)
	errOut.Reset()
	if code := run(context.Background(), []string{"--url", url, "--requests", "20", "--tool", "missing"}, &out, &errOut); code != 1 {
		t.Errorf("every request failing: got exit %d, want 1; stderr: %s", code, errOut.String())
	}
}
