package appliance

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"
)

// freeTestAddr returns a loopback address nothing listens on.
func freeTestAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs serve on the config at cfgPath until it is ready, and
// returns a function that stops it and reports what serve returned.
func startServe(t *testing.T, cfgPath string) (stop func() error) {
	t.Helper()
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, cfgPath, slog.New(slog.DiscardHandler), ready) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("serve did not get ready within 20s")
	}
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not stop within 15s")
			return nil
		}
	}
}
