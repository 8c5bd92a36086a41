package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/policycache"
)

// The benchmarks here drive the whole proxy over loopback: a fasthttp
// client, the gateway, and a canned fasthttp backend, so a CPU profile of
// them (-cpuprofile) shows what the gateway costs per message. Baseline:
// the same client against the backend directly, in the same file.

var cannedCall = []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`)

func startCannedBackend(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(cannedCall)
	}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/mcp"
}

func startBenchGateway(b *testing.B, upstream string, audit *auditlog.Log) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	codec, _ := identity.NewSessionCodec(key)
	srv, _ := New(Options{Sessions: codec, Loopback: true, Audit: audit})
	pol, err := policycache.Compile([]policycache.AppSpec{{Name: "app", Rules: []policycache.RuleSpec{
		{Name: "readers", Groups: []string{"engineers"}, Tools: []string{"list_.*", "get_.*", "echo"}, DenyTools: []string{"get_secret.*"}},
	}}}, policycache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pol.Close)
	front, _ := url.Parse("http://" + ln.Addr().String() + "/mcp")
	up, _ := url.Parse(upstream)
	err = srv.Update(&Snapshot{
		Applications:    []Application{{Name: "app", Frontend: front, Upstream: up, Headers: []Header{{Name: "X-Api-Key", Value: "k"}}}},
		Policy:          pol,
		DevUsers:        identity.NewDevUsers([]identity.DevUser{{Token: aliceToken, User: "alice@example.com", Groups: []string{"engineers"}}}),
		MaxBody:         4 << 20,
		UpstreamTimeout: 10 * time.Second,
		KeepAlive:       25 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return front.String()
}

// toolsCall2KiB is a tools/call whose arguments come first (the scanner's
// worst key order) and weigh 2 KiB.
func toolsCall2KiB() []byte {
	return []byte(`{"params":{"arguments":{"data":"` + strings.Repeat("x", 2048) + `"},"name":"echo"},"jsonrpc":"2.0","id":1,"method":"tools/call"}`)
}

func benchPost(b *testing.B, endpoint string, body []byte) {
	u, _ := url.Parse(endpoint)
	hc := &fasthttp.HostClient{Addr: u.Host, MaxConns: 64}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(endpoint)
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+aliceToken)
			req.SetBodyRaw(body)
			if err := hc.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"result"`)) {
				b.Fatalf("got %d %s", resp.StatusCode(), resp.Body())
			}
		}
	})
}

// BenchmarkToolsCallDirect is the baseline: the client against the backend.
func BenchmarkToolsCallDirect(b *testing.B) {
	benchPost(b, startCannedBackend(b), toolsCall2KiB())
}

// BenchmarkToolsCallGateway is the same exchange through the gateway:
// authentication, scan, decision, forward, relay.
func BenchmarkToolsCallGateway(b *testing.B) {
	benchPost(b, startBenchGateway(b, startCannedBackend(b), nil), toolsCall2KiB())
}

// BenchmarkToolsCallGatewayAudit adds the audit spool: each call's request
// record (durable before forward in sync mode, with group commit) and its
// outcome record.
func BenchmarkToolsCallGatewayAudit(b *testing.B) {
	for _, d := range []auditlog.Durability{auditlog.Sync, auditlog.Async} {
		b.Run(d.String(), func(b *testing.B) {
			l, err := auditlog.Open(b.TempDir(), auditlog.Options{Durability: d})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close() })
			benchPost(b, startBenchGateway(b, startCannedBackend(b), l), toolsCall2KiB())
		})
	}
}
