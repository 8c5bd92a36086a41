package appliance

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The service's side of systemd's notification protocol (sd_notify(3)),
// in Go and without libsystemd: Type=notify readiness, reload and stop
// states, and the watchdog keep-alive.

// notifySystemd sends state lines to systemd's notification socket when the
// service runs under Type=notify; it does nothing otherwise. Errors are
// dropped: the service runs the same with or without a manager listening.
func notifySystemd(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}

// notifyReloading tells systemd a reload began. MONOTONIC_USEC is what
// Type=notify-reload managers require (systemd 253); older ones ignore it.
// READY=1 ends the reload, accepted or refused.
func notifyReloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	usec := ts.Nano() / 1000
	notifySystemd("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// watchdogInterval is how often to send WATCHDOG=1: half of the
// manager's WatchdogSec (WATCHDOG_USEC), so one late tick is not a kill.
// Zero when no watchdog is set for this process (WATCHDOG_PID, when set,
// names another process, as after a fork).
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// startWatchdog sends WATCHDOG=1 until ctx ends or the returned stop is
// called. The keep-alive comes from its own goroutine: it proves the
// process schedules goroutines and its timers fire, which is what a hung
// runtime would fail to do.
func startWatchdog(ctx context.Context, log *slog.Logger) (stop func()) {
	every := watchdogInterval()
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	log.Info("systemd watchdog on", "interval", every.String())
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			notifySystemd("WATCHDOG=1")
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
