package appliance

import (
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgw/mcpgw/access"
	"github.com/mcpgw/mcpgw/proxy"
)

// /metrics (DESIGN.md section 9) on the admin listener, for Prometheus. It
// takes no credentials, like /healthz and /readyz: it carries counts and
// sizes, never a name, token or argument. Values are read at scrape time
// from the components' own counters; nothing is counted per message here.
//
// The proxy: requests by application, method and decision, their latency,
// upstream failures, live streams, sessions, cache hits and misses
// (proxyCollector). Audit (DESIGN.md section 6): spool size and fullness,
// records written, group commits, retention and drops, and the shipper's
// position, lag and failures. Just-in-time access: live grants and pending
// requests.

// newMetricsHandler registers the process and Go collectors, the proxy's
// counters of srv, the audit gauges of rt and the just-in-time access
// gauges of approvals (any may be nil), and returns the /metrics handler.
func newMetricsHandler(rt *auditRuntime, approvals *access.Service, srv *proxy.Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if srv != nil {
		reg.MustRegister(newProxyCollector(srv.Metrics))
	}
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

// proxyCollector exports the proxy's counters, read once per scrape
// (proxy.Server.Metrics). The labels are bounded: app names come from the
// configuration, method is one of the MCP methods the gateway knows or a
// fixed class (none, other, response, batch, GET, DELETE, OPTIONS), never
// what a client sent.
type proxyCollector struct {
	metrics func() *proxy.Metrics

	requests, latency, upstreamErrors, streams   *prometheus.Desc
	sessionsStarted, sessionsEnded, sessionsLive *prometheus.Desc
	cacheHits, cacheMisses, other                *prometheus.Desc
}

func newProxyCollector(metrics func() *proxy.Metrics) *proxyCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mcpgw_"+name, help, labels, nil)
	}
	return &proxyCollector{
		metrics: metrics,
		requests: desc("requests_total", "Frontend requests to an application's MCP endpoint, by the JSON-RPC method of the message "+
			"a POST carries (or none: refused before it was read; other: unknown; response; batch) or the HTTP method "+
			"(GET, DELETE, OPTIONS), and decision: allow (sent upstream; DELETE and OPTIONS served), deny (policy), "+
			"approval_required, refused (bad form, session, audit or transport checks), unauthenticated (401).",
			"app", "method", "decision"),
		latency: desc("request_duration_seconds", "Time from a request's arrival (once read) to its answer's head: for an SSE "+
			"answer the time to the stream's start, not its end. Same requests and methods as mcpgw_requests_total.",
			"app", "method"),
		upstreamErrors: desc("upstream_errors_total", "Failed exchanges with an application's upstream MCP server: connect "+
			"(no connection), timeout (no answer or a silence past the upstream timeout), status_5xx, auth (401/403 to the "+
			"gateway's credentials), bad_response (not readable with certainty), disconnect (the connection ended mid-answer, "+
			"SSE streams included).",
			"app", "kind"),
		streams: desc("active_streams", "Live SSE streams relayed to clients: response (a POST's streamed answer, until its "+
			"last answer) and listen (a standalone GET stream or a 2026-07-28 subscriptions/listen).",
			"app", "kind"),
		sessionsStarted: desc("sessions_started_total", "MCP sessions the gateway minted (initialize answered with a session id).", "app"),
		sessionsEnded:   desc("sessions_ended_total", "MCP sessions the client ended with DELETE (most clients never do).", "app"),
		sessionsLive: desc("sessions_active", "Estimated distinct MCP sessions that sent at least one request in the current "+
			"minute and the four before it. Session ids are stateless: nothing records which sessions are open, so this "+
			"counts sessions in use, not sessions open (linear counting, within about 2% up to 50,000).",
			"app"),
		cacheHits: desc("cache_hits_total", "Cache lookups answered from the cache: policy (decisions), token (verified "+
			"bearer tokens), session (opened session ids). Hit ratio: rate(hits) / (rate(hits) + rate(misses)).", "cache"),
		cacheMisses: desc("cache_misses_total", "Cache lookups not answered from the cache (see mcpgw_cache_hits_total).", "cache"),
		other: desc("other_requests_total", "Frontend requests that reach no application's MCP endpoint: identity (OAuth and "+
			"metadata endpoints), approvals (the approval page), not_found, unreadable (refused before routing: too large, "+
			"malformed).", "kind"),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.latency, c.upstreamErrors, c.streams, c.sessionsStarted,
		c.sessionsEnded, c.sessionsLive, c.cacheHits, c.cacheMisses, c.other} {
		ch <- d
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.metrics()
	for _, a := range m.Apps {
		for _, r := range a.Requests {
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(r.Count), a.App, r.Method, r.Decision)
		}
		for _, h := range a.Latency {
			buckets := make(map[float64]uint64, len(m.LatencyBounds))
			for i, le := range m.LatencyBounds {
				buckets[le] = h.Cumulative[i]
			}
			ch <- prometheus.MustNewConstHistogram(c.latency, h.Count, h.SumSeconds, buckets, a.App, h.Method)
		}
		for _, v := range a.UpstreamErrors {
			ch <- prometheus.MustNewConstMetric(c.upstreamErrors, prometheus.CounterValue, v.Value, a.App, v.Label)
		}
		for _, v := range a.Streams {
			ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, v.Value, a.App, v.Label)
		}
		ch <- prometheus.MustNewConstMetric(c.sessionsStarted, prometheus.CounterValue, float64(a.SessionsStarted), a.App)
		ch <- prometheus.MustNewConstMetric(c.sessionsEnded, prometheus.CounterValue, float64(a.SessionsEnded), a.App)
		ch <- prometheus.MustNewConstMetric(c.sessionsLive, prometheus.GaugeValue, a.SessionsActive, a.App)
	}
	for _, cm := range m.Caches {
		ch <- prometheus.MustNewConstMetric(c.cacheHits, prometheus.CounterValue, float64(cm.Hits), cm.Cache)
		ch <- prometheus.MustNewConstMetric(c.cacheMisses, prometheus.CounterValue, float64(cm.Misses), cm.Cache)
	}
	for _, v := range m.Other {
		ch <- prometheus.MustNewConstMetric(c.other, prometheus.CounterValue, v.Value, v.Label)
	}
}

func boolMetric(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
