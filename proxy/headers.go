package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// reqHeaders holds the request headers the gateway reads, found in one
// pass over the request's headers. Looking each up by name cost a pass and
// a key normalization per name (eleven per proxied call); the values are
// fasthttp's, valid until the handler returns.
type reqHeaders struct {
	origin, authorization, sessionID, protocolVersion []byte
	method, name, lastEventID, requestID              []byte

	seen, repeated uint8 // hdr* bits
	params         bool  // an Mcp-Param-* header is present

	// outcome is not a header: it is what the request came to, filled in
	// as it is served and counted when it ends (metrics.go).
	outcome outcome
}

const (
	hdrOrigin uint8 = 1 << iota
	hdrAuthorization
	hdrSessionID
	hdrProtocolVersion
	hdrMethod
	hdrName
	hdrLastEventID
	hdrRequestID
)

func (rh *reqHeaders) read(h *fasthttp.RequestHeader) {
	for k, v := range h.All() {
		var bit uint8
		var dst *[]byte
		switch len(k) {
		case len("Origin"):
			if bytes.EqualFold(k, []byte("Origin")) {
				bit, dst = hdrOrigin, &rh.origin
			}
		case len("Mcp-Name"):
			if bytes.EqualFold(k, []byte("Mcp-Name")) {
				bit, dst = hdrName, &rh.name
			}
		case len("Mcp-Method"):
			if bytes.EqualFold(k, []byte("Mcp-Method")) {
				bit, dst = hdrMethod, &rh.method
			}
		case len("Authorization"): // and len("Last-Event-Id")
			if bytes.EqualFold(k, []byte("Authorization")) {
				bit, dst = hdrAuthorization, &rh.authorization
			} else if bytes.EqualFold(k, []byte("Last-Event-Id")) {
				bit, dst = hdrLastEventID, &rh.lastEventID
			}
		case len("X-Request-Id"):
			if bytes.EqualFold(k, []byte("X-Request-Id")) {
				bit, dst = hdrRequestID, &rh.requestID
			}
		case len("Mcp-Session-Id"):
			if bytes.EqualFold(k, []byte("Mcp-Session-Id")) {
				bit, dst = hdrSessionID, &rh.sessionID
			}
		case len("Mcp-Protocol-Version"):
			if bytes.EqualFold(k, []byte("Mcp-Protocol-Version")) {
				bit, dst = hdrProtocolVersion, &rh.protocolVersion
			}
		}
		if bit == 0 {
			if isParamHeader(k) {
				rh.params = true
			}
			continue
		}
		if rh.seen&bit != 0 {
			rh.repeated |= bit
			continue // the first value stays, as Peek gave it
		}
		rh.seen |= bit
		*dst = v
	}
}

// isParamHeader reports whether k names a 2026-07-28 custom parameter
// header (Mcp-Param-*), which is carried upstream untouched
// (MCP-REQUIREMENTS.md 1.8.5).
func isParamHeader(k []byte) bool {
	return len(k) > len("Mcp-Param-") && bytes.EqualFold(k[:len("Mcp-Param-")], []byte("Mcp-Param-"))
}

// single returns the value of a header that must not repeat: a repeated
// one cannot be read with certainty (P-13), so ok is false. An absent one
// is nil.
func (rh *reqHeaders) single(bit uint8, v []byte) ([]byte, bool) {
	if rh.repeated&bit != 0 {
		return nil, false
	}
	return v, true
}
