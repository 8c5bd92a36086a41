package auditlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestWriteErrorStopsTheLog injects an error into the write-ahead log's
// writes: the Append that meets it fails, and so does every later one.
func TestWriteErrorStopsTheLog(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
	l := openTest(t, errorfs.Wrap(vfs.NewMem(), toggle), Options{})
	defer l.Close()
	if _, err := l.Append(activity(0)); err != nil {
		t.Fatal(err)
	}
	toggle.On()
	if seq, err := l.Append(activity(1)); err == nil || seq != 0 {
		t.Fatalf("Append with a failing disk: got %d, %v; want an error", seq, err)
	}
	toggle.Off()
	if _, err := l.Append(activity(2)); !errors.Is(err, errorfs.ErrInjected) {
		t.Errorf("Append after the failure: got %v, want the injected error", err)
	}
	if seq, _ := l.Last(); seq != 1 {
		t.Errorf("got head %d, want 1", seq)
	}
}
