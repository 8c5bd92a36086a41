package appliance

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The admin listener (DESIGN.md section 7) is a plain net/http server on
// server.admin.listen, never on the frontend listener:
//
//	GET /healthz    200 while the process runs (no credentials)
//	GET /readyz     200 when the configuration is loaded and the state store
//	                answers, else 503; JSON detail (no credentials)
//	/api/v1/...     bearer auth by the admin token; the endpoints of later
//	                steps (applications, approvals, grants, reload) hang off
//	                adminServer.api; the audit endpoints (admin_audit.go)
//	                take user tokens whose groups grant a role too
//
// Errors are {"error": {"code", "message"}} with the HTTP status. The
// admin API is off the hot path: encoding/json is enough for its few small
// documents.

const (
	// adminTokenBytes is the entropy of a generated admin token (256 bits).
	adminTokenBytes = 32
	// minAdminToken rules out placeholder tokens in an operator's file.
	minAdminToken = 16
	// maxAdminTokenFile bounds what is read from token_file.
	maxAdminTokenFile = 4 << 10
)

// LoadOrCreateAdminToken returns the admin token stored at path (trailing
// whitespace trimmed), creating the file with a new random token (base64url,
// mode 0600, in a directory created 0700) when it does not exist. An existing
// file is refused when group or others have any permission on it (the token
// opens the whole admin API), or when the token is shorter than 16
// characters or contains whitespace.
func LoadOrCreateAdminToken(path string) ([]byte, error) {
	tok, err := readAdminToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("appliance: cannot create admin token directory: %w", err)
	}
	raw := make([]byte, adminTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("appliance: cannot generate admin token: %w", err)
	}
	tok = []byte(base64.RawURLEncoding.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readAdminToken(path) // another process created it first
	}
	if err != nil {
		return nil, fmt.Errorf("appliance: cannot create admin token: %w", err)
	}
	_, err = f.Write(append(tok, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("appliance: cannot write admin token: %w", err)
	}
	return tok, nil
}

func readAdminToken(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("appliance: cannot stat admin token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("appliance: admin token %s is not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("appliance: admin token %s has mode %#o, open to group or others; "+
			"anyone who reads it controls the admin API: chmod 600 %s", path, perm, path)
	}
	data, err := readBounded(path, maxAdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("appliance: cannot read admin token: %w", err)
	}
	tok := []byte(strings.TrimRight(string(data), " \t\r\n"))
	switch {
	case len(tok) < minAdminToken:
		return nil, fmt.Errorf("appliance: admin token %s is shorter than %d characters; "+
			"remove it to have a new one generated", path, minAdminToken)
	case strings.ContainsAny(string(tok), " \t\r\n"):
		return nil, fmt.Errorf("appliance: admin token %s contains whitespace; it must be one line", path)
	}
	return tok, nil
}

// readiness is what /readyz reports. Checks that do not decide readiness
// (the identity provider, which a gateway keeps serving without: issued
// tokens stay valid) are reported beside the ones that do.
type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
	Audit  *auditReadiness   `json:"audit,omitempty"`
}

// adminServer serves the admin listener. Safe for concurrent use.
type adminServer struct {
	token []byte
	ready func(context.Context) readiness
	mux   *http.ServeMux
	// api is the mux behind the bearer check, for /api/v1/ paths.
	api *http.ServeMux
}

// newAdminServer returns the admin handler; ready is called per /readyz.
func newAdminServer(token []byte, ready func(context.Context) readiness) *adminServer {
	a := &adminServer{token: token, ready: ready, mux: http.NewServeMux(), api: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := a.ready(r.Context())
		status := http.StatusOK
		if !rd.Ready {
			status = http.StatusServiceUnavailable
		}
		writeAdminJSON(w, status, rd)
	})
	a.mux.Handle("/api/v1/", a.authenticate(a.api))
	// Profiles behind the admin token (DESIGN.md section 9; issue 7):
	// a heap or goroutine dump shows request data.
	prof := http.NewServeMux()
	prof.HandleFunc("/debug/pprof/", pprof.Index)
	prof.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
	prof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.mux.Handle("/debug/pprof/", a.authenticate(prof))
	a.api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return a
}

func (a *adminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	a.mux.ServeHTTP(w, r)
}

// authenticate lets a request through only with "Authorization: Bearer
// <admin token>", compared in constant time. Endpoints that user tokens
// whose groups grant a role may call are served through roleAuth
// (admin_audit.go) instead.
func (a *adminServer) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearerToken(w, r)
		if !ok {
			return
		}
		if subtle.ConstantTimeCompare([]byte(tok), a.token) != 1 {
			writeInvalidToken(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the request's bearer token, or answers 401 when it
// has none.
func bearerToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpgw-admin"`)
		writeAdminError(w, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
		return "", false
	}
	return tok, true
}

// writeInvalidToken answers 401 to a bearer token nobody issued.
func writeInvalidToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="mcpgw-admin", error="invalid_token"`)
	writeAdminError(w, http.StatusUnauthorized, "unauthorized", "the bearer token is not valid")
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic("BUG: appliance: cannot encode admin response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeAdminError(w http.ResponseWriter, status int, code, msg string) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeAdminJSON(w, status, map[string]detail{"error": {Code: code, Message: msg}})
}

// newAdminHTTPServer wraps h with the timeouts of a listener that only
// operators and monitoring reach; net/http's own errors go to log.
func newAdminHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// listenAdmin binds the admin address before anything is served, so that a
// taken port is reported at start.
func listenAdmin(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (server.admin.listen): %w", addr, err)
	}
	return ln, nil
}
