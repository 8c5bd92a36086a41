package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamClient is the pair of connection pools to one upstream origin.
//
// Every upstream connection bounds its silence (deadlineConn): an upstream
// may take as long as it likes in total, but may not stay silent for longer
// than the idle bound. Standalone GET streams (which may be idle for hours)
// use a second pool without that bound.
type upstreamClient struct {
	key    string
	calls  *upPool // POST/DELETE: idle bound = upstream timeout
	listen *upPool // GET server streams: no idle bound
}

func (s *Server) clientFor(u *url.URL, idle time.Duration) (*upstreamClient, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("upstream URL must be http or https")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	key := u.Scheme + "://" + addr + "|" + idle.String()
	if c, ok := s.clients[key]; ok {
		return c, nil
	}
	var tlsConf *tls.Config
	if u.Scheme == "https" {
		tlsConf = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	// Calls read whole JSON answers (a 1,000-tool list is ~100 KiB), so a
	// larger buffer saves reads.
	// Each GET stream holds its upstream connection for its whole life, so
	// that pool is bounded by file descriptors, not by a small cap.
	// A GET stream's buffer holds its response headers (an SSE answer's are
	// a few hundred bytes) and then small events; 2 KiB of ten thousand
	// streams is 20 MiB.
	c := &upstreamClient{
		key:    key,
		calls:  newUpPool(addr, tlsConf, idle, 16<<10, 4096),
		listen: newUpPool(addr, tlsConf, 0, 2<<10, 1<<20),
	}
	s.clients[key] = c
	return c, nil
}

func (c *upstreamClient) close() {
	c.calls.close()
	c.listen.close()
}

// Request heads. A route renders the fixed part of each of its upstream
// requests once (renderPrefixes); appendUpstreamRequest adds what varies.

// carriedHeaders go from the client to the upstream (DESIGN.md section 4).
// Everything else, Authorization, cookies, Forwarded and X-Forwarded-*
// included, stays at the gateway.
var carriedHeaders = [...]string{"Mcp-Protocol-Version", "Last-Event-Id", "Mcp-Method", "Mcp-Name"}

// renderPrefixes renders r's request lines, Host, Accept, Content-Type and
// the configured headers. It fails on a value that would break the head
// open (the configuration refuses those already).
func (r *route) renderPrefixes() error {
	var injected []byte
	for _, h := range r.headers {
		if !validHeaderValue([]byte(h.Value)) || !validHeaderName(h.Name) {
			return fmt.Errorf("header %q: not a valid HTTP header", h.Name)
		}
		injected = append(injected, h.Name+": "+h.Value+"\r\n"...)
	}
	line := func(method, accept string) []byte {
		b := []byte(method + " " + r.upPath + " HTTP/1.1\r\nHost: " + r.upHost + "\r\nAccept: " + accept + "\r\n")
		if method == fasthttp.MethodPost {
			b = append(b, "Content-Type: application/json\r\n"...)
		}
		return append(b, injected...)
	}
	if strings.ContainsAny(r.upPath+r.upHost, " \r\n\x00") {
		return errors.New("upstream URL: not a valid request target")
	}
	r.postHead = line(fasthttp.MethodPost, "application/json, text/event-stream")
	r.getHead = line(fasthttp.MethodGet, "text/event-stream")
	r.deleteHead = line(fasthttp.MethodDelete, "application/json, text/event-stream")
	return nil
}

// appendUpstreamRequest appends the whole upstream request for a client
// request: head is one of r's rendered prefixes; the client's carried
// headers, the upstream's session id and body follow. The client's
// session id is replaced by the upstream's. ok is false when a carried
// header value cannot be relayed with certainty (a control character).
func (r *route) appendUpstreamRequest(dst, head []byte, rh *reqHeaders, client *fasthttp.RequestHeader, upstreamSID string, body []byte, withBody bool) ([]byte, bool) {
	dst = append(dst, head...)
	carried := [...][]byte{rh.protocolVersion, rh.lastEventID, rh.method, rh.name}
	for i, name := range carriedHeaders {
		if v := carried[i]; len(v) > 0 && !r.injects(name) {
			if !validHeaderValue(v) {
				return dst, false
			}
			dst = appendHeader(dst, name, v)
		}
	}
	if rh.params {
		for k, v := range client.All() {
			if isParamHeader(k) && !r.injects(string(k)) {
				if !validHeaderValue(v) {
					return dst, false
				}
				dst = appendHeader(dst, k, v)
			}
		}
	}
	if upstreamSID != "" {
		dst = append(dst, "Mcp-Session-Id: "...)
		dst = append(dst, upstreamSID...)
		dst = append(dst, "\r\n"...)
	}
	if withBody {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n\r\n"...)
		return append(dst, body...), true
	}
	return append(dst, "\r\n"...), true
}

func appendHeader[N string | []byte](dst []byte, name N, v []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

// injects reports whether the application's configured headers set name;
// a configured header wins over the client's.
func (r *route) injects(name string) bool {
	for _, h := range r.headers {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// validHeaderValue allows visible ASCII, space, tab and bytes >= 0x80
// (RFC 9110 section 5.5); CR, LF, NUL and other controls are refused.
func validHeaderValue(v []byte) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
