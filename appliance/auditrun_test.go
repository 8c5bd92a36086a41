package appliance

import (
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auditlog"
)

// TestAuditShipsWithClientCredentials: with audit.ship.auth
// client_credentials, the shipper gets its token from the env file's
// OIDC_TOKEN_URL with the gateway's OIDC client id and secret, and sends
// it with every batch.
func TestAuditShipsWithClientCredentials(t *testing.T) {
	var mu sync.Mutex
	var tokenRequests []string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		r.ParseForm()
		mu.Lock()
		tokenRequests = append(tokenRequests, user+":"+pass+" "+r.PostForm.Get("grant_type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"ship-token-1","token_type":"Bearer","expires_in":3600}`)
	}))
	defer idp.Close()
	var lines []string
	var auths []string
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "gzip", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(zr)
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		lines = append(lines, strings.Split(strings.TrimSpace(string(body)), "\n")...)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer ingest.Close()

	cfg := &Config{
		Identity: IdentityConfig{Env: map[string]Secret{
			"OIDC_CLIENT_ID":     {value: "gateway-client"},
			"OIDC_CLIENT_SECRET": {value: "gateway-secret"},
			"OIDC_TOKEN_URL":     {value: idp.URL + "/token"},
		}},
		Audit: AuditConfig{
			Dir: t.TempDir(), Durability: "sync", MaxSpool: 1 << 30, WhenFull: "reject", Arguments: "full", Retention: time.Hour,
			Ship: ShipConfig{URL: ingest.URL + "/ingest", Auth: "client_credentials", Batch: 100, Interval: 10 * time.Millisecond},
		},
	}
	rt, err := startAudit(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close()
	for range 5 {
		if _, err := rt.log.Append(&auditlog.Record{Kind: auditlog.KindActivity, Method: "tools/call"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for rt.shipper.Stats().Shipped < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("not shipped after 5 s: %+v", rt.shipper.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tokenRequests) == 0 || tokenRequests[0] != "gateway-client:gateway-secret client_credentials" {
		t.Errorf("token requests: got %q, want the gateway's client with grant_type client_credentials", tokenRequests)
	}
	for _, a := range auths {
		if a != "Bearer ship-token-1" {
			t.Errorf("a batch came with Authorization %q, want Bearer ship-token-1", a)
		}
	}
	if len(lines) != 5 {
		t.Errorf("got %d records at the receiver, want 5", len(lines))
	}
}
