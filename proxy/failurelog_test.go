package proxy

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFailureLogIsBoundedAndCounts(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var f failureLog
	err := errors.New("connection refused")
	for range 1000 {
		f.note(log, err)
	}
	if got := strings.Count(buf.String(), "upstream exchange failed"); got != 1 {
		t.Fatalf("1,000 failures within a second: got %d lines, want 1:\n%s", got, buf.String())
	}
	f.last.Add(-int64(2 * time.Second)) // a second has passed
	f.note(log, err)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "failures=1000") {
		t.Errorf("the next line must count the 999 suppressed failures and its own: got\n%s", buf.String())
	}
}

func TestFailureLogNamesItsKind(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	f := failureLog{msg: "audit write failed"}
	f.note(log, errors.New("disk full"))
	if out := buf.String(); !strings.Contains(out, `msg="audit write failed"`) || strings.Contains(out, "upstream") {
		t.Errorf("an audit failure logged as %s", out)
	}
}
