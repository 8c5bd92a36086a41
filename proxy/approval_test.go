package proxy

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgw/mcpgw/jsonrpc"
)

// The approval refusal takes the form the client declared it can follow:
// -32042 in a 2025-11-25 session that declared URL elicitation, an
// input-required result for a 2026-07-28 client that declares it, -31002
// for everyone else.
func TestApprovalRefusalForms(t *testing.T) {
	up := startUpstream(t, false)
	// A 2026-07-28 upstream that records what it is sent.
	var modernMu sync.Mutex
	var modernBodies []string
	modern := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		modernMu.Lock()
		modernBodies = append(modernBodies, string(b))
		modernMu.Unlock()
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(b, &m)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"resultType":"complete","content":[{"type":"text","text":"deleted"}]}}`)
	}))
	t.Cleanup(modern.Close)
	appr := &fakeApprovals{grants: map[string]*[32]byte{}, requests: map[string]string{}}
	gw := startGatewayWith(t, func(s *Snapshot) { s.Approvals = appr },
		appDef{name: "app", path: "/mcp", upstream: up.url},
		appDef{name: "modern", path: "/modern", upstream: modern.URL + "/mcp"})
	const args = `{"environment":"prod"}`
	callBody := func(id int, extra string) string {
		return `{"jsonrpc":"2.0","id":` + string(rune('0'+id)) + `,"method":"tools/call","params":{"name":"delete_items","arguments":` + args + extra + `}}`
	}
	type rpcError struct {
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	decode := func(body string) (res map[string]any, e *rpcError) {
		t.Helper()
		var m struct {
			Result map[string]any `json:"result"`
			Error  *rpcError      `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return m.Result, m.Error
	}
	initialize := func(version, caps string) string {
		t.Helper()
		resp, body := post(t, gw.base+"/mcp", carolToken, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+version+
			`","capabilities":`+caps+`,"clientInfo":{"name":"t","version":"1"}}}`, nil)
		sid := resp.Header.Get("Mcp-Session-Id")
		if resp.StatusCode != 200 || sid == "" {
			t.Fatalf("initialize %s: %d %s", version, resp.StatusCode, body)
		}
		hdr := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": version}
		if resp, body := post(t, gw.base+"/mcp", carolToken, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr); resp.StatusCode != 202 {
			t.Fatalf("initialized: %d %s", resp.StatusCode, body)
		}
		return sid
	}
	legacyCall := func(version, caps string) (int, *rpcError) {
		t.Helper()
		sid := initialize(version, caps)
		resp, body := post(t, gw.base+"/mcp", carolToken, callBody(2, ""), map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": version})
		_, e := decode(body)
		if e == nil {
			t.Fatalf("%s %s: not refused: %s", version, caps, body)
		}
		return resp.StatusCode, e
	}

	t.Run("2025-11-25 with URL elicitation", func(t *testing.T) {
		status, e := legacyCall("2025-11-25", `{"elicitation":{"url":{},"form":{}}}`)
		var data struct {
			Elicitations []map[string]string `json:"elicitations"`
			ID           string              `json:"approval_request_id"`
			URL          string              `json:"approval_url"`
		}
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		if status != 200 || e.Code != jsonrpc.URLElicitationRequired || len(data.Elicitations) != 1 {
			t.Fatalf("got %d %d %s", status, e.Code, e.Data)
		}
		el := data.Elicitations[0]
		if el["mode"] != "url" || el["elicitationId"] != data.ID || el["url"] != gw.base+"/approvals/"+data.ID ||
			data.URL != el["url"] || el["message"] == "" {
			t.Errorf("elicitation %v, request %s %s", el, data.ID, data.URL)
		}
	})
	t.Run("2025-11-25 with form elicitation only", func(t *testing.T) {
		if _, e := legacyCall("2025-11-25", `{"elicitation":{"form":{}}}`); e.Code != codeApprovalRequired {
			t.Errorf("got %d %s, want -31002", e.Code, e.Data)
		}
	})
	t.Run("2025-06-18 declaring url", func(t *testing.T) {
		// URL mode does not exist before 2025-11-25.
		if _, e := legacyCall("2025-06-18", `{"elicitation":{"url":{}}}`); e.Code != codeApprovalRequired {
			t.Errorf("got %d %s, want -31002", e.Code, e.Data)
		}
	})

	modernHdr := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "delete_items"}
	meta := func(caps string) string {
		return `,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps + `}`
	}
	t.Run("2026-07-28 without URL elicitation", func(t *testing.T) {
		_, body := post(t, gw.base+"/modern", carolToken, callBody(3, meta(`{}`)), modernHdr)
		if _, e := decode(body); e == nil || e.Code != codeApprovalRequired {
			t.Errorf("got %s, want -31002", body)
		}
	})
	t.Run("2026-07-28 input required, then the retry", func(t *testing.T) {
		caps := meta(`{"elicitation":{"url":{}}}`)
		resp, body := post(t, gw.base+"/modern", carolToken, callBody(4, caps), modernHdr)
		res, e := decode(body)
		if resp.StatusCode != 200 || e != nil || res["resultType"] != "input_required" {
			t.Fatalf("got %d %s, want an input-required result", resp.StatusCode, body)
		}
		var ir struct {
			InputRequests map[string]struct {
				Method string            `json:"method"`
				Params map[string]string `json:"params"`
			} `json:"inputRequests"`
			RequestState string `json:"requestState"`
		}
		raw, _ := json.Marshal(res)
		_ = json.Unmarshal(raw, &ir)
		req, ok := ir.InputRequests[approvalKey]
		if !ok || req.Method != "elicitation/create" || req.Params["mode"] != "url" ||
			!strings.HasPrefix(req.Params["url"], gw.base+"/approvals/") || ir.RequestState != approvalState+req.Params["elicitationId"] {
			t.Fatalf("input requests %s", raw)
		}
		retry := callBody(5, `,"inputResponses":{"`+approvalKey+`":{"action":"accept"}},"requestState":"`+ir.RequestState+`"`+caps)
		// Not approved yet: asked again, for the same request.
		_, body = post(t, gw.base+"/modern", carolToken, retry, modernHdr)
		if res, _ := decode(body); res["resultType"] != "input_required" || !strings.Contains(body, ir.RequestState) {
			t.Fatalf("retry before approval: %s", body)
		}
		// Approved: the retry runs, without the gateway's state.
		h := sha256.Sum256([]byte(args))
		appr.mu.Lock()
		appr.grants["delete_items"] = &h
		appr.mu.Unlock()
		_, body = post(t, gw.base+"/modern", carolToken, retry, modernHdr)
		if res, e := decode(body); e != nil || res["resultType"] != "complete" {
			t.Fatalf("retry after approval: %s", body)
		}
		modernMu.Lock()
		sent := modernBodies
		modernMu.Unlock()
		if len(sent) != 1 || strings.Contains(sent[0], "requestState") || strings.Contains(sent[0], "inputResponses") ||
			!strings.Contains(sent[0], `"arguments":`+args) {
			t.Errorf("the upstream was sent %q, want the one approved call without the gateway's state", sent)
		}
		// A retry answering an input request the gateway never made is
		// refused: its upstream issued no state.
		forged := callBody(6, `,"inputResponses":{"other":{}},"requestState":"`+ir.RequestState+`"`+caps)
		resp, body = post(t, gw.base+"/modern", carolToken, forged, modernHdr)
		if _, e := decode(body); resp.StatusCode != 400 || e == nil || e.Code != jsonrpc.InvalidParams {
			t.Errorf("forged retry: got %d %s", resp.StatusCode, body)
		}
		appr.mu.Lock()
		delete(appr.grants, "delete_items")
		appr.mu.Unlock()
	})
}

func TestWithoutApprovalState(t *testing.T) {
	var s jsonrpc.Scanner
	var m jsonrpc.Message
	body := `{"jsonrpc":"2.0","id":"a1","method":"tools/call","params":{"name":"delete_items",` +
		`"arguments":{"x":[1, 2.50]},"inputResponses":{"` + approvalKey + `":{"action":"accept"}},` +
		`"_meta":{"progressToken":7},"requestState":"` + approvalState + `apr_1"}}`
	if err := s.Scan([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	got, ours, err := withoutApprovalState(nil, &m)
	if err != nil || !ours {
		t.Fatal(ours, err)
	}
	want := `{"jsonrpc":"2.0","id":"a1","method":"tools/call","params":{"name":"delete_items","arguments":{"x":[1, 2.50]},"_meta":{"progressToken":7}}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back jsonrpc.Message
	if err := s.Scan(got, &back); err != nil || string(back.Arguments) != `{"x":[1, 2.50]}` {
		t.Errorf("the stripped request does not scan the same: %v %s", err, back.Arguments)
	}
	scan := func(body string) *jsonrpc.Message {
		t.Helper()
		if err := s.Scan([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	// An upstream's own state, even one that mentions the gateway's
	// prefix elsewhere, is left alone.
	for _, other := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"note":"` + approvalState + `"},"requestState":"upstream-state"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"note":"` + approvalState + `"}}}`,
	} {
		if out, ours, err := withoutApprovalState([]byte("x"), scan(other)); err != nil || ours || string(out) != "x" {
			t.Errorf("%s: got %q %v %v, want it left alone", other, out, ours, err)
		}
	}
	// An escaped state is the gateway's all the same.
	escaped := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":"mcpgw\u002dapproval:apr_1"}}`
	if _, ours, err := withoutApprovalState(nil, scan(escaped)); err != nil || !ours {
		t.Errorf("escaped state: %v %v", ours, err)
	}
	// Two states cannot be read with certainty: the scanner refuses any
	// duplicate key in params.
	dup := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":"` + approvalState + `x","requestState":"other"}}`
	if err := s.Scan([]byte(dup), &m); err == nil {
		t.Error("the scanner accepted two requestState members")
	}
	for _, bad := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","inputResponses":[],"requestState":"` + approvalState + `x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","inputResponses":{"k":{}},"requestState":"` + approvalState + `x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":{"s":"` + approvalState + `x"}}}`,
	} {
		if _, _, err := withoutApprovalState(nil, scan(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
