package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/internal/state"
	"github.com/mcpgw/mcpgw/proxy"
)

func runServe(args []string, env Env) int {
	fs, cfgPath := newFlags("serve", env)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return ExitConfig
	}
	log := newLogger(env.Stdout, &cfg.Observability)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, *cfgPath, log, nil); err != nil {
		log.Error("mcpgw stopped", "error", err.Error())
		return ExitConfig
	}
	return ExitOK
}

func newLogger(w io.Writer, o *ObservabilityConfig) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(o.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve runs the gateway until ctx ends. ready, when not nil, receives the
// bound frontend address once the gateway accepts connections.
//
// What outlives a reload is opened here once: the session key, the state
// store (<data_dir>/state), the keys derived from them, the admin token and
// both listeners. What a reload replaces (policy, routes, the authorization
// server's view of the applications) is a compiled.
func serve(ctx context.Context, cfg *Config, cfgPath string, log *slog.Logger, ready chan<- net.Addr) error {
	stopProfiling, err := startProfiling(cfg.Observability, log) // observability.go
	if err != nil {
		return err
	}
	defer stopProfiling()
	if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create data_dir: %w", err)
	}
	key, err := identity.LoadOrCreateSessionKey(filepath.Join(cfg.Server.DataDir, "session.key"))
	if err != nil {
		return fmt.Errorf("cannot load session key: %w", err)
	}
	codec, err := identity.NewSessionCodec(key)
	if err != nil {
		return fmt.Errorf("cannot make session codec: %w", err)
	}
	adminToken, err := LoadOrCreateAdminToken(cfg.Server.Admin.TokenFile)
	if err != nil {
		return err
	}
	store, err := state.OpenPebble(filepath.Join(cfg.Server.DataDir, "state"), log)
	if err != nil {
		return err
	}
	defer store.Close()
	ids, err := newIdentityRuntime(key, store, log)
	if err != nil {
		return err
	}
	comp, err := build(ctx, cfg, ids)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		comp.close()
		return fmt.Errorf("cannot listen on %s: %w", cfg.Server.Listen, err)
	}
	loopback := isLoopbackAddr(ln.Addr())
	certs := newCertStore(log.With("component", "tls"))
	useTLS := cfg.Server.TLS.Cert != ""
	if useTLS {
		c, stamps, err := loadStampedPair(cfg.Server.TLS.Cert, cfg.Server.TLS.Key)
		if err != nil {
			ln.Close()
			comp.close()
			return err
		}
		certs.set(cfg.Server.TLS.Cert, cfg.Server.TLS.Key, c, stamps)
		log.Info("TLS certificate loaded", certAttrs(c)...)
		ln = tls.NewListener(ln, frontendTLSConfig(certs.get))
		// Renewed files are served without a reload.
		go certs.watch(ctx, certPollInterval)
	}
	adminLn, err := listenAdmin(cfg.Server.Admin.Listen)
	if err != nil {
		ln.Close()
		comp.close()
		return err
	}

	audit, err := startAudit(cfg, log)
	if err != nil {
		ln.Close()
		adminLn.Close()
		comp.close()
		return err
	}
	// The audit log closes last: the proxy's shutdown waits for the
	// streams that still write records.
	defer func() {
		if err := audit.close(); err != nil {
			log.Error("cannot close the audit log", "error", err.Error())
		}
	}()

	var current atomic.Pointer[compiled]
	current.Store(comp)
	var hook *webhook
	if cfg.Approvals.Webhook != "" {
		hook = startWebhook(cfg.Approvals.Webhook, log)
		defer hook.close(5 * time.Second) // after the approvals, whose events it sends
	}
	approvals, err := startApprovals(cfg, store, &current, audit.log, hook, log)
	if err != nil {
		ln.Close()
		adminLn.Close()
		comp.close()
		return fmt.Errorf("cannot start the approvals: %w", err)
	}
	defer approvals.Close() // before the audit log, which its events go to
	comp.snap.Approvals = proxyApprovals{approvals}

	srv, err := proxy.New(proxy.Options{Logger: log, Sessions: codec, Loopback: loopback, TLS: useTLS, Audit: audit.log})
	if err == nil {
		err = srv.Update(comp.snap)
	}
	if err != nil {
		ln.Close()
		adminLn.Close()
		comp.close()
		return err
	}
	// applyReload swaps in the configuration file's current contents, or
	// changes nothing and says why (without secret values). SIGHUP and
	// POST /api/v1/reload share it, one reload at a time.
	var reloadMu sync.Mutex
	applyReload := func() (reloadOutcome, error) {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		notifyReloading()
		defer notifySystemd("READY=1")
		refuse := func(err error, next *Config) (reloadOutcome, error) {
			err = redactSecrets(err, next, current.Load().cfg)
			log.Error("reload refused; the running configuration keeps serving", "error", err.Error())
			return reloadOutcome{}, err
		}
		next, nextCfg, pair, err := reload(ctx, cfgPath, useTLS, ids)
		if err != nil {
			return refuse(err, nextCfg)
		}
		// audit.when_full is read at start, by the spool as by the
		// proxy (restartOnly).
		next.snap.Audit.RejectWhenFull = cfg.Audit.WhenFull == "reject"
		next.snap.Approvals = proxyApprovals{approvals}
		if err := approvals.Update(flowsOf(next.cfg)); err != nil {
			next.close()
			return refuse(err, next.cfg)
		}
		if err := srv.Update(next.snap); err != nil {
			next.close()
			return refuse(err, next.cfg)
		}
		if pair != nil {
			certs.set(next.cfg.Server.TLS.Cert, next.cfg.Server.TLS.Key, pair.cert, pair.stamps)
		}
		// The old policy is closed after in-flight requests had time to
		// finish with it.
		old := current.Swap(next)
		time.AfterFunc(time.Minute, old.close)
		out := reloadOutcome{Applications: len(next.cfg.Applications), Identity: ids.describe(next),
			RestartNeeded: restartOnly(cfg, next.cfg)}
		log.Info("configuration reloaded", "applications", out.Applications, "identity", out.Identity)
		if useTLS {
			log.Info("TLS certificate loaded", certAttrs(certs.get())...)
		}
		if len(out.RestartNeeded) > 0 {
			log.Warn("changed settings take effect only after a restart; the running values stay", "keys", out.RestartNeeded)
		}
		return out, nil
	}
	adminSrv := newAdminServer(adminToken, func(ctx context.Context) readiness {
		rd := ids.readiness(ctx, current.Load())
		audit.readiness(&rd)
		return rd
	})
	roles := func() RolesConfig { return current.Load().cfg.Roles }
	verifyUser := adminUserVerifier(&current, isLoopbackAddr(adminLn.Addr()))
	adminSrv.mountAudit(audit.log, roles, verifyUser)
	adminSrv.mountApprovals(approvals, roles, verifyUser)
	adminSrv.mux.Handle("GET /metrics", newMetricsHandler(audit, approvals, srv))
	adminSrv.mountOps(applyReload, func() *compiled { return current.Load() }, verifyUser)
	admin := newAdminHTTPServer(adminSrv, log.With("component", "admin"))

	errc := make(chan error, 1)
	adminErrc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go func() { adminErrc <- admin.Serve(adminLn) }()
	log.Info("mcpgw serving", "listen", ln.Addr().String(), "admin", adminLn.Addr().String(), "tls", useTLS,
		"applications", len(cfg.Applications), "identity", ids.describe(comp), "version", Version())
	if ready != nil {
		ready <- ln.Addr()
	}
	notifySystemd("READY=1")
	defer startWatchdog(ctx, log)()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			notifySystemd("STOPPING=1")
			// Drain: no new connections; in-flight requests and streams
			// get server.shutdown_timeout to finish, then are cut. The
			// audit log, closed last (deferred above), writes the records
			// of what was drained.
			timeout := current.Load().cfg.Server.ShutdownTimeout
			log.Info("mcpgw stopping: draining in-flight requests", "timeout", timeout.String())
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			var aerr error
			done := make(chan struct{})
			go func() { aerr = admin.Shutdown(sctx); close(done) }()
			err := srv.Shutdown(sctx)
			<-done
			cancel()
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(aerr, context.DeadlineExceeded) {
				// Cutting what outlived the drain is the operator's
				// setting, not a failure of the gateway.
				log.Warn("requests still in flight after server.shutdown_timeout were cut", "timeout", timeout.String())
				err, aerr = nil, nil
				admin.Close()
			}
			<-errc
			<-adminErrc
			current.Load().close()
			log.Info("mcpgw stopped")
			return errors.Join(err, aerr)
		case err := <-errc:
			admin.Close()
			return fmt.Errorf("frontend stopped: %w", err)
		case err := <-adminErrc:
			return fmt.Errorf("admin listener stopped: %w", err)
		case <-hup:
			// applyReload logs the outcome.
			_, _ = applyReload()
		}
	}
}

