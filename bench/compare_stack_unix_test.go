//go:build unix

package bench

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// stop removes each gateway's audit spool and nothing else: configs and
// logs stay for --keep, and a spool outside the run folder is never
// touched.
func TestStackStopRemovesSpools(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	outside := filepath.Join(t.TempDir(), "elsewhere")
	write := func(path string, n int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inside := GatewaySetup{Dir: filepath.Join(run, TargetMCPGWSync)}
	stray := GatewaySetup{Dir: outside}
	write(filepath.Join(inside.AuditDir(), "000001.log"), 3000)
	write(filepath.Join(inside.AuditDir(), "000002.sst"), 1000)
	write(filepath.Join(inside.Dir, "mcpgw.yaml"), 10)
	write(filepath.Join(run, TargetMCPGWSync+".log"), 10)
	write(filepath.Join(stray.AuditDir(), "000001.log"), 10)
	if got := dirSize(inside.AuditDir()); got != 4000 {
		t.Errorf("dirSize: got %d, want 4000", got)
	}

	st := &stack{log: io.Discard, dir: run, gateways: []*gatewayInstance{
		{target: TargetMCPGWSync, setup: inside},
		{target: TargetMCPGWAsync, setup: stray},
	}}
	st.stop()
	for path, want := range map[string]bool{
		inside.AuditDir():                          false,
		filepath.Join(inside.Dir, "mcpgw.yaml"):    true,
		filepath.Join(run, TargetMCPGWSync+".log"): true,
		stray.AuditDir():                           true,
	} {
		_, err := os.Stat(path)
		if got := err == nil; got != want {
			t.Errorf("%s exists: got %v, want %v", path, got, want)
		}
	}
	if free, err := freeDisk(run); err != nil || free <= 0 {
		t.Errorf("freeDisk: got %d, %v", free, err)
	}
}
