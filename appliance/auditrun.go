package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/mcpgw/mcpgw/auditlog"
)

// auditRuntime is the audit log and the goroutines that tend it: the
// shipper to audit.ship.url and retention. It lives for the whole of
// serve; the settings it starts with need a restart to change.
type auditRuntime struct {
	log        *auditlog.Log
	shipper    *auditlog.Shipper // nil when audit.ship.url is empty
	durability string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// startAudit opens the spool under audit.dir and starts the shipper and
// retention.
func startAudit(cfg *Config, log *slog.Logger) (*auditRuntime, error) {
	a := &cfg.Audit
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create audit.dir: %w", err)
	}
	opts := auditlog.Options{MaxSpool: int64(a.MaxSpool), Logger: log, Shipping: a.Ship.URL != ""}
	if a.Durability == "async" {
		opts.Durability = auditlog.Async
	}
	if a.WhenFull == "drop_oldest_shipped" {
		opts.WhenFull = auditlog.DropOldestShipped
	}
	l, err := auditlog.Open(a.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open the audit log: %w", err)
	}
	rt := &auditRuntime{log: l, durability: a.Durability}
	if a.Ship.URL != "" {
		so := auditlog.ShipOptions{URL: a.Ship.URL, Batch: a.Ship.Batch, Interval: a.Ship.Interval, Logger: log}
		if a.Ship.Auth == "client_credentials" {
			env := cfg.Identity.Env
			so.Token = auditlog.ClientCredentials(&clientcredentials.Config{
				ClientID:     env["OIDC_CLIENT_ID"].Reveal(),
				ClientSecret: env["OIDC_CLIENT_SECRET"].Reveal(),
				TokenURL:     env["OIDC_TOKEN_URL"].Reveal(),
			}, nil)
		}
		if rt.shipper, err = auditlog.NewShipper(l, so); err != nil {
			l.Close()
			return nil, fmt.Errorf("cannot start the audit shipper: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	if rt.shipper != nil {
		rt.wg.Go(func() {
			if err := rt.shipper.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("audit shipper stopped", "error", err.Error())
			}
		})
	}
	rt.wg.Go(func() {
		if err := l.RunRetention(ctx, a.Retention, retentionInterval(a.Retention)); err != nil && !errors.Is(err, auditlog.ErrClosed) {
			log.Error("audit retention stopped", "error", err.Error())
		}
	})
	return rt, nil
}

// retentionInterval is how often retention runs: a tenth of the retention,
// between a second and an hour.
func retentionInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Hour)
}

// close stops the shipper and retention, then closes the spool (which
// writes what is queued). Call it after the proxy has stopped appending.
func (rt *auditRuntime) close() error {
	rt.cancel()
	rt.wg.Wait()
	return rt.log.Close()
}

// auditReadiness is the audit detail of /readyz.
type auditReadiness struct {
	Durability string         `json:"durability"`
	Head       uint64         `json:"head"`        // seq of the last record
	SpoolBytes int64          `json:"spool_bytes"` // disk space of the spool
	Full       bool           `json:"full"`        // at audit.max_spool
	Pruned     uint64         `json:"pruned"`      // records deleted by retention since start
	Dropped    uint64         `json:"dropped"`     // shipped records dropped to make room since start
	Ship       *shipReadiness `json:"ship,omitempty"`
}

// shipReadiness is the shipper's part of auditReadiness.
type shipReadiness struct {
	Shipped       uint64  `json:"shipped"`              // last seq the receiver acknowledged
	Lag           uint64  `json:"lag"`                  // records not yet acknowledged
	OldestSeconds float64 `json:"oldest_unshipped_s"`   // age of the oldest of them
	Failures      uint64  `json:"failures"`             // failed attempts since start
	LastError     string  `json:"last_error,omitempty"` // without URL query, token or body
	LastSuccess   string  `json:"last_success,omitempty"`
}

// readiness fills the audit detail. The log decides readiness only when
// it has stopped after a write error: then nothing can be forwarded.
func (rt *auditRuntime) readiness(rd *readiness) {
	st := rt.log.Stats()
	ar := &auditReadiness{Durability: rt.durability, Head: st.Head, SpoolBytes: st.SpoolBytes, Full: st.Full, Pruned: st.Pruned, Dropped: st.Dropped}
	if rt.shipper != nil {
		ss := rt.shipper.Stats()
		ar.Ship = &shipReadiness{Shipped: ss.Shipped, Lag: ss.Lag, OldestSeconds: ss.OldestUnshipped.Seconds(), Failures: ss.Failures, LastError: ss.LastError}
		if !ss.LastSuccess.IsZero() {
			ar.Ship.LastSuccess = ss.LastSuccess.UTC().Format(time.RFC3339)
		}
	}
	rd.Audit = ar
	switch err := rt.log.Err(); {
	case err != nil:
		rd.Ready = false
		rd.Checks["audit"] = "stopped after a write error: nothing is forwarded"
	case st.Full:
		rd.Checks["audit"] = "spool full (audit.max_spool)"
	default:
		rd.Checks["audit"] = "writing"
	}
}
