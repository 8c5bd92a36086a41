package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
)

// CORS for browser clients (MCP-REQUIREMENTS.md P-3): the MCP headers must
// be allowed, and MCP-Session-Id and WWW-Authenticate exposed.
const (
	corsAllowHeaders  = "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name, X-Request-Id"
	corsExposeHeaders = "Mcp-Session-Id, WWW-Authenticate, MCP-Protocol-Version, X-Request-Id"
	corsAllowMethods  = "GET, POST, DELETE, OPTIONS"
	allowMethods      = "GET, POST, DELETE, OPTIONS"
)

// Handle serves one frontend request. It is the fasthttp handler of the
// Server and is exported for tests that drive the proxy in memory.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	st := s.state.Load()
	r, hostKnown := st.lookup(ctx, s.tls)
	if r == nil {
		s.setRequestIDSlow(ctx)
		if hostKnown && st.identity != nil && isIdentityPath(ctx.Path()) {
			// OAuth and metadata endpoints are served on every frontend
			// host; their own handler sets CORS (browser clients fetch
			// metadata and tokens cross-origin).
			s.metrics.other[otherIdentity].Add(1)
			st.identity(ctx)
			return
		}
		if hostKnown && st.pages != nil && isApprovalsPath(ctx.Path()) {
			// The approval page (its own login, cookies and CSRF checks).
			s.metrics.other[otherApprovals].Add(1)
			st.pages(ctx)
			return
		}
		s.metrics.other[otherNotFound].Add(1)
		writePlainError(ctx, fasthttp.StatusNotFound, "Not Found")
		return
	}

	var rh reqHeaders
	rh.read(&ctx.Request.Header)
	requestID, ok := rh.single(hdrRequestID, rh.requestID)
	s.setRequestID(ctx, requestID, ok)
	defer s.observe(ctx, r, &rh.outcome)
	origin, ok := rh.single(hdrOrigin, rh.origin)
	if !ok {
		writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgAmbiguousHeaders)
		return
	}
	if origin != nil {
		// A present but foreign Origin is refused (MCP-REQUIREMENTS.md
		// 1.1.2); "null" and opaque origins never match (P-24).
		if !r.originAllowed(origin) {
			writeRPCError(ctx, fasthttp.StatusForbidden, nil, jsonrpc.InvalidRequest, msgBadOrigin)
			return
		}
		h := &ctx.Response.Header
		h.SetBytesV("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		h.Set("Vary", "Origin")
	}

	switch {
	case ctx.IsPost():
		p := s.authenticate(ctx, st, r, &rh)
		if p == nil {
			return
		}
		s.servePost(ctx, r, p, &rh)
	case ctx.IsGet():
		p := s.authenticate(ctx, st, r, &rh)
		if p == nil {
			return
		}
		s.serveGet(ctx, r, p, &rh)
	case ctx.IsDelete():
		p := s.authenticate(ctx, st, r, &rh)
		if p == nil {
			return
		}
		s.serveDelete(ctx, r, p, &rh)
	case ctx.IsOptions():
		// CORS preflight carries no credentials by design.
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Methods", corsAllowMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		h.Set("Allow", allowMethods)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		ctx.Response.Header.Set("Allow", allowMethods)
		writePlainError(ctx, fasthttp.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

// lookup routes by Host and path. The Host header must name a configured
// frontend (on loopback listeners this is also the DNS-rebinding check of
// MCP-REQUIREMENTS.md 1.1.3: a foreign Host reaches no application).
//
// hostKnown reports whether Host names a frontend at all, so that the
// identity endpoints are served on frontend hosts only.
func (st *state) lookup(ctx *fasthttp.RequestCtx, tls bool) (r *route, hostKnown bool) {
	var kb [256]byte
	key, ok := appendHostKey(kb[:0], ctx.Host(), tls)
	if !ok {
		return nil, false
	}
	routes := st.routes[string(key)]
	if len(routes) == 0 {
		return nil, false
	}
	path := ctx.Path()
	if len(path) > 1 && path[len(path)-1] == '/' {
		// Both spellings are served, never redirected (P-5).
		path = path[:len(path)-1]
	}
	for _, r := range routes {
		if string(path) == r.path {
			return r, true
		}
	}
	return nil, true
}

// isIdentityPath reports whether path belongs to the identity endpoints:
// the metadata documents (RFC 9728, RFC 8414 and OpenID discovery, in
// their plain and path-suffixed forms) and the authorization server.
func isIdentityPath(path []byte) bool {
	return bytes.HasPrefix(path, []byte("/.well-known/oauth-protected-resource")) ||
		bytes.HasPrefix(path, []byte("/.well-known/oauth-authorization-server")) ||
		bytes.HasPrefix(path, []byte("/.well-known/openid-configuration")) ||
		bytes.HasPrefix(path, []byte("/oauth/"))
}

// appendHostKey writes the lower-case host:port of a Host header, with the
// default port made explicit.
func appendHostKey(dst, host []byte, tls bool) ([]byte, bool) {
	if len(host) == 0 || len(host) > 200 {
		return dst, false
	}
	hasPort := false
	if host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return dst, false
		}
		hasPort = end+1 < len(host) && host[end+1] == ':'
	} else {
		hasPort = bytes.IndexByte(host, ':') >= 0
	}
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	if !hasPort {
		if tls {
			dst = append(dst, ":443"...)
		} else {
			dst = append(dst, ":80"...)
		}
	}
	return dst, true
}

func (r *route) originAllowed(origin []byte) bool {
	var buf [256]byte
	if len(origin) > len(buf) {
		return false
	}
	o := buf[:0]
	for _, c := range origin {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		o = append(o, c)
	}
	return string(o) == r.origin || r.origins[string(o)]
}

// authenticate yields the caller's principal or answers 401 and returns nil.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, st *state, r *route, rh *reqHeaders) *identity.Principal {
	if r.authNone {
		return identity.AnonymousPrincipal
	}
	authz, ok := rh.single(hdrAuthorization, rh.authorization)
	if !ok {
		r.writeUnauthorized(ctx, "invalid_request")
		return nil
	}
	token, ok := identity.BearerToken(authz)
	if !ok {
		r.writeUnauthorized(ctx, "")
		return nil
	}
	if st.snap.DevUsers != nil && (s.loopback || st.snap.AllowDevUsersRemote) {
		if p, ok := st.snap.DevUsers.Lookup(token); ok {
			return p
		}
	}
	if st.snap.Tokens != nil {
		if p, err := st.snap.Tokens.Verify(token, r.resource); err == nil && p != nil {
			return p
		}
	}
	r.writeUnauthorized(ctx, "invalid_token")
	return nil
}
