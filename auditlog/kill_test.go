package auditlog

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// childDirEnv tells the test binary, run again as a child, to append to
// the spool in that directory until it is killed.
const childDirEnv = "AUDITLOG_CHILD_DIR"

// TestChildAppender is the child of TestSIGKILLKeepsAcknowledgedRecords:
// 8 writers append in sync mode and print each acknowledged seq.
func TestChildAppender(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("run by TestSIGKILLKeepsAcknowledgedRecords")
	}
	l, err := Open(dir, Options{NodeID: "child"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards os.Stdout
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				seq, err := l.Append(activity(w*1000000 + i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				os.Stdout.WriteString(strconv.FormatUint(seq, 10) + "\n")
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestSIGKILLKeepsAcknowledgedRecords kills a real process appending to a
// spool on the real disk, three times: every seq it acknowledged is in the
// spool, the chain verifies, and seq continues after each restart.
func TestSIGKILLKeepsAcknowledgedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	acked := map[uint64]bool{}
	var prevHead uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildAppender$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan uint64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if seq, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
					lines <- seq
				}
			}
		}()
		n := 0
		timeout := time.After(10 * time.Second)
	read:
		for n < 300 {
			select {
			case seq, ok := <-lines:
				if !ok {
					break read
				}
				if seq <= prevHead {
					t.Fatalf("round %d: seq %d after a head of %d", round, seq, prevHead)
				}
				acked[seq] = true
				n++
			case <-timeout:
				break read
			}
		}
		cmd.Process.Kill() // SIGKILL
		for seq := range lines {
			acked[seq] = true // printed before the kill, so acknowledged
		}
		cmd.Wait()
		if n < 300 {
			t.Fatalf("round %d: the child acknowledged only %d records in 10 s", round, n)
		}

		l, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		present := map[uint64]bool{}
		l.ScanJSON(0, func(seq uint64, _ []byte) bool { present[seq] = true; return true })
		for seq := range acked {
			if !present[seq] {
				t.Errorf("round %d: record %d was acknowledged and is gone", round, seq)
			}
		}
		if err := l.Verify(); err != nil {
			t.Errorf("round %d: Verify: %v", round, err)
		}
		prevHead, _ = l.Last()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged in all, head %d", round, len(acked), prevHead)
	}
}
