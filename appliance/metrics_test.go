package appliance

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/proxy"
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
	h := newMetricsHandler(rt, nil, nil)
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

// TestProxyCollector exports a fixed snapshot through a pedantic registry
// (which checks every metric against its description) and reads the text
// format back.
func TestProxyCollector(t *testing.T) {
	snap := &proxy.Metrics{
		LatencyBounds: []float64{0.001, 0.01},
		Apps: []proxy.AppMetrics{{
			App:             "crm",
			Requests:        []proxy.RequestCount{{Method: "tools/call", Decision: "allow", Count: 3}, {Method: "tools/call", Decision: "deny", Count: 1}},
			Latency:         []proxy.LatencyHistogram{{Method: "tools/call", Cumulative: []uint64{1, 3}, Count: 4, SumSeconds: 0.5}},
			UpstreamErrors:  []proxy.LabeledValue{{Label: "connect", Value: 2}, {Label: "timeout"}},
			Streams:         []proxy.LabeledValue{{Label: "response"}, {Label: "listen", Value: 1}},
			SessionsStarted: 5, SessionsEnded: 1, SessionsActive: 4,
		}},
		Other:  []proxy.LabeledValue{{Label: "not_found", Value: 7}},
		Caches: []proxy.CacheMetrics{{Cache: "policy", Hits: 9, Misses: 1}},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newProxyCollector(func() *proxy.Metrics { return snap }))
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("got %d: %s", rec.Code, rec.Body)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`mcpgw_requests_total{app="crm",decision="allow",method="tools/call"} 3`,
		`mcpgw_requests_total{app="crm",decision="deny",method="tools/call"} 1`,
		`mcpgw_request_duration_seconds_bucket{app="crm",method="tools/call",le="0.001"} 1`,
		`mcpgw_request_duration_seconds_bucket{app="crm",method="tools/call",le="0.01"} 3`,
		`mcpgw_request_duration_seconds_bucket{app="crm",method="tools/call",le="+Inf"} 4`,
		`mcpgw_request_duration_seconds_sum{app="crm",method="tools/call"} 0.5`,
		`mcpgw_request_duration_seconds_count{app="crm",method="tools/call"} 4`,
		`mcpgw_upstream_errors_total{app="crm",kind="connect"} 2`,
		`mcpgw_upstream_errors_total{app="crm",kind="timeout"} 0`,
		`mcpgw_active_streams{app="crm",kind="listen"} 1`,
		`mcpgw_sessions_started_total{app="crm"} 5`,
		`mcpgw_sessions_ended_total{app="crm"} 1`,
		`mcpgw_sessions_active{app="crm"} 4`,
		`mcpgw_cache_hits_total{cache="policy"} 9`,
		`mcpgw_cache_misses_total{cache="policy"} 1`,
		`mcpgw_other_requests_total{kind="not_found"} 7`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}
