package jsonrpc

import "testing"

func TestScanRequestStateAndClientCapabilities(t *testing.T) {
	var s Scanner
	var m Message
	body := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","arguments":{},` +
		`"inputResponses":{"k":{"action":"accept"}},"requestState":"st\u0061te",` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}}`)
	if err := s.Scan(body, &m); err != nil {
		t.Fatal(err)
	}
	if string(m.RequestState) != "state" {
		t.Fatalf("RequestState %q", m.RequestState)
	}
	if string(m.MetaClientCapabilities) != `{"elicitation":{"url":{}}}` {
		t.Fatalf("MetaClientCapabilities %q", m.MetaClientCapabilities)
	}
	// A requestState that is not a string cannot be read with certainty.
	bad := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","requestState":{}}}`)
	if err := s.Scan(bad, &m); err == nil {
		t.Fatal("non-string requestState accepted")
	}
	// Nor can one given twice.
	dup := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","requestState":"a","requestState":"b"}}`)
	if err := s.Scan(dup, &m); err == nil {
		t.Fatal("duplicate requestState accepted")
	}
	// Other methods ignore it.
	other := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"requestState":{}}}`)
	if err := s.Scan(other, &m); err != nil || m.RequestState != nil {
		t.Fatalf("tools/list: %v %q", err, m.RequestState)
	}
}
