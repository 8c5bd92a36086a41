package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamClient is a pooled connection set to one upstream origin.
//
// fasthttp applies a read deadline to a whole response, body stream
// included, so a long SSE stream cannot be bounded by its ReadTimeout.
// Instead every upstream connection is an idleConn whose reads each get a
// fresh deadline: an upstream may take as long as it likes in total, but may
// not stay silent for longer than the idle bound. Standalone GET streams
// (which may be idle for hours) use a second pool without that bound.
type upstreamClient struct {
	key    string
	calls  *fasthttp.HostClient // POST/DELETE: idle bound = upstream timeout
	listen *fasthttp.HostClient // GET server streams: no idle bound
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
	isTLS := u.Scheme == "https"
	mk := func(idle time.Duration, readBuf, maxConns int) *fasthttp.HostClient {
		d := &idleDialer{idle: idle}
		hc := &fasthttp.HostClient{
			Addr:                          addr,
			Name:                          "mcpgw",
			IsTLS:                         isTLS,
			Dial:                          d.dial,
			MaxConns:                      maxConns,
			MaxIdleConnDuration:           30 * time.Second,
			WriteTimeout:                  30 * time.Second,
			StreamResponseBody:            true,
			DisablePathNormalizing:        true,
			DisableHeaderNamesNormalizing: false,
			NoDefaultUserAgentHeader:      true,
			ReadBufferSize:                readBuf,
			// The gateway decides about retries: a non-idempotent POST must
			// never be sent twice.
			RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		}
		if isTLS {
			hc.TLSConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
		return hc
	}
	// Calls read whole JSON answers (a 1,000-tool list is ~100 KiB), so a
	// larger buffer saves reads.
	// Each GET stream holds its upstream connection for its whole life, so
	// that pool is bounded by file descriptors, not by a small cap.
	// A GET stream's buffer holds its response headers (an SSE answer's are
	// a few hundred bytes) and then small events; 2 KiB of ten thousand
	// streams is 20 MiB.
	c := &upstreamClient{key: key, calls: mk(idle, 16<<10, 4096), listen: mk(0, 2<<10, 1<<20)}
	s.clients[key] = c
	return c, nil
}

func (c *upstreamClient) close() {
	c.calls.CloseIdleConnections()
	c.listen.CloseIdleConnections()
}

// idleDialer dials connections that refresh their read deadline on every
// read.
type idleDialer struct{ idle time.Duration }

func (d *idleDialer) dial(addr string) (net.Conn, error) {
	conn, err := fasthttp.DialTimeout(addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if d.idle <= 0 {
		return conn, nil
	}
	return &idleConn{Conn: conn, idle: d.idle}, nil
}

// idleConn bounds the silence between reads. Setting a deadline is a timer
// update, so it is refreshed only when an eighth of the bound has passed.
type idleConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last deadline set
}

func (c *idleConn) Read(p []byte) (int, error) {
	now := time.Now()
	if now.UnixNano()-c.last.Load() > int64(c.idle/8) {
		c.last.Store(now.UnixNano())
		if err := c.Conn.SetReadDeadline(now.Add(c.idle)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}
