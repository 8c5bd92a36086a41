package appliance

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auditlog"
)

func TestMetricsShowAudit(t *testing.T) {
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer ingest.Close()
	cfg := &Config{Audit: AuditConfig{
		Dir: t.TempDir(), Durability: "async", MaxSpool: 1 << 30, WhenFull: "reject", Arguments: "full",
		Retention: time.Hour, Ship: ShipConfig{URL: ingest.URL, Auth: "none", Batch: 10, Interval: 10 * time.Millisecond},
	}}
	rt, err := startAudit(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close()
	for range 3 {
		if _, err := rt.log.Append(&auditlog.Record{Kind: auditlog.KindActivity, Method: "tools/call"}); err != nil {
			t.Fatal(err)
		}
	}
	h := newMetricsHandler(rt, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		text := string(body)
		want := []string{"mcpgw_audit_head_seq 3", "mcpgw_audit_ship_lag_records 3", "mcpgw_audit_spool_full 0", "mcpgw_audit_spool_bytes ", "go_goroutines "}
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
			}
		}
		if missing == "" && !strings.Contains(text, "mcpgw_audit_ship_failures_total 0\n") && strings.Contains(text, "mcpgw_audit_ship_failures_total") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s /metrics lacks %q or shows no ship failure:\n%s", missing, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