// adminUserVerifier checks a user's bearer token on the admin listener, as
// the frontend would for some application: a dev user (on a loopback
// admin listener, or with identity.allow_dev_users), or a token the
// identity section verifies for one of the applications. The roles come
// from the user's groups (roles.admin_groups, roles.auditor_groups).
func adminUserVerifier(current *atomic.Pointer[compiled], loopback bool) func([]byte) (*identity.Principal, bool) {
	return func(tok []byte) (*identity.Principal, bool) {
		snap := current.Load().snap
		if snap.DevUsers != nil && (loopback || snap.AllowDevUsersRemote) {
			if p, ok := snap.DevUsers.Lookup(tok); ok {
				return p, true
			}
		}
		if snap.Tokens == nil {
			return nil, false
		}
		for _, app := range snap.Applications {
			if p, err := snap.Tokens.Verify(tok, app.Frontend.String()); err == nil && p != nil {
				return p, true
			}
		}
		return nil, false
	}
}

// reloadOutcome is what an accepted reload changed.
type reloadOutcome struct {
	Applications  int      `json:"applications"`
	Identity      string   `json:"identity"`
	RestartNeeded []string `json:"restart_needed"` // settings changed that only a restart applies
}

// loadedPair is a TLS pair a reload read, to serve once the reload is
// accepted.
type loadedPair struct {
	cert   *tls.Certificate
	stamps [2]fileStamp
}

