package pebblelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

var _ pebble.Logger = Logger{}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)), "state")
	l.Infof("flushed %d tables", 3)
	l.Errorf("background error: %s", "disk")
	out := buf.String()
	for _, want := range []string{`"level":"INFO","msg":"flushed 3 tables","source":"pebble"`, `"level":"ERROR","msg":"background error: disk","source":"pebble"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	defer func() {
		r := recover()
		if r != "state: pebble: corrupt" || !strings.Contains(buf.String(), `"fatal":true`) {
			t.Errorf("Fatalf: got panic %v and log %s; want a logged fatal line and a panic naming the owner", r, buf.String())
		}
	}()
	l.Fatalf("corrupt")
	t.Error("Fatalf returned")
}
