//go:build unix

package procrun

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	p, err := Start(t.TempDir(), "sleeper", nil, "/bin/sh", "-c", "echo started; sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("exited at once")
	}
	waitForLine(t, p, "started")
	took, killed := p.Stop(5 * time.Second)
	if !p.Exited() || killed || took > 5*time.Second {
		t.Errorf("Stop: exited %t, killed %t, took %v; want a prompt exit on SIGTERM", p.Exited(), killed, took)
	}
	if got := p.Tail(5); got != "started" {
		t.Errorf("Tail: got %q, want %q", got, "started")
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p, err := Start(t.TempDir(), "stubborn", nil, "/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	waitForLine(t, p, "ready") // the trap is installed
	if _, killed := p.Stop(200 * time.Millisecond); !killed || !p.Exited() {
		t.Errorf("Stop: killed %t, exited %t; want SIGKILL after the grace", killed, p.Exited())
	}
}

func TestStartListeningReportsAnEarlyExit(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, err = StartListening(t.TempDir(), "quitter", addr, 5*time.Second, nil, "/bin/sh", "-c", "echo no listener here; exit 3")
	if err == nil || !strings.Contains(err.Error(), "quitter exited") || !strings.Contains(err.Error(), "no listener here") {
		t.Errorf("got %v, want an error naming the exit and quoting the log", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := WaitTCP(ctx, addr, nil); err == nil {
		t.Error("WaitTCP on a closed port: got nil, want a timeout")
	}
}

// waitForLine waits up to 5 s for the process's log to end with line.
func waitForLine(t *testing.T, p *Process, line string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p.Tail(1) == line {
			return
		}
	}
	t.Fatalf("%s never printed %q", p.Name, line)
}