// reload loads and compiles the configuration again, and the TLS pair
// (nil without TLS). It changes nothing: the caller swaps both in once
// everything succeeded. Listener changes need a restart. The new Config
// is returned on failure too, when it loaded, so that its secrets can be
// kept out of the message.
func reload(ctx context.Context, path string, useTLS bool, ids *identityRuntime) (*compiled, *Config, *loadedPair, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, nil, nil, err
	}
	if (cfg.Server.TLS.Cert != "") != useTLS {
		return nil, cfg, nil, errTLSSwitch
	}
	var pair *loadedPair
	if useTLS {
		c, stamps, err := loadStampedPair(cfg.Server.TLS.Cert, cfg.Server.TLS.Key)
		if err != nil {
			return nil, cfg, nil, err
		}
		pair = &loadedPair{c, stamps}
	}
	comp, err := build(ctx, cfg, ids)
	if err != nil {
		return nil, cfg, nil, err
	}
	return comp, cfg, pair, nil
}

// build compiles cfg and attaches the identity parts to it, as serve does
// at start and on every reload.
func build(ctx context.Context, cfg *Config, ids *identityRuntime) (*compiled, error) {
	comp, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if err := ids.attach(ctx, comp); err != nil {
		comp.close()
		return nil, err
	}
	return comp, nil
}

// restartOnly names the settings that differ between the configuration
// serve started with and a reloaded one but are only read at start.
func restartOnly(started, next *Config) []string {
	var keys []string
	for _, f := range []struct {
		key  string
		a, b string
	}{
		{"server.listen", started.Server.Listen, next.Server.Listen},
		{"server.admin.listen", started.Server.Admin.Listen, next.Server.Admin.Listen},
		{"server.admin.token_file", started.Server.Admin.TokenFile, next.Server.Admin.TokenFile},
		{"server.data_dir", started.Server.DataDir, next.Server.DataDir},
		{"audit.dir", started.Audit.Dir, next.Audit.Dir},
		{"audit.durability", started.Audit.Durability, next.Audit.Durability},
		{"audit.max_spool", started.Audit.MaxSpool.String(), next.Audit.MaxSpool.String()},
		{"audit.when_full", started.Audit.WhenFull, next.Audit.WhenFull},
		{"audit.retention", started.Audit.Retention.String(), next.Audit.Retention.String()},
		{"audit.ship.url", started.Audit.Ship.URL, next.Audit.Ship.URL},
		{"audit.ship.auth", started.Audit.Ship.Auth, next.Audit.Ship.Auth},
		{"audit.ship.batch", strconv.Itoa(started.Audit.Ship.Batch), strconv.Itoa(next.Audit.Ship.Batch)},
		{"audit.ship.interval", started.Audit.Ship.Interval.String(), next.Audit.Ship.Interval.String()},
		{"approvals.webhook", started.Approvals.Webhook, next.Approvals.Webhook},
	} {
		if f.a != f.b {
			keys = append(keys, f.key)
		}
	}
	return keys
}

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
