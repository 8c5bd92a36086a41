package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The upstream client. The gateway speaks HTTP/1.1 to MCP servers over
// kept-alive connections of its own rather than through fasthttp's
// HostClient: the request it sends is a fixed prefix per application (the
// request line, Host, Accept and the injected headers, rendered once per
// reload) plus a few carried headers and the body, written with one call;
// the answer's header is parsed by fasthttp.ResponseHeader and its body is
// read straight from the connection's buffer, into the exchange's buffer
// for JSON and event by event for SSE. HostClient rebuilt and normalized
// every header per request and needed a streamed-response wrapper (four
// allocations and a pool round trip per call) until it knew whether the
// answer was SSE; BENCHMARKS.md has the effect.
//
// An upPool never sends a request twice, with one exception that net/http
// makes too: when a kept-alive connection turns out to have been closed by
// the upstream before it answered a single byte (its idle timeout raced
// with our reuse), the upstream cannot have acted on the request, and it is
// sent once more on a new connection.

var (
	errUpstreamConns = errors.New("proxy: too many upstream connections")
	errPoolClosed    = errors.New("proxy: upstream pool closed")
	errBadChunk      = errors.New("proxy: malformed chunked encoding from upstream")
	errInterim       = errors.New("proxy: too many interim responses from upstream")
)

const (
	upDialTimeout  = 10 * time.Second
	upWriteTimeout = 30 * time.Second
	upMaxIdle      = 30 * time.Second // an idle kept-alive connection is closed after this
	maxInterim     = 5
)

// upPool is the set of connections to one upstream origin. It is safe for
// concurrent use.
type upPool struct {
	addr     string
	tlsConf  *tls.Config // nil: plain HTTP
	idle     time.Duration
	readBuf  int
	maxConns int

	open atomic.Int64 // connections open, idle or in use

	mu     sync.Mutex // guards the fields below
	free   []*upConn  // idle connections, the most recently used last
	closed bool
}

func newUpPool(addr string, tlsConf *tls.Config, idle time.Duration, readBuf, maxConns int) *upPool {
	return &upPool{addr: addr, tlsConf: tlsConf, idle: idle, readBuf: readBuf, maxConns: maxConns}
}

// upConn is one connection. Its reads and writes refresh their deadlines
// (deadlineConn), so a silent upstream is bounded without a deadline per
// call.
type upConn struct {
	nc     net.Conn
	br     *bufio.Reader
	pool   *upPool
	reused bool  // it has carried an exchange before
	idleAt int64 // unix nanoseconds when it went idle
}

// get returns an idle connection, or dials a new one.
func (p *upPool) get() (*upConn, error) {
	now := time.Now().UnixNano()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	for n := len(p.free); n > 0; n = len(p.free) {
		c := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		if now-c.idleAt < int64(upMaxIdle) {
			p.mu.Unlock()
			return c, nil
		}
		p.mu.Unlock()
		c.close()
		p.mu.Lock()
	}
	p.mu.Unlock()
	if p.open.Add(1) > int64(p.maxConns) {
		p.open.Add(-1)
		return nil, errUpstreamConns
	}
	c, err := p.dial()
	if err != nil {
		p.open.Add(-1)
		return nil, errConnect{err}
	}
	return c, nil
}

func (p *upPool) dial() (*upConn, error) {
	nc, err := net.DialTimeout("tcp", p.addr, upDialTimeout)
	if err != nil {
		return nil, err
	}
	nc = &deadlineConn{Conn: nc, readIdle: p.idle, writeIdle: upWriteTimeout}
	if p.tlsConf != nil {
		tc := tls.Client(nc, p.tlsConf)
		_ = nc.SetDeadline(time.Now().Add(upDialTimeout))
		if err := tc.Handshake(); err != nil {
			_ = nc.Close()
			return nil, err
		}
		_ = nc.SetDeadline(time.Time{})
		nc = tc
	}
	return &upConn{nc: nc, br: bufio.NewReaderSize(nc, p.readBuf), pool: p}, nil
}

// put keeps a connection whose exchange ended cleanly for the next one, and
// closes the oldest idle connection if it has idled too long.
func (p *upPool) put(c *upConn) {
	now := time.Now().UnixNano()
	c.reused = true
	c.idleAt = now
	var stale *upConn
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.free = append(p.free, c)
	if now-p.free[0].idleAt >= int64(upMaxIdle) {
		stale = p.free[0]
		copy(p.free, p.free[1:])
		p.free[len(p.free)-1] = nil
		p.free = p.free[:len(p.free)-1]
	}
	p.mu.Unlock()
	if stale != nil {
		stale.close()
	}
}

