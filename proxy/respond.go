package proxy

import (
	"github.com/valyala/fasthttp"

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

// writeUnauthorized answers 401 with a Bearer challenge (RFC 6750 section 3).
func writeUnauthorized(ctx *fasthttp.RequestCtx, errCode string) {
	challenge := `Bearer realm="mcpgw"`
	if errCode != "" {
		challenge += `, error="` + errCode + `"`
	}
	ctx.Response.Header.Set("WWW-Authenticate", challenge)
	writeRPCError(ctx, fasthttp.StatusUnauthorized, nil, jsonrpc.InvalidRequest, msgUnauthorized)
}

// handleReadError answers requests fasthttp could not read: oversize
// bodies get 413, everything else 400, both with a JSON-RPC error body.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
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
