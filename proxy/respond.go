package proxy

import (
	"github.com/valyala/fasthttp"
	"strings"

	"github.com/mcpgw/mcpgw/jsonrpc"
)

// writeRPCError answers with a JSON-RPC error body. id is the raw id token
// of the request (nil for id-less errors, written as null).
func writeRPCError(ctx *fasthttp.RequestCtx, status int, id []byte, code int, msg string) {
	writeRPCErrorData(ctx, status, id, code, msg, nil)
}

func writeRPCErrorData(ctx *fasthttp.RequestCtx, status int, id []byte, code int, msg string, data []byte) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("application/json")
	// Error paths are not the hot path: a small allocation is fine here.
	ctx.Response.SetBodyRaw(jsonrpc.AppendError(make([]byte, 0, 128+len(msg)+len(id)+len(data)), id, code, msg, data))
}

func writePlainError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString(msg)
}

// writeUnauthorized answers 401 with a Bearer challenge (RFC 6750 section
// 3) that names the application's protected resource metadata (RFC 9728
// section 5.1), so a client can discover where to log in
// (MCP-REQUIREMENTS.md 4).
func (r *route) writeUnauthorized(ctx *fasthttp.RequestCtx, errCode string) {
	challenge := r.challenge
	if errCode != "" {
		challenge += `, error="` + errCode + `"`
	}
	ctx.Response.Header.Set("WWW-Authenticate", challenge)
	writeRPCError(ctx, fasthttp.StatusUnauthorized, nil, jsonrpc.InvalidRequest, msgUnauthorized)
}

// bearerChallenge is the fixed part of an application's 401 challenge.
// It names no scope: applications define none, and a challenge without
// scope leaves the choice to the authorization server's metadata
// (MCP-REQUIREMENTS.md 4). The URL comes from the configuration, which
// refuses quotes and backslashes in it; they are dropped here all the
// same, so that a challenge can never be broken open.
func bearerChallenge(app *Application) string {
	quoteSafe := func(s string) string {
		return strings.Map(func(c rune) rune {
			if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
				return -1
			}
			return c
		}, s)
	}
	c := `Bearer realm="mcpgw"`
	if app.ResourceMetadata != "" {
		c += `, resource_metadata="` + quoteSafe(app.ResourceMetadata) + `"`
	}
	return c
}

// handleReadError answers requests fasthttp could not read: oversize
// bodies get 413, everything else 400, both with a JSON-RPC error body.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
	s.metrics.other[otherUnreadable].Add(1)
	s.setRequestIDSlow(ctx)
	if _, ok := err.(*fasthttp.ErrSmallBuffer); ok {
		writePlainError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large")
		return
	}
	if err == fasthttp.ErrBodyTooLarge {
		writeRPCError(ctx, fasthttp.StatusRequestEntityTooLarge, nil, jsonrpc.InvalidRequest, msgTooLarge)
		return
	}
	writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.ParseError, msgParse)
}