func (c *upConn) close() {
	_ = c.nc.Close()
	c.pool.open.Add(-1)
}

// close closes the idle connections now and those in use when their
// exchange ends; the pool dials no more.
func (p *upPool) close() {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range free {
		c.close()
	}
}

// do sends req (a whole HTTP/1.1 request, head and body) and reads the
// answer's head into resp. On success the caller owns resp's body and must
// Close resp.
func (p *upPool) do(req []byte, resp *upResponse) error {
	for attempt := 0; ; attempt++ {
		c, err := p.get()
		if err != nil {
			return err
		}
		err = resp.start(c, req)
		if err == nil {
			return nil
		}
		retry := attempt == 0 && c.reused && resp.nothingRead && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isConnReset(err))
		c.close()
		if !retry {
			return err
		}
	}
}

// Body framing of an upstream answer.
const (
	bodyNone    = iota // 204, 304: no body
	bodyLength         // Content-Length
	bodyChunked        // Transfer-Encoding: chunked
	bodyClose          // until the upstream closes the connection
)

// upResponse is an upstream answer: its parsed head, and its body read
// through Read. It is not safe for concurrent use, except Abort.
type upResponse struct {
	Header      fasthttp.ResponseHeader
	c           *upConn
	mode        uint8
	remain      int64 // bodyLength: bytes left; bodyChunked: left in this chunk
	done        bool  // the body has been read to its end
	err         error // sticky read error
	aborted     atomic.Bool
	nothingRead bool // start failed before a byte of the answer arrived
}

var upResponsePool = sync.Pool{New: func() any { return new(upResponse) }}

func acquireUpResponse() *upResponse { return upResponsePool.Get().(*upResponse) }

// releaseUpResponse closes resp and returns it to the pool.
func releaseUpResponse(resp *upResponse) {
	resp.Close()
	resp.Header.Reset()
	resp.err = nil
	resp.aborted.Store(false)
	upResponsePool.Put(resp)
}

func (r *upResponse) StatusCode() int { return r.Header.StatusCode() }

// start writes req on c and reads the answer's head.
func (r *upResponse) start(c *upConn, req []byte) error {
	r.c, r.done, r.err, r.nothingRead = nil, false, nil, false
	if _, err := c.nc.Write(req); err != nil {
		r.nothingRead = true
		return err
	}
	// Peek first, so that a connection the upstream had already closed is
	// told apart from one that broke off in the middle of an answer.
	if _, err := c.br.Peek(1); err != nil {
		r.nothingRead = true
		return err
	}
	for n := 0; ; n++ {
		if err := r.Header.Read(c.br); err != nil {
			return err
		}
		if st := r.Header.StatusCode(); st >= 200 || st == fasthttp.StatusSwitchingProtocols {
			break
		}
		if n == maxInterim {
			return errInterim
		}
	}
	st := r.Header.StatusCode()
	switch cl := r.Header.ContentLength(); {
	case st == fasthttp.StatusNoContent || st == fasthttp.StatusNotModified:
		r.mode, r.done = bodyNone, true
	case cl >= 0:
		r.mode, r.remain = bodyLength, int64(cl)
		r.done = cl == 0
	case cl == -1:
		r.mode, r.remain = bodyChunked, 0
	default:
		r.mode = bodyClose
	}
	r.c = c
	return nil
}

// Read reads the body. It returns io.EOF at its end.
func (r *upResponse) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.c == nil {
		return 0, io.ErrClosedPipe
	}
	n, err := r.read(p)
	if err != nil && err != io.EOF {
		if r.aborted.Load() {
			err = errClientGone
		}
		r.err = err
	}
	return n, err
}

