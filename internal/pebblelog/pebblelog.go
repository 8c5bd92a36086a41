// Package pebblelog routes Pebble's logger into slog (STYLE.md: route
// Pebble's logger and event listener into slog). Pebble logs through its
// own logger unless Options.Logger is set, and its default event listener
// reports background errors and slow disks through that logger.
package pebblelog

import (
	"fmt"
	"log/slog"
)

// Logger implements pebble.Logger on a *slog.Logger. Every line carries
// source=pebble; Fatalf panics with the owner's prefix after logging.
type Logger struct {
	Log   *slog.Logger
	Owner string // names the store in a fatal panic, e.g. "state" or "auditlog"
}

// New returns a Logger for the store owner writes to log.
func New(log *slog.Logger, owner string) Logger { return Logger{Log: log, Owner: owner} }

func (l Logger) Infof(format string, args ...any) {
	l.Log.Info(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l Logger) Errorf(format string, args ...any) {
	l.Log.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

// Fatalf is called by Pebble only when it cannot go on (a corrupt store, a
// failed sync); it must not return.
func (l Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.Log.Error(msg, "source", "pebble", "fatal", true)
	panic(l.Owner + ": pebble: " + msg)
}
