package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/auditlog"
)

// openAudit opens a spool in a temporary directory, closed at cleanup.
func openAudit(t *testing.T, opts auditlog.Options) *auditlog.Log {
	t.Helper()
	l, err := auditlog.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// auditRecords waits until done holds for the records written so far (the
// outcome records are enqueued, not waited for) and returns them.
func auditRecords(t *testing.T, l *auditlog.Log, done func([]*auditlog.Record) bool) []*auditlog.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var recs []*auditlog.Record
		if err := l.Scan(0, func(r *auditlog.Record) bool { recs = append(recs, r); return true }); err != nil {
			t.Fatal(err)
		}
		if done(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			for _, r := range recs {
				line, _ := json.Marshal(r)
				t.Logf("%s", line)
			}
			t.Fatalf("the records above never completed (%d)", len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// find returns the records that match.
func find(recs []*auditlog.Record, match func(*auditlog.Record) bool) []*auditlog.Record {
	var out []*auditlog.Record
	for _, r := range recs {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

func TestAuditRecordsEveryMessage(t *testing.T) {
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			up := startUpstream(t, era.name == "modern")
			l := openAudit(t, auditlog.Options{NodeID: "gw"})
			gw := startGatewayOpts(t, Options{Audit: l}, func(s *Snapshot) {
				s.Audit = AuditPolicy{Arguments: ArgumentsRedacted, Redact: regexp.MustCompile(`(?i)^environment$`)}
			}, appDef{name: "app", path: "/mcp", upstream: up.url})
			alice := connect(t, gw.base+"/mcp", aliceToken, era.version, nil)
			if got := toolNames(t, alice); len(got) != 3 {
				t.Fatalf("alice sees %v", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			params := &mcp.CallToolParams{Name: "slow_progress", Arguments: map[string]any{"environment": "prod"}}
			params.SetProgressToken("tok-1")
			if res, err := alice.CallTool(ctx, params); err != nil || res.IsError {
				t.Fatalf("slow_progress: %v %v", res, err)
			}
			if _, err := callTool(alice, "get_secret", nil); err == nil || !strings.Contains(err.Error(), "Unknown tool") {
				t.Fatalf("get_secret: got %v, want a denial", err)
			}

			isCall := func(r *auditlog.Record) bool { return r.Method == "tools/call" && r.Name == "slow_progress" }
			// The denial came last; its record is enqueued, like the
			// outcomes, so the wait covers it too.
			recs := auditRecords(t, l, func(recs []*auditlog.Record) bool {
				return len(find(recs, func(r *auditlog.Record) bool { return isCall(r) && r.Message == auditlog.MessageResponse })) == 1 &&
					len(find(recs, func(r *auditlog.Record) bool { return r.Name == "get_secret" })) == 1
			})
			if err := l.Verify(); err != nil {
				t.Errorf("Verify: %v", err)
			}
			for _, r := range recs {
				if r.App != "app" || r.User != "alice@example.com" || r.ResourceType != "MCP" {
					t.Errorf("record %s: app %q user %q resource_type %q", r.ID, r.App, r.User, r.ResourceType)
				}
			}

			// The call: its request (decided, arguments redacted), its
			// progress tied to it, and its outcome.
			req := find(recs, func(r *auditlog.Record) bool { return isCall(r) && r.Message == auditlog.MessageRequest })
			if len(req) != 1 {
				t.Fatalf("got %d request records of the call, want 1", len(req))
			}
			c := req[0]
			if c.Direction != auditlog.ClientToServer || c.Decision != auditlog.DecisionAllow || c.Rule != "readers" ||
				string(c.Arguments) != `{"environment":"[redacted]"}` || string(c.ProgressToken) != `"tok-1"` || c.BytesIn == 0 {
				t.Errorf("call record: %+v", c)
			}
			progress := find(recs, func(r *auditlog.Record) bool { return r.Method == "notifications/progress" })
			if len(progress) != 3 {
				t.Errorf("got %d progress records, want 3", len(progress))
			}
			for _, p := range progress {
				if string(p.JSONRPCID) != string(c.JSONRPCID) || p.Name != "slow_progress" || string(p.ProgressToken) != `"tok-1"` ||
					p.Direction != auditlog.ServerToClient || p.Message != auditlog.MessageNotification {
					t.Errorf("progress record not tied to the call %s: %+v", c.JSONRPCID, p)
				}
			}
			out := find(recs, func(r *auditlog.Record) bool { return isCall(r) && r.Message == auditlog.MessageResponse })[0]
			if out.Status != auditlog.StatusOK || string(out.JSONRPCID) != string(c.JSONRPCID) || out.LatencyUS <= 0 || out.BytesOut == 0 || out.Seq <= c.Seq {
				t.Errorf("outcome record: %+v", out)
			}

			// The denial: recorded with its rule and reason, no outcome.
			denied := find(recs, func(r *auditlog.Record) bool { return r.Name == "get_secret" })
			if len(denied) != 1 || denied[0].Decision != auditlog.DecisionDeny || denied[0].Rule != "readers" ||
				denied[0].Reason != "denied_by_rule" || denied[0].Status != auditlog.StatusError {
				t.Errorf("denial records: %+v", denied)
			}

			// The list: what alice was actually served.
			list := find(recs, func(r *auditlog.Record) bool {
				return r.Method == "tools/list" && r.Message == auditlog.MessageResponse
			})
			if len(list) != 1 {
				t.Fatalf("got %d tools/list outcomes, want 1", len(list))
			}
			var served struct {
				Count int      `json:"count"`
				Names []string `json:"names"`
			}
			if err := json.Unmarshal(list[0].Served, &served); err != nil {
				t.Fatalf("served %s: %v", list[0].Served, err)
			}
			slices.Sort(served.Names)
			if want := []string{"get_item", "list_items", "slow_progress"}; served.Count != 3 || !cmp.Equal(served.Names, want) {
				t.Errorf("served: got %d %v, want 3 %v", served.Count, served.Names, want)
			}

			// Sessions: legacy clients open one, recorded with the device
			// and the negotiated version, and end it.
			if era.name == "modern" {
				if s := find(recs, func(r *auditlog.Record) bool { return r.Kind == auditlog.KindSession }); len(s) != 0 {
					t.Errorf("modern: got session records %+v", s)
				}
				if c.SessionID != "" || c.ProtocolVersion != "2026-07-28" || !slices.Equal(c.Groups, []string{"engineers"}) || c.Device.RemoteAddr == "" {
					t.Errorf("modern call record: session %q version %q groups %v device %+v", c.SessionID, c.ProtocolVersion, c.Groups, c.Device)
				}
				return
			}
			started := find(recs, func(r *auditlog.Record) bool { return r.Kind == auditlog.KindSession && r.Status == "started" })
			if len(started) != 1 {
				t.Fatalf("got %d session starts, want 1", len(started))
			}
			s := started[0]
			if len(s.SessionID) != 24 || s.Device.ClientName != "proxy-test" || s.Device.ClientVersion != "1" || s.Device.UserAgent == "" ||
				!strings.HasPrefix(s.Device.RemoteAddr, "127.0.0.1:") || s.ProtocolVersion != era.version || !slices.Equal(s.Groups, []string{"engineers"}) {
				t.Errorf("session record: %+v", s)
			}
			if c.SessionID != s.SessionID || len(c.Groups) != 0 || c.Device != (auditlog.Device{}) {
				t.Errorf("call record in session %s: session %q groups %v device %+v", s.SessionID, c.SessionID, c.Groups, c.Device)
			}
			init := find(recs, func(r *auditlog.Record) bool {
				return r.Method == "initialize" && r.Message == auditlog.MessageResponse
			})
			if len(init) != 1 || init[0].SessionID != s.SessionID || init[0].Status != auditlog.StatusOK {
				t.Errorf("initialize outcome: %+v", init)
			}
			alice.Close()
			auditRecords(t, l, func(recs []*auditlog.Record) bool {
				return len(find(recs, func(r *auditlog.Record) bool {
					return r.Kind == auditlog.KindSession && r.Status == "ended" && r.SessionID == s.SessionID
				})) == 1
			})
		})
	}
}

func TestAuditArgumentsModes(t *testing.T) {
	up := startUpstream(t, true)
	for _, tc := range []struct {
		name   string
		policy AuditPolicy
		want   string
	}{
		{"full", AuditPolicy{}, `{"environment":"dev"}`},
		{"none", AuditPolicy{Arguments: ArgumentsNone}, ``},
		{"redacted, no match", AuditPolicy{Arguments: ArgumentsRedacted, Redact: regexp.MustCompile(`secret`)}, `{"environment":"dev"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openAudit(t, auditlog.Options{Durability: auditlog.Async})
			gw := startGatewayOpts(t, Options{Audit: l}, func(s *Snapshot) { s.Audit = tc.policy },
				appDef{name: "app", path: "/mcp", upstream: up.url})
			alice := connect(t, gw.base+"/mcp", aliceToken, "2026-07-28", nil)
			if res, err := callTool(alice, "get_item", map[string]any{"environment": "dev"}); err != nil || res.IsError {
				t.Fatalf("get_item: %v %v", res, err)
			}
			recs := auditRecords(t, l, func(recs []*auditlog.Record) bool {
				return len(find(recs, func(r *auditlog.Record) bool { return r.Name == "get_item" })) == 2
			})
			req := find(recs, func(r *auditlog.Record) bool { return r.Name == "get_item" && r.Message == auditlog.MessageRequest })
			if string(req[0].Arguments) != tc.want {
				t.Errorf("arguments: got %s, want %s", req[0].Arguments, tc.want)
			}
		})
	}
}

// TestAuditFailsClosed: a call the gateway cannot record is not made.
func TestAuditFailsClosed(t *testing.T) {
	up := startUpstream(t, true)
	call := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_items","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	list := `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	hdr := func(method, name string) map[string]string {
		h := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
		if name != "" {
			h["Mcp-Name"] = name
		}
		return h
	}

	t.Run("spool full, when_full reject", func(t *testing.T) {
		l := openAudit(t, auditlog.Options{MaxSpool: 1})
		gw := startGatewayOpts(t, Options{Audit: l}, func(s *Snapshot) { s.Audit.RejectWhenFull = true },
			appDef{name: "app", path: "/mcp", upstream: up.url})
		before := up.count("list_items")
		resp, body := post(t, gw.base+"/mcp", aliceToken, call, hdr("tools/call", "list_items"))
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"code":-31004`) {
			t.Errorf("tools/call with a full spool: got %d %s, want 503 and -31004", resp.StatusCode, body)
		}
		if up.count("list_items") != before {
			t.Error("the refused call reached the upstream")
		}
		resp, body = post(t, gw.base+"/mcp", aliceToken, list, hdr("tools/list", ""))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"tools"`) {
			t.Errorf("tools/list with a full spool: got %d %s, want it served", resp.StatusCode, body)
		}
		recs := auditRecords(t, l, func(recs []*auditlog.Record) bool { return len(recs) >= 3 })
		if r := find(recs, func(r *auditlog.Record) bool { return r.Name == "list_items" }); len(r) != 1 || r[0].Decision != auditlog.DecisionRefused {
			t.Errorf("refused call records: %+v", r)
		}
	})

	t.Run("spool stopped", func(t *testing.T) {
		l := openAudit(t, auditlog.Options{})
		gw := startGatewayOpts(t, Options{Audit: l}, nil, appDef{name: "app", path: "/mcp", upstream: up.url})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		before := up.count("list_items")
		resp, body := post(t, gw.base+"/mcp", aliceToken, call, hdr("tools/call", "list_items"))
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"code":-31004`) {
			t.Errorf("tools/call with the spool stopped: got %d %s, want 503 and -31004", resp.StatusCode, body)
		}
		if up.count("list_items") != before {
			t.Error("the unrecorded call reached the upstream")
		}
	})
}