func (r *upResponse) read(p []byte) (int, error) {
	br := r.c.br
	switch r.mode {
	case bodyLength:
		if int64(len(p)) > r.remain {
			p = p[:r.remain]
		}
		n, err := br.Read(p)
		r.remain -= int64(n)
		if r.remain == 0 {
			r.done = true
			return n, nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case bodyChunked:
		if r.remain == 0 {
			size, err := readChunkSize(br)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				if err := skipTrailer(br); err != nil {
					return 0, err
				}
				r.done = true
				return 0, io.EOF
			}
			r.remain = size
		}
		if int64(len(p)) > r.remain {
			p = p[:r.remain]
		}
		n, err := br.Read(p)
		r.remain -= int64(n)
		if r.remain == 0 && err == nil {
			err = readCRLF(br)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	default: // bodyClose
		n, err := br.Read(p)
		if err == io.EOF {
			r.done = true
		}
		return n, err
	}
}

// Abort breaks the connection off, so that a Read blocked in another
// goroutine returns; the body is not read further. Safe for concurrent use
// with Read.
func (r *upResponse) Abort() {
	if r.aborted.CompareAndSwap(false, true) {
		if c := r.c; c != nil {
			_ = c.nc.Close()
		}
	}
}

// Close ends the exchange: a connection whose answer was read to its end
// goes back to the pool, any other is closed. Close is idempotent.
func (r *upResponse) Close() {
	c := r.c
	if c == nil {
		return
	}
	r.c = nil
	if r.done && r.mode != bodyClose && !r.aborted.Load() && !r.Header.ConnectionClose() && c.br.Buffered() == 0 {
		c.pool.put(c)
		return
	}
	c.close()
}

// readBodyInto reads the whole body into dst, refusing more than max bytes.
func (r *upResponse) readBodyInto(dst []byte, max int) ([]byte, error) {
	if r.mode == bodyLength {
		if r.remain > int64(max) {
			return dst, errBodyTooLarge
		}
		need := len(dst) + int(r.remain)
		dst = slices.Grow(dst, int(r.remain))
		n, err := io.ReadFull(r, dst[len(dst):need])
		return dst[:len(dst)+n], err
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > max {
			return dst, errBodyTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// readChunkSize reads a chunk-size line (RFC 9112 section 7.1); chunk
// extensions are skipped. A size line longer than 4 KiB is refused.
func readChunkSize(br *bufio.Reader) (int64, error) {
	var size int64
	digits := 0
	for n := 0; ; n++ {
		if n > 4096 {
			return 0, errBadChunk
		}
		c, err := br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v := hexDigit(c)
		if v >= 0 && digits >= 0 {
			if digits == 15 {
				return 0, errBadChunk // more than 2^60: no MCP message is that big
			}
			size = size<<4 | int64(v)
			digits++
			continue
		}
		if digits == 0 {
			return 0, errBadChunk
		}
		switch c {
		case '\r':
			if b, err := br.ReadByte(); err != nil || b != '\n' {
				return 0, errBadChunk
			}
			return size, nil
		case '\n':
			return size, nil
		case ';', ' ', '\t':
			digits = -1 // an extension or whitespace follows: skip to the line end
		default:
			if digits > 0 {
				return 0, errBadChunk
			}
		}
	}
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func readCRLF(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	if err != nil {
		return err
	}
	if c != '\n' {
		return errBadChunk
	}
	return nil
}

// skipTrailer reads the trailer section after the last chunk, up to and
// including the empty line; trailers are not relayed. At most 64 lines of
// 4 KiB.
func skipTrailer(br *bufio.Reader) error {
	for lines := 0; lines < 64; lines++ {
		n := 0
		for {
			c, err := br.ReadByte()
			if err != nil {
				return err
			}
			if c == '\n' {
				break
			}
			if c != '\r' {
				n++
			}
			if n > 4096 {
				return errBadChunk
			}
		}
		if n == 0 {
			return nil
		}
	}
	return errBadChunk
}

// isConnReset reports the errors of a connection the peer had closed: a
// reset on read, a broken pipe on write.
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// deadlineConn bounds silence on a connection: each read and each write
// gets a fresh deadline, set only when an eighth of its bound has passed
// since the last one (a deadline update is a timer update, too dear for
// every call). A zero bound leaves that direction unbounded.
type deadlineConn struct {
	net.Conn
	readIdle, writeIdle time.Duration
	lastRead, lastWrite atomic.Int64 // unix nanoseconds of the last deadline set
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.readIdle > 0 {
		now := time.Now()
		if now.UnixNano()-c.lastRead.Load() > int64(c.readIdle/8) {
			c.lastRead.Store(now.UnixNano())
			if err := c.Conn.SetReadDeadline(now.Add(c.readIdle)); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeIdle > 0 {
		now := time.Now()
		if now.UnixNano()-c.lastWrite.Load() > int64(c.writeIdle/8) {
			c.lastWrite.Store(now.UnixNano())
			if err := c.Conn.SetWriteDeadline(now.Add(c.writeIdle)); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Write(p)
}
