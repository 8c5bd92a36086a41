package state

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/mcpgw/mcpgw/internal/pebblelog"
)

// TestPebbleSurvivesRestart: what was written before Close is there after
// reopening, expiries included.
func TestPebbleSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	p, err := OpenPebble(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.now = c.now
	mustPut(t, p, "client/a", "registration", 0)
	mustPut(t, p, "code/x", "short", time.Minute)
	mustPut(t, p, "gone", "x", 0)
	if err := p.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	p, err = OpenPebble(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.now = c.now
	wantValue(t, p, "client/a", "registration")
	wantValue(t, p, "code/x", "short")
	wantAbsent(t, p, "gone")
	c.advance(time.Minute)
	wantAbsent(t, p, "code/x")
}

// TestPebbleDurableOnReturn: every write that returned is in the state a
// crash leaves behind, even when nothing unsynced survives it.
func TestPebbleDurableOnReturn(t *testing.T) {
	mem := vfs.NewCrashableMem()
	p, err := openPebble("db", mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, p, "a", "1", 0)
	mustPut(t, p, "b", "2", 0)
	if err := p.CompareAndSwap("c", nil, []byte("3"), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.CompareAndSwap("a", []byte("1"), []byte("1b"), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete("b"); err != nil {
		t.Fatal(err)
	}
	for i, pct := range []int{0, 50, 100} {
		crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(i), 1))})
		q, err := openPebble("db", crashed, nil)
		if err != nil {
			t.Fatalf("reopen after crash (%d%% unsynced kept): %v", pct, err)
		}
		wantValue(t, q, "a", "1b")
		wantAbsent(t, q, "b")
		wantValue(t, q, "c", "3")
		q.Close()
	}
	p.Close()
}

// TestPebbleLogsToSlog: Pebble's messages reach the injected logger.
func TestPebbleLogsToSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := openPebble("db", vfs.NewMem(), log)
	if err != nil {
		t.Fatal(err)
	}
	pebblelog.New(p.log, "state").Infof("hello %d", 7)
	p.Close()
	if got := buf.String(); !strings.Contains(got, "hello 7") || !strings.Contains(got, "component=state") {
		t.Errorf("log: got %q, want a line with hello 7 and component=state", got)
	}
}

func TestPebbleOpenError(t *testing.T) {
	// A file where the directory should be.
	f := t.TempDir() + "/file"
	if err := writeFile(f); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPebble(f, nil); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("OpenPebble(file): got %v, want an open error", err)
	}
}

func writeFile(path string) error { return os.WriteFile(path, []byte("x"), 0o600) }
