package appliance

import (
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgw/mcpgw/access"
)

// /metrics (DESIGN.md section 9) on the admin listener, for Prometheus. It
// takes no credentials, like /healthz and /readyz: it carries counts and
// sizes, never a name, token or argument. Values are read at scrape time
// from the components' own counters; nothing is counted per message here.
//
// Audit (DESIGN.md section 6): spool size and fullness, records written,
// group commits, retention and drops, and the shipper's position, lag and
// failures. Just-in-time access: live grants and pending requests.

// newMetricsHandler registers the process and Go collectors, the audit
// gauges of rt and the just-in-time access gauges of approvals (either may
// be nil), and returns the /metrics handler.
func newMetricsHandler(rt *auditRuntime, approvals *access.Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if rt != nil {
		registerAuditMetrics(reg, rt)
	}
	if approvals != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mcpgw", Subsystem: "access", Name: "grants",
			Help: "Unexpired just-in-time grants."}, func() float64 { return float64(len(approvals.Grants("", ""))) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mcpgw", Subsystem: "access", Name: "pending_requests",
			Help: "Approval requests waiting for a decision."}, func() float64 {
			reqs, err := approvals.Requests(access.StatusPending)
			if err != nil {
				return math.NaN()
			}
			return float64(len(reqs))
		}))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func registerAuditMetrics(reg *prometheus.Registry, rt *auditRuntime) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mcpgw", Subsystem: "audit", Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mcpgw", Subsystem: "audit", Name: name, Help: help}, f))
	}
	l := rt.log
	gauge("spool_bytes", "Disk space of the audit spool, in bytes.", func() float64 { return float64(l.Stats().SpoolBytes) })
	gauge("spool_full", "1 while the spool is at audit.max_spool.", func() float64 { return boolMetric(l.Stats().Full) })
	gauge("head_seq", "Sequence number of the last record written.", func() float64 { return float64(l.Stats().Head) })
	gauge("failed", "1 once the spool has stopped after a write error.", func() float64 { return boolMetric(l.Err() != nil) })
	counter("records_total", "Records committed since start.", func() float64 { return float64(l.Stats().Records) })
	counter("batches_total", "Spool batches committed since start (in sync mode, fsyncs).", func() float64 { return float64(l.Stats().Batches) })
	counter("pruned_total", "Records deleted by retention since start.", func() float64 { return float64(l.Stats().Pruned) })
	counter("dropped_total", "Shipped records deleted to make room (when_full: drop_oldest_shipped) since start.", func() float64 { return float64(l.Stats().Dropped) })
	if s := rt.shipper; s != nil {
		gauge("shipped_seq", "Sequence number of the last record the control plane acknowledged.", func() float64 { return float64(s.Stats().Shipped) })
		gauge("ship_lag_records", "Records written and not yet acknowledged by the control plane.", func() float64 { return float64(s.Stats().Lag) })
		gauge("ship_lag_seconds", "Age of the oldest record not yet acknowledged.", func() float64 { return s.Stats().OldestUnshipped.Seconds() })
		counter("ship_batches_total", "Batches the control plane acknowledged since start.", func() float64 { return float64(s.Stats().Batches) })
		counter("ship_failures_total", "Failed attempts to ship a batch since start.", func() float64 { return float64(s.Stats().Failures) })
	}
}

func boolMetric(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
