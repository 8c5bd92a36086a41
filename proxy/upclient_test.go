package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawUpstream is a TCP server that answers each request on a connection
// with the next canned answer, byte for byte, and records the requests.
type rawUpstream struct {
	ln       net.Listener
	answers  func(conn, req int) string // "": close without answering; "!...": answer, then close
	mu       sync.Mutex
	requests []string
	conns    atomic.Int64
}

func startRaw(t *testing.T, answers func(conn, req int) string) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, answers: answers}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(u.conns.Add(1)) - 1
			go u.serve(c, n)
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn, conn int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for req := 0; ; req++ {
		var head strings.Builder
		length := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
				length = atoiOr(strings.TrimSpace(v))
			}
			if line == "\r\n" {
				break
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		u.mu.Lock()
		u.requests = append(u.requests, head.String()+string(body))
		u.mu.Unlock()
		a := u.answers(conn, req)
		if a == "" {
			return
		}
		closeAfter := strings.HasPrefix(a, "!")
		if _, err := io.WriteString(c, strings.TrimPrefix(a, "!")); err != nil || closeAfter {
			return
		}
	}
}

func atoiOr(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func (u *rawUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

func roundTrip(t *testing.T, p *upPool, body string) (int, string, error) {
	t.Helper()
	req := []byte("POST /mcp HTTP/1.1\r\nHost: up\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body)
	resp := acquireUpResponse()
	defer releaseUpResponse(resp)
	if err := p.do(req, resp); err != nil {
		return 0, "", err
	}
	b, err := resp.readBodyInto(nil, 1<<20)
	return resp.StatusCode(), string(b), err
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestUpPoolBodies(t *testing.T) {
	cases := []struct {
		name     string
		answer   string
		want     string
		wantErr  bool
		wantKeep bool // the connection is reused for the next request
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello", "hello", false, true},
		{"empty", "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", "", false, true},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", "", false, true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", false, true},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", "hello", false, true},
		{"chunked upper-case hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", "0123456789", false, true},
		{"interim response first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", false, true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", false, false},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "", true, false},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n", "", true, false},
		{"huge chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := startRaw(t, func(conn, req int) string { return c.answer })
			p := newUpPool(up.ln.Addr().String(), nil, 2*time.Second, 4096, 16)
			t.Cleanup(func() { p.close() })
			_, got, err := roundTrip(t, p, "{}")
			if (err != nil) != c.wantErr {
				t.Fatalf("error: got %v, want error %v", err, c.wantErr)
			}
			if err == nil && got != c.want {
				t.Errorf("body: got %q, want %q", got, c.want)
			}
			if c.wantErr {
				return
			}
			if _, _, err := roundTrip(t, p, "{}"); err != nil {
				t.Fatalf("second request: %v", err)
			}
			wantConns := int64(2)
			if c.wantKeep {
				wantConns = 1
			}
			if got := up.conns.Load(); got != wantConns {
				t.Errorf("connections for two requests: got %d, want %d", got, wantConns)
			}
		})
	}
}

func TestUpPoolBodyLimit(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + strings.Repeat("a", 100) + "\r\n0\r\n\r\n",
	} {
		up := startRaw(t, func(conn, req int) string { return answer })
		p := newUpPool(up.ln.Addr().String(), nil, 2*time.Second, 4096, 16)
		req := []byte("POST /mcp HTTP/1.1\r\nHost: up\r\nContent-Length: 0\r\n\r\n")
		resp := acquireUpResponse()
		if err := p.do(req, resp); err != nil {
			t.Fatal(err)
		}
		if _, err := resp.readBodyInto(nil, 50); !errors.Is(err, errBodyTooLarge) {
			t.Errorf("got %v, want errBodyTooLarge", err)
		}
		releaseUpResponse(resp)
		p.close()
	}
}

// An upstream that closes a kept-alive connection before answering cannot
// have acted on the request: it is sent once more on a new connection. One
// that answered part of a response before breaking off is not retried.
func TestUpPoolRetry(t *testing.T) {
	t.Run("closed before answering is retried once", func(t *testing.T) {
		up := startRaw(t, func(conn, req int) string {
			if conn == 0 && req == 1 {
				return "" // the kept-alive connection dies on its second use
			}
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		})
		p := newUpPool(up.ln.Addr().String(), nil, 2*time.Second, 4096, 16)
		defer p.close()
		for i := range 2 {
			if _, got, err := roundTrip(t, p, "{}"); err != nil || got != "ok" {
				t.Fatalf("request %d: got %q, %v; want ok", i, got, err)
			}
		}
		if got := up.count(); got != 3 {
			t.Errorf("requests the upstream read: got %d, want 3 (one resent)", got)
		}
	})
	t.Run("a fresh connection is not retried", func(t *testing.T) {
		up := startRaw(t, func(conn, req int) string { return "" })
		p := newUpPool(up.ln.Addr().String(), nil, 2*time.Second, 4096, 16)
		defer p.close()
		if _, _, err := roundTrip(t, p, "{}"); err == nil {
			t.Fatal("got no error, want one")
		}
		if got := up.count(); got != 1 {
			t.Errorf("requests the upstream read: got %d, want 1", got)
		}
	})
	t.Run("a partial answer is not retried", func(t *testing.T) {
		up := startRaw(t, func(conn, req int) string {
			if req == 1 {
				return "!HTTP/1.1 200 OK\r\nContent-Le"
			}
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		})
		p := newUpPool(up.ln.Addr().String(), nil, 2*time.Second, 4096, 16)
		defer p.close()
		if _, _, err := roundTrip(t, p, "{}"); err != nil {
			t.Fatal(err)
		}
		// The upstream closes after a partial head: the request may have
		// been acted on, so it is not sent again.
		if _, _, err := roundTrip(t, p, "{}"); err == nil {
			t.Fatal("got no error, want one")
		}
		if got := up.count(); got != 2 {
			t.Errorf("requests the upstream read: got %d, want 2", got)
		}
	})
}

func TestUpPoolSilenceBound(t *testing.T) {
	up := startRaw(t, func(conn, req int) string {
		time.Sleep(400 * time.Millisecond)
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	p := newUpPool(up.ln.Addr().String(), nil, 100*time.Millisecond, 4096, 16)
	defer p.close()
	_, _, err := roundTrip(t, p, "{}")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
}

func TestUpPoolMaxConns(t *testing.T) {
	release := make(chan struct{})
	up := startRaw(t, func(conn, req int) string {
		<-release
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	p := newUpPool(up.ln.Addr().String(), nil, 2*time.Second, 4096, 1)
	defer p.close()
	done := make(chan error)
	go func() {
		_, _, err := roundTrip(t, p, "{}")
		done <- err
	}()
	for up.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, _, err := roundTrip(t, p, "{}"); !errors.Is(err, errUpstreamConns) {
		t.Errorf("second concurrent request: got %v, want errUpstreamConns", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("first request: %v", err)
	}
	if got := p.open.Load(); got != 1 {
		t.Errorf("open connections: got %d, want 1 (kept idle)", got)
	}
}

func TestAppendUpstreamRequest(t *testing.T) {
	r := &route{upPath: "/mcp?x=1", upHost: "up.internal:8080", headers: []Header{{Name: "X-Api-Key", Value: "k"}, {Name: "Mcp-Name", Value: "forced"}}}
	if err := r.renderPrefixes(); err != nil {
		t.Fatal(err)
	}
	var h fasthttp.RequestHeader
	h.Set("Mcp-Protocol-Version", "2025-11-25")
	h.Set("Mcp-Name", "from-client")
	h.Set("Mcp-Param-Region", "eu")
	h.Set("Authorization", "Bearer secret")
	h.Set("X-Forwarded-For", "1.2.3.4")
	var rh reqHeaders
	rh.read(&h)
	got, ok := r.appendUpstreamRequest(nil, r.postHead, &rh, &h, "up-sid", []byte(`{}`), true)
	if !ok {
		t.Fatal("refused")
	}
	want := "POST /mcp?x=1 HTTP/1.1\r\nHost: up.internal:8080\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n" +
		"X-Api-Key: k\r\nMcp-Name: forced\r\nMcp-Protocol-Version: 2025-11-25\r\nMcp-Param-Region: eu\r\nMcp-Session-Id: up-sid\r\nContent-Length: 2\r\n\r\n{}"
	if string(got) != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	h.Set("Mcp-Method", "tools/call\x01")
	rh = reqHeaders{}
	rh.read(&h)
	if _, ok := r.appendUpstreamRequest(nil, r.postHead, &rh, &h, "", nil, true); ok {
		t.Error("a control character in a carried header was relayed")
	}
	bad := &route{upPath: "/mcp", upHost: "up", headers: []Header{{Name: "X-Key", Value: "a\r\nInjected: 1"}}}
	if err := bad.renderPrefixes(); err == nil {
		t.Error("a configured header with CRLF was accepted")
	}
}

// FuzzChunked reads arbitrary bytes as a chunked body, beside net/http's
// chunked reader: whatever both accept must decode to the same bytes, and
// nothing may panic or read past the body's end.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{"5\r\nhello\r\n0\r\n\r\n", "5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n", "A\r\n0123456789\r\n0\r\n\r\n", "0\r\n\r\n", "zz\r\n", "5\r\nhelloX", "fffffffffffffffff\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const tail = "NEXT"
		r := &upResponse{mode: bodyChunked, c: &upConn{br: bufio.NewReader(strings.NewReader(string(in) + tail))}}
		got, err := io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil {
			return
		}
		if !r.done {
			return // the limit cut it off
		}
		want, werr := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(string(in))))
		if werr == nil && string(got) != string(want) {
			t.Fatalf("decoded %q, net/http decoded %q", got, want)
		}
		rest, _ := io.ReadAll(r.c.br)
		if !strings.HasSuffix(string(rest), tail) {
			t.Fatalf("read past the body: left %q", rest)
		}
	})
}

func TestReqHeaders(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Set("origin", "http://a")
	h.Set("AUTHORIZATION", "Bearer t")
	h.Add("Mcp-Session-Id", "s1")
	h.Add("mcp-session-id", "s2")
	h.Set("Last-Event-ID", "7")
	h.Set("Mcp-Param-X", "1")
	var rh reqHeaders
	rh.read(&h)
	if string(rh.origin) != "http://a" || string(rh.authorization) != "Bearer t" || string(rh.lastEventID) != "7" || !rh.params {
		t.Errorf("got %+v", rh)
	}
	if _, ok := rh.single(hdrSessionID, rh.sessionID); ok {
		t.Error("a repeated Mcp-Session-Id was read as single")
	}
	if v, ok := rh.single(hdrOrigin, rh.origin); !ok || string(v) != "http://a" {
		t.Errorf("Origin: got %q %v", v, ok)
	}
	if v, ok := rh.single(hdrName, rh.name); !ok || v != nil {
		t.Errorf("absent Mcp-Name: got %q %v, want nil, true", v, ok)
	}
	if n := testing.AllocsPerRun(100, func() {
		var rh reqHeaders
		rh.read(&h)
	}); n != 0 {
		t.Errorf("allocs: got %v, want 0", n)
	}
}
