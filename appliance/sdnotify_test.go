package appliance

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listenNotify stands in for systemd's notification socket.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySystemdStates(t *testing.T) {
	conn := listenNotify(t)
	notifySystemd("READY=1")
	if got := readNotify(t, conn); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
	notifyReloading()
	got := readNotify(t, conn)
	usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
	if !ok {
		t.Fatalf("got %q", got)
	}
	if n, err := strconv.ParseInt(usec, 10, 64); err != nil || n <= 0 {
		t.Fatalf("MONOTONIC_USEC %q", usec)
	}
}

func TestWatchdogKeepsAlive(t *testing.T) {
	conn := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "40000") // pings every 20 ms
	t.Setenv("WATCHDOG_PID", "")
	stop := startWatchdog(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 3 {
		if got := readNotify(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	stop()
}

func TestWatchdogOffForOtherProcess(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "40000")
	t.Setenv("WATCHDOG_PID", "1")
	if got := watchdogInterval(); got != 0 {
		t.Fatalf("interval %v for another process's watchdog", got)
	}
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "junk")
	if got := watchdogInterval(); got != 0 {
		t.Fatalf("interval %v from a bad WATCHDOG_USEC", got)
	}
	t.Setenv("WATCHDOG_USEC", "30000000")
	if got := watchdogInterval(); got != 15*time.Second {
		t.Fatalf("interval %v, want half of 30s", got)
	}
}
