package appliance

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/grafana/pyroscope-go"
)

// Continuous profiling (DESIGN.md section 1, issue 7): when
// observability.pyroscope.server_address is set, pyroscope-go samples CPU,
// allocations, the heap in use and goroutines and uploads them to the
// server's /ingest every upload period, tagged with the node (host name)
// and the gateway's version. Profiles carry function names and counts,
// no request data.
//
// The address never reaches a log line whole: credentials in its userinfo
// (which validation refuses, but startProfiling does not rely on that)
// become HTTP basic auth, and every line, the library's own included,
// shows the address without userinfo, query or fragment.

// profileUploadRate is how often profiles are uploaded (pyroscope-go's
// default).
const profileUploadRate = 15 * time.Second

// profileStopWait bounds how long stopping waits for an upload in flight,
// so that a profiling server that hangs cannot hold the gateway's
// shutdown; the process is exiting anyway.
const profileStopWait = 5 * time.Second

// startProfiling starts continuous profiling when cfg asks for it and
// returns the function that stops it (a no-op when profiling is off).
func startProfiling(cfg ObservabilityConfig, log *slog.Logger) (stop func(), err error) {
	return startProfilingEvery(cfg, log, profileUploadRate)
}

func startProfilingEvery(cfg ObservabilityConfig, log *slog.Logger, rate time.Duration) (stop func(), err error) {
	p := cfg.Pyroscope
	if p.ServerAddress == "" {
		return func() {}, nil
	}
	u, err := url.Parse(p.ServerAddress)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		// The parse error would quote the address.
		return nil, fmt.Errorf("observability.pyroscope.server_address: must be an absolute http or https URL")
	}
	var user, password string
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
		u.User = nil
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	secrets := []string{password, user, u.RawQuery}
	log = log.With("component", "pyroscope")
	name := p.ApplicationName
	if name == "" {
		name = defaultPyroscopeName
	}
	host, _ := os.Hostname()
	prof, err := pyroscope.Start(pyroscope.Config{
		ApplicationName:   name,
		ServerAddress:     u.String(),
		BasicAuthUser:     user,
		BasicAuthPassword: password,
		Tags:              map[string]string{"node": tagValue(host), "version": tagValue(Version())},
		UploadRate:        rate,
		Logger:            pyroscopeLogger{log: log, secrets: secrets},
		ProfileTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU,
			pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
			pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace,
			pyroscope.ProfileGoroutines,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start profiling to %s: %s", shown, redact(err.Error(), secrets))
	}
	log.Info("continuous profiling on", "server", shown, "application", name, "upload_every", rate.String())
	return func() {
		done := make(chan struct{})
		go func() { _ = prof.Stop(); close(done) }()
		select {
		case <-done:
		case <-time.After(profileStopWait):
			log.Warn("profiling did not stop in time; the last upload is abandoned", "waited", profileStopWait.String())
		}
	}, nil
}

// tagValue keeps a profile tag to A-Z a-z 0-9 . _ - (the tags go into the
// profile's name, "app{node=...,version=...}").
func tagValue(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(c rune) rune {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			return c
		}
		return '_'
	}, s)
}

// pyroscopeLogger routes pyroscope-go's messages into slog: its chatter
// (the session's settings, each upload) at debug, its errors (failed
// uploads) as warnings, with the address's secrets removed.
type pyroscopeLogger struct {
	log     *slog.Logger
	secrets []string
}

func (l pyroscopeLogger) Infof(format string, args ...any) {
	l.log.Debug(redact(fmt.Sprintf(format, args...), l.secrets))
}

func (l pyroscopeLogger) Debugf(format string, args ...any) {
	l.log.Debug(redact(fmt.Sprintf(format, args...), l.secrets))
}

func (l pyroscopeLogger) Errorf(format string, args ...any) {
	l.log.Warn(redact(fmt.Sprintf(format, args...), l.secrets))
}

// redact replaces every secret in s. Secrets shorter than four
// characters cannot be told from ordinary text and are not searched for
// (the address's are never handed to the library's log lines anyway: they
// travel as a header).
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}
