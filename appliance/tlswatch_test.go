package appliance

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testpki"
)

func TestCertStorePoll(t *testing.T) {
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(cert, key []byte) {
		t.Helper()
		if cert != nil {
			writeFile(t, dir, "cert.pem", string(cert))
		}
		if key != nil {
			writeFile(t, dir, "key.pem", string(key))
		}
	}
	c1, k1 := ca.Issue(t, 101, time.Now().Add(time.Hour), "localhost")
	write(c1, k1)
	var logs bytes.Buffer // poll runs on this goroutine
	s := newCertStore(slog.New(slog.NewJSONHandler(&logs, nil)))
	c, stamps, err := loadStampedPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s.set(certPath, keyPath, c, stamps)
	serial := func() int64 { return s.get().Leaf.SerialNumber.Int64() }

	s.poll()
	if serial() != 101 {
		t.Fatalf("poll without a change: serial %d, want 101", serial())
	}

	// A renewal written in place: the certificate first, then its key.
	// In between the pair does not match; the old one keeps serving.
	c2, k2 := ca.Issue(t, 102, time.Now().Add(time.Hour), "localhost")
	write(c2, nil)
	s.poll()
	if serial() != 101 {
		t.Errorf("certificate without its key: serial %d, want the old 101", serial())
	}
	if !strings.Contains(logs.String(), "do not load") {
		t.Errorf("a pair that does not load was not logged: %s", logs.String())
	}
	s.poll() // no change since the failed try: not tried again, not logged again
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("the same broken pair was logged %d times, want once", n)
	}
	write(nil, k2)
	s.poll()
	if serial() != 102 {
		t.Errorf("after the key was written: serial %d, want 102", serial())
	}
	out := logs.String()
	for _, want := range []string{`"serial":"66"`, `"subject":"CN=mcpgw test 102"`, `"not_after"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the new certificate's log lacks %s: %s", want, out)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, string(k2[30:60])) {
		t.Errorf("key material in the log: %s", out)
	}

	// Replaced by rename (as certbot and most tools do).
	c3, k3 := ca.Issue(t, 103, time.Now().Add(time.Hour), "localhost")
	writeFile(t, dir, "cert.new", string(c3))
	writeFile(t, dir, "key.new", string(k3))
	if err := os.Rename(filepath.Join(dir, "key.new"), keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "cert.new"), certPath); err != nil {
		t.Fatal(err)
	}
	s.poll()
	if serial() != 103 {
		t.Errorf("after a rename: serial %d, want 103", serial())
	}

	// Garbage and a missing file keep the running pair.
	write([]byte("not a certificate"), nil)
	s.poll()
	os.Remove(keyPath)
	s.poll()
	if serial() != 103 {
		t.Errorf("after garbage and a removed key: serial %d, want 103", serial())
	}
}

// TestFrontendTLSConfig checks what the frontend negotiates: 1.3 by
// default, 1.2 only with ECDHE and AEAD, nothing older.
func TestFrontendTLSConfig(t *testing.T) {
	ca := testpki.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, 7, time.Now().Add(time.Hour), "127.0.0.1")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", frontendTLSConfig(func() *tls.Certificate { return &pair }))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		cfg.RootCAs = ca.Pool
		cfg.ServerName = "127.0.0.1"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		return c.ConnectionState(), nil
	}
	st, err := dial(&tls.Config{})
	if err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("default client: version %x, error %v; want TLS 1.3", st.Version, err)
	}
	st, err = dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 client: version %x, error %v; want TLS 1.2", st.Version, err)
	}
	if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Errorf("a TLS 1.1 handshake succeeded")
	}
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA} {
		if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}); err == nil {
			t.Errorf("TLS 1.2 with %s succeeded", tls.CipherSuiteName(suite))
		}
	}
	st, err = dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}})
	if err != nil || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Errorf("TLS 1.2 with ChaCha20-Poly1305: suite %x, error %v", st.CipherSuite, err)
	}
}
