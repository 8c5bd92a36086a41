package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The frontend's certificate pair: loaded at start, again on every reload,
// and whenever its files change (a certificate renewed in place by the
// host's tooling is served without a reload). Only new handshakes see a
// new pair; connections already open keep theirs.

// certPollInterval is how often the pair's files are looked at.
const certPollInterval = 2 * time.Second

// frontendTLSConfig is the frontend listener's TLS: 1.2 and 1.3 only;
// under 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM and
// ChaCha20-Poly1305), so every connection has forward secrecy; 1.3's
// suites are Go's (all AEAD). get gives the certificate of each handshake.
func frontendTLSConfig(get func() *tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		// The hybrid post-quantum exchange first (TLS 1.3 clients that
		// offer it), then the classic curves every client has.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return get(), nil
		},
	}
}

// loadCertPair reads and parses a PEM certificate chain and its key; the
// key must be the certificate's. Errors name the files, never their
// contents.
func loadCertPair(certPath, keyPath string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("cannot load TLS pair %s, %s: %w", certPath, keyPath, err)
	}
	if c.Leaf == nil {
		return nil, fmt.Errorf("cannot load TLS pair %s, %s: no certificate", certPath, keyPath)
	}
	return &c, nil
}

// certAttrs are the log attributes that identify a certificate (never its
// key).
func certAttrs(c *tls.Certificate) []any {
	l := c.Leaf
	return []any{"subject", l.Subject.String(), "dns_names", l.DNSNames,
		"serial", l.SerialNumber.Text(16), "not_after", l.NotAfter.UTC().Format(time.RFC3339)}
}

// certStore holds the pair the frontend serves and the files it came from.
type certStore struct {
	log *slog.Logger
	cur atomic.Pointer[tls.Certificate]

	mu       sync.Mutex // serializes loads; guards the fields below
	certPath string
	keyPath  string
	seen     [2]fileStamp // of the files when last loaded or tried
}

func newCertStore(log *slog.Logger) *certStore { return &certStore{log: log} }

// get returns the pair to serve.
func (s *certStore) get() *tls.Certificate { return s.cur.Load() }

// set serves c, loaded from certPath and keyPath, from now on (a start or
// a reload, which read the files themselves).
func (s *certStore) set(certPath, keyPath string, c *tls.Certificate, stamps [2]fileStamp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certPath, s.keyPath, s.seen = certPath, keyPath, stamps
	s.cur.Store(c)
}

// loadStampedPair stamps then reads the pair; the stamps are taken first, so that a
// file changed while it was read is seen as changed at the next poll.
func loadStampedPair(certPath, keyPath string) (*tls.Certificate, [2]fileStamp, error) {
	stamps := [2]fileStamp{statStamp(certPath), statStamp(keyPath)}
	c, err := loadCertPair(certPath, keyPath)
	return c, stamps, err
}

// poll loads the pair again when either file changed since the last load
// or try. A pair that does not load (a half-written file, a key that is not
// the certificate's) is logged and the running one kept; it is tried again
// when a file changes once more.
func (s *certStore) poll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certPath == "" {
		return
	}
	now := [2]fileStamp{statStamp(s.certPath), statStamp(s.keyPath)}
	if now == s.seen {
		return
	}
	c, stamps, err := loadStampedPair(s.certPath, s.keyPath)
	s.seen = stamps
	if err != nil {
		s.log.Warn("the TLS files changed but do not load; the running certificate is still served", "error", err.Error())
		return
	}
	s.cur.Store(c)
	s.log.Info("TLS certificate changed on disk; new connections get it", certAttrs(c)...)
	if time.Now().After(c.Leaf.NotAfter) {
		s.log.Warn("the new TLS certificate has expired", "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// watch polls the files every interval until ctx ends.
func (s *certStore) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.poll()
		}
	}
}

// fileStamp tells whether a file changed: a replaced file (rename over it)
// has another inode, one rewritten in place another size or time. A file
// that cannot be stat'ed is missing.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    int64
	missing  bool
}

func statStamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{missing: true}
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	return st
}

var errTLSSwitch = errors.New("switching TLS on or off needs a restart")
