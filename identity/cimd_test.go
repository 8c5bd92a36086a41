package identity

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cimdServer publishes client metadata documents over TLS on loopback.
type cimdServer struct {
	srv      *httptest.Server
	requests atomic.Int32
	release  chan struct{} // closed at cleanup: ends /slow
}

func startCIMDServer(t *testing.T) *cimdServer {
	t.Helper()
	s := &cimdServer{release: make(chan struct{})}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

func (s *cimdServer) url(path string) string { return s.srv.URL + path }

func (s *cimdServer) doc(path string) map[string]any {
	return map[string]any{
		"client_id":     s.url(path),
		"client_name":   "Example MCP Client",
		"client_uri":    "https://client.example.com",
		"redirect_uris": []string{"http://127.0.0.1:33418/callback", "https://client.example.com/oauth/callback"},
	}
}

func (s *cimdServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	doc := s.doc(r.URL.Path)
	ct := "application/json"
	switch r.URL.Path {
	case "/client.json":
		w.Header().Set("Cache-Control", "public, max-age=120")
	case "/vnd.json":
		ct = "application/client-metadata+json"
	case "/big.json":
		doc["padding"] = strings.Repeat("x", defaultCIMDMaxBytes)
	case "/mismatch.json":
		doc["client_id"] = s.url("/other.json")
	case "/noredirects.json":
		delete(doc, "redirect_uris")
	case "/secret.json":
		doc["client_secret"] = "s3cret"
		doc["token_endpoint_auth_method"] = "client_secret_post"
	case "/badredirect.json":
		doc["redirect_uris"] = []string{"http://evil.example.com/cb", "javascript:alert(1)"}
	case "/html":
		ct = "text/html"
	case "/array.json":
		w.Header().Set("Content-Type", ct)
		fmt.Fprint(w, `["not", "an", "object"]`)
		return
	case "/redirect.json":
		http.Redirect(w, r, "/client.json", http.StatusFound)
		return
	case "/missing.json":
		http.NotFound(w, r)
		return
	case "/slow.json":
		select {
		case <-r.Context().Done():
			// The client gave up. Abort rather than answer: an answer
			// written now can still reach a client whose closing races
			// with it (net/http uses a response that raced the close).
			panic(http.ErrAbortHandler)
		case <-s.release:
		case <-time.After(5 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", ct)
	_ = json.NewEncoder(w).Encode(doc)
}

func (s *cimdServer) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	return pool
}

func TestCIMDFetch(t *testing.T) {
	s := startCIMDServer(t)
	f := NewCIMDFetcher(CIMDConfig{AllowPrivate: true, RootCAs: s.roots(), Timeout: 3 * time.Second})
	short := NewCIMDFetcher(CIMDConfig{AllowPrivate: true, RootCAs: s.roots(), Timeout: 300 * time.Millisecond})
	tests := []struct {
		path    string
		want    *ClientMetadata
		wantErr error
		errText string
	}{
		{path: "/client.json", want: &ClientMetadata{
			ClientID: s.url("/client.json"), ClientName: "Example MCP Client", ClientURI: "https://client.example.com",
			RedirectURIs:  []string{"http://127.0.0.1:33418/callback", "https://client.example.com/oauth/callback"},
			GrantTypes:    []string{"authorization_code"},
			ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none",
		}},
		{path: "/vnd.json"},
		{path: "/big.json", wantErr: ErrCIMDInvalid, errText: "larger than"},
		{path: "/mismatch.json", wantErr: ErrCIMDInvalid, errText: "client_id is not the URL"},
		{path: "/noredirects.json", wantErr: ErrCIMDInvalid, errText: "no redirect_uris"},
		{path: "/secret.json", wantErr: ErrCIMDInvalid, errText: "client_secret"},
		{path: "/badredirect.json", wantErr: ErrCIMDInvalid, errText: "loopback hosts"},
		{path: "/array.json", wantErr: ErrCIMDInvalid, errText: "not a JSON object"},
		{path: "/html", wantErr: ErrCIMDFetch, errText: "text/html"},
		{path: "/redirect.json", wantErr: ErrCIMDFetch, errText: "redirects are not followed"},
		{path: "/missing.json", wantErr: ErrCIMDFetch, errText: "404"},
		{path: "/slow.json", wantErr: ErrCIMDFetch, errText: "no answer within"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := f
			if tt.path == "/slow.json" {
				f = short
			}
			got, err := f.Fetch(t.Context(), s.url(tt.path))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("got %v, want %v mentioning %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("metadata (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestCIMDRefusesPrivateTargets(t *testing.T) {
	s := startCIMDServer(t)
	f := NewCIMDFetcher(CIMDConfig{RootCAs: s.roots(), Timeout: time.Second})
	port := s.srv.URL[strings.LastIndexByte(s.srv.URL, ':')+1:]
	tests := []struct{ name, url string }{
		{"loopback by name (checked at dial time)", "https://localhost:" + port + "/client.json"},
		{"loopback literal", s.url("/client.json")},
		{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]:" + port + "/client.json"},
		{"private literal", "https://10.0.0.1/client.json"},
		{"cloud metadata service", "https://169.254.169.254/latest/meta-data"},
		{"CGNAT", "https://100.64.0.1/client.json"},
		{"IPv6 ULA", "https://[fd00::1]/client.json"},
		{"NAT64 of a private address", "https://[64:ff9b::a00:1]/client.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Fetch(t.Context(), tt.url)
			if !errors.Is(err, ErrCIMDFetch) || !errors.Is(err, errCIMDNotPublic) {
				t.Errorf("got %v, want ErrCIMDFetch: not public", err)
			}
		})
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("requests that reached the server: got %d, want 0", n)
	}
}

func TestCIMDPublicAddr(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"93.184.215.14", true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
		{"64:ff9b::5db8:d70e", true}, // NAT64 of 93.184.215.14
		{"127.0.0.1", false},
		{"::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"100.100.100.100", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"192.0.2.1", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fec0::1", false},
		{"ff02::1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:0:7f00:1", false},
		{"::7f00:1", false},
		{"2002:7f00:1::", false}, // 6to4 of 127.0.0.1
		{"2001::1", false},       // Teredo
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		if got := cimdPublicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("cimdPublicAddr(%s): got %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestCIMDClientIDForm(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"https://client.example.com/oauth/metadata.json", true},
		{"https://client.example.com:8443/id?v=1", true},
		{"http://client.example.com/metadata.json", false},
		{"https://client.example.com", false},
		{"https://client.example.com/", false},
		{"https://user:pw@client.example.com/m.json", false},
		{"https://client.example.com/m.json#x", false},
		{"https://client.example.com/a/../m.json", false},
		{"https://client.example.com/a/%2e%2e/m.json", false},
		{"my-registered-client", false},
		{"https://" + strings.Repeat("a", maxCIMDURL) + ".example.com/m.json", false},
	}
	for _, tt := range tests {
		if got := IsCIMDClientID(tt.id); got != tt.want {
			t.Errorf("IsCIMDClientID(%q): got %v, want %v", tt.id, got, tt.want)
		}
	}
	f := NewCIMDFetcher(CIMDConfig{})
	if _, err := f.Fetch(t.Context(), "my-registered-client"); !errors.Is(err, ErrCIMDClientID) {
		t.Errorf("Fetch of a plain client id: got %v, want ErrCIMDClientID", err)
	}
}

func TestCIMDCache(t *testing.T) {
	s := startCIMDServer(t)
	f := NewCIMDFetcher(CIMDConfig{AllowPrivate: true, RootCAs: s.roots()})
	now := time.Now()
	f.now = func() time.Time { return now }
	fetch := func(path string) error {
		md, err := f.Fetch(t.Context(), s.url(path))
		if err == nil {
			md.RedirectURIs[0] = "changed by the caller" // must not reach the cache
		}
		return err
	}
	steps := []struct {
		name         string
		path         string
		advance      time.Duration
		wantRequests int32
	}{
		{"first fetch", "/client.json", 0, 1},
		{"cached", "/client.json", 0, 1},
		{"within max-age=120", "/client.json", 119 * time.Second, 1},
		{"after max-age", "/client.json", 2 * time.Second, 2},
		{"a failure", "/missing.json", 0, 3},
		{"the failure, remembered", "/missing.json", defaultCIMDNegTTL - time.Second, 3},
		{"the failure, forgotten", "/missing.json", 2 * time.Second, 4},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		_ = fetch(st.path)
		if got := s.requests.Load(); got != st.wantRequests {
			t.Errorf("%s: requests got %d, want %d", st.name, got, st.wantRequests)
		}
	}
	md, err := f.Fetch(t.Context(), s.url("/client.json"))
	if err != nil || md.RedirectURIs[0] != "http://127.0.0.1:33418/callback" {
		t.Errorf("cached metadata after a caller changed its copy: got %v, %v", md, err)
	}
}

func TestCIMDCacheTTL(t *testing.T) {
	f := NewCIMDFetcher(CIMDConfig{})
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", defaultCIMDTTL},
		{"max-age=600", 10 * time.Minute},
		{"public, max-age=5", defaultCIMDMinTTL},
		{"no-store", defaultCIMDMinTTL},
		{"max-age=99999999999", defaultCIMDMaxTTL},
		{"max-age=junk", defaultCIMDTTL},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Cache-Control", tt.header)
		}
		if got := f.cacheTTL(h); got != tt.want {
			t.Errorf("Cache-Control %q: got %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestCIMDConcurrentFetchesShareOne(t *testing.T) {
	s := startCIMDServer(t)
	f := NewCIMDFetcher(CIMDConfig{AllowPrivate: true, RootCAs: s.roots()})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := f.Fetch(t.Context(), s.url("/client.json"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := s.requests.Load(); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

func TestCIMDCallerCancelNotCached(t *testing.T) {
	s := startCIMDServer(t)
	f := NewCIMDFetcher(CIMDConfig{AllowPrivate: true, RootCAs: s.roots()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Fetch(ctx, s.url("/client.json")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: got %v, want context.Canceled", err)
	}
	if _, err := f.Fetch(t.Context(), s.url("/client.json")); err != nil {
		t.Errorf("fetch after a cancelled one: got %v, want the document", err)
	}
}

var _ ClientMetadataFetcher = (*CIMDFetcher)(nil)

func FuzzParseCIMDDocument(f *testing.F) {
	const id = "https://client.example.com/m.json"
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":["https://client.example.com/cb"]}`))
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":["http://127.0.0.1/cb"],"client_name":"x","token_endpoint_auth_method":"private_key_jwt"}`))
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":"https://client.example.com/cb"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := parseCIMDDocument(body, id)
		if err != nil {
			if !errors.Is(err, ErrCIMDInvalid) {
				t.Fatalf("error %v does not wrap ErrCIMDInvalid", err)
			}
			return
		}
		if md.ClientID != id || len(md.RedirectURIs) == 0 || md.TokenEndpointAuthMethod == "" ||
			strings.HasPrefix(md.TokenEndpointAuthMethod, "client_secret") {
			t.Fatalf("accepted %+v", md)
		}
		for _, r := range md.RedirectURIs {
			if checkCIMDRedirectURI(r) != nil {
				t.Fatalf("accepted redirect_uri %q", r)
			}
		}
	})
}

func FuzzCIMDClientID(f *testing.F) {
	for _, s := range []string{"https://c.example.com/m.json", "https://c.example.com/a/%2E./m", "https://[::1]:8443/x", "http://c/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		u, err := parseCIMDClientID(id)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || u.Path == "" || u.Path == "/" {
			t.Fatalf("accepted %q", id)
		}
	})
}
