package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/valyala/fasthttp"
)

// Protocol versions the backend knows. An initialize asking for another
// version is answered with latestLegacyVersion, as the MCP lifecycle
// (2025-11-25 basic/lifecycle "Version Negotiation") says a server does.
const (
	latestLegacyVersion = "2025-11-25"
	modernVersion       = "2026-07-28"
)

var legacyVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}

// keepAliveChunk is one ": keepalive" comment in chunked framing: its size
// in hex, CRLF, the bytes, CRLF.
var keepAliveChunk = []byte(strconv.FormatInt(int64(len(keepAliveComment)), 16) + "\r\n" + keepAliveComment + "\r\n")

const keepAliveComment = ": keepalive\n\n"

// keepAliveEvery is how often an idle GET stream gets a ": keepalive"
// comment.
const keepAliveEvery = 15 * time.Second

// maxProgressEvents bounds arguments.progress, so that one request cannot
// make the backend build an unbounded response.
const maxProgressEvents = 10000

var (
	errBackendTools = errors.New("bench: backend tools must be 0 to 10000")

	contentJSON = []byte("application/json")
	contentSSE  = []byte("text/event-stream")
)

// splice is a canned response with the request id spliced between head and
// tail, in one framing.
type splice struct{ head, tail []byte }

// cannedAnswer is one canned response in both framings: a JSON body, and one
// SSE event ("event: message", one data line) holding the same JSON.
type cannedAnswer struct{ json, sse splice }

// newCannedAnswer builds the answers {"jsonrpc":"2.0","id":<id>,"result":result}.
// result must be compact JSON (one line, for the SSE data field).
func newCannedAnswer(result string) cannedAnswer {
	head := `{"jsonrpc":"2.0","id":`
	tail := `,"result":` + result + `}`
	return cannedAnswer{
		json: splice{[]byte(head), []byte(tail)},
		sse:  splice{[]byte("event: message\ndata: " + head), []byte(tail + "\n\n")},
	}
}

// eraAnswers are the canned results of one protocol era.
type eraAnswers struct {
	toolsList, promptsList, resourcesList, ping cannedAnswer
}

// backend is the state of one Serve call.
type backend struct {
	cfg       BackendConfig
	legacy    eraAnswers
	modern    eraAnswers
	discover  cannedAnswer
	initialed map[string]cannedAnswer // initialize results by protocol version
	pool      sync.Pool               // of *backendScratch
	done      chan struct{}           // closed when Serve's context ends

	mu       sync.RWMutex // guards the fields below
	sessions map[string]*session
}

// session is a legacy session the backend issued; its idle GET streams are
// closed when it is deleted or the backend stops.
type session struct {
	streams map[net.Conn]struct{}
}

// backendScratch is the per-request state, pooled.
type backendScratch struct {
	sc      jsonrpc.Scanner
	m       jsonrpc.Message
	scratch []byte // for Lookup
	out     []byte // a response being built, copied into the response
}

// Serve runs the mock MCP backend until ctx ends, then shuts it down and
// returns nil; it returns an error when it cannot listen or serve. ready,
// when not nil, is called with the bound address once the backend accepts
// connections (Listen may name port 0).
//
// The backend answers on any path: POST carries JSON-RPC (initialize,
// notifications and client responses get 202, tools/list, tools/call,
// prompts/list, resources/list, ping and, for 2026-07-28, server/discover);
// GET opens an idle SSE stream for a known session and DELETE ends one
// (with cfg.Sessions; otherwise both get 405). Requests whose params._meta
// carries io.modelcontextprotocol/protocolVersion are answered statelessly
// in the 2026-07-28 shape. Answers are canned bytes with the request id
// spliced in; a request is only scanned (jsonrpc.Scanner), never decoded.
func Serve(ctx context.Context, cfg BackendConfig, ready func(net.Addr)) error {
	b, err := newBackend(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %q: %w", cfg.Listen, err)
	}
	srv := &fasthttp.Server{
		Handler:               b.handle,
		Name:                  "mcpgw-bench-backend",
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		MaxRequestBodySize:    16 << 20,
		CloseOnShutdown:       true,
		// idleStream closes its connection itself, and DELETE or shutdown
		// close it from outside: fasthttp's hijacked conn ignores Close
		// otherwise.
		KeepHijackedConns: true,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		close(b.done)
		b.closeStreams()
		return fmt.Errorf("cannot serve: %w", err)
	case <-ctx.Done():
	}
	close(b.done)
	b.closeStreams()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot shut down: %w", err)
	}
	<-errc
	return nil
}

func newBackend(cfg BackendConfig) (*backend, error) {
	if cfg.Tools < 0 || cfg.Tools > 10000 {
		return nil, errBackendTools
	}
	b := &backend{
		cfg:       cfg,
		initialed: make(map[string]cannedAnswer, len(legacyVersions)),
		done:      make(chan struct{}),
		sessions:  make(map[string]*session),
	}
	b.pool.New = func() any { return new(backendScratch) }
	const caps = `"capabilities":{"tools":{},"prompts":{},"resources":{}},"serverInfo":{"name":"mcpgw-bench-backend","version":"1.0.0"}`
	for _, v := range legacyVersions {
		b.initialed[v] = newCannedAnswer(`{"protocolVersion":"` + v + `",` + caps + `}`)
	}
	tools := toolsJSON(cfg.Tools)
	const prompts = `"prompts":[{"name":"summarize","description":"Summarize a text.","arguments":[{"name":"text","description":"The text.","required":true}]}]`
	const resources = `"resources":[{"uri":"bench://static/readme","name":"readme","mimeType":"text/plain"},{"uri":"bench://static/data","name":"data","mimeType":"application/json"}]`
	b.legacy = eraAnswers{
		toolsList:     newCannedAnswer(`{` + tools + `}`),
		promptsList:   newCannedAnswer(`{` + prompts + `}`),
		resourcesList: newCannedAnswer(`{` + resources + `}`),
		ping:          newCannedAnswer(`{}`),
	}
	// 2026-07-28 results say resultType; cacheable (list) results carry
	// ttlMs and cacheScope (MCP-REQUIREMENTS.md 2.1.4, 3.4.3).
	const complete = `"resultType":"complete"`
	const cacheable = `,"ttlMs":0,"cacheScope":"public",` + complete
	b.modern = eraAnswers{
		toolsList:     newCannedAnswer(`{` + tools + cacheable + `}`),
		promptsList:   newCannedAnswer(`{` + prompts + cacheable + `}`),
		resourcesList: newCannedAnswer(`{` + resources + cacheable + `}`),
		ping:          newCannedAnswer(`{` + complete + `}`),
	}
	// server/discover names the server in _meta (SEP-2575; the Go SDK
	// reads io.modelcontextprotocol/serverInfo there).
	b.discover = newCannedAnswer(`{"supportedVersions":["` + modernVersion + `","2025-11-25","2025-06-18","2025-03-26","2024-11-05"],` +
		`"capabilities":{"tools":{},"prompts":{},"resources":{}},` +
		`"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"mcpgw-bench-backend","version":"1.0.0"}}` + cacheable + `}`)
	return b, nil
}

// toolsJSON is the "tools" member of a tools/list result: n canned tools
// and echo.
func toolsJSON(n int) string {
	buf := []byte(`"tools":[`)
	for i := range n {
		buf = append(buf, `{"name":"`...)
		buf = appendToolName(buf, i)
		buf = append(buf, `","description":"Canned tool `...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, ` of the mcpgw-bench backend; answers like echo.","inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"Anything."},"limit":{"type":"integer"}},"required":["query"]}},`...)
	}
	buf = append(buf, `{"name":"echo","description":"Answers with the size of its arguments; arguments.progress N sends N progress notifications first.","inputSchema":{"type":"object","properties":{"data":{"type":"string"},"progress":{"type":"integer","minimum":0}}}}]`...)
	return string(buf)
}

// appendToolName appends tool_NNNNN.
func appendToolName(dst []byte, i int) []byte {
	dst = append(dst, "tool_"...)
	var d [5]byte
	for k := 4; k >= 0; k-- {
		d[k] = byte('0' + i%10)
		i /= 10
	}
	return append(dst, d[:]...)
}

// cannedTool reports whether name is one of the backend's tools.
func (b *backend) cannedTool(name []byte) bool {
	if string(name) == "echo" {
		return true
	}
	if len(name) != 10 || string(name[:5]) != "tool_" {
		return false
	}
	n := 0
	for _, c := range name[5:] {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n < b.cfg.Tools
}

func (b *backend) handle(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsPost():
		b.post(ctx)
	case ctx.IsGet() && b.cfg.Sessions:
		b.get(ctx)
	case ctx.IsDelete() && b.cfg.Sessions:
		b.delete(ctx)
	default:
		ctx.Response.Header.Set("Allow", b.allow())
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	}
}

func (b *backend) allow() string {
	if b.cfg.Sessions {
		return "GET, POST, DELETE"
	}
	return "POST"
}

func (b *backend) post(ctx *fasthttp.RequestCtx) {
	s := b.pool.Get().(*backendScratch)
	defer b.pool.Put(s)
	m := &s.m
	if err := s.sc.Scan(ctx.PostBody(), m); err != nil {
		b.fail(ctx, s, nil, fasthttp.StatusBadRequest, jsonrpc.CodeOf(err), "invalid message")
		return
	}
	if m.Kind != jsonrpc.KindRequest {
		// Notifications and client responses (MCP-REQUIREMENTS.md 1.8.7).
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		return
	}
	modern := len(m.MetaProtocolVersion) > 0
	method := string(m.Method) // not allocated: only compared below
	if !modern && b.cfg.Sessions && method != "initialize" {
		if sid := ctx.Request.Header.Peek("Mcp-Session-Id"); len(sid) > 0 && !b.known(sid) {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
	}
	if b.cfg.Delay > 0 {
		time.Sleep(b.cfg.Delay)
	}
	era := &b.legacy
	if modern {
		era = &b.modern
	}
	switch method {
	case "initialize":
		b.initialize(ctx, m)
	case "tools/call":
		b.toolsCall(ctx, s, modern)
	case "tools/list":
		b.answer(ctx, &era.toolsList, m.ID)
	case "prompts/list":
		b.answer(ctx, &era.promptsList, m.ID)
	case "resources/list":
		b.answer(ctx, &era.resourcesList, m.ID)
	case "ping":
		b.answer(ctx, &era.ping, m.ID)
	case "server/discover":
		if modern {
			b.answer(ctx, &b.discover, m.ID)
			return
		}
		fallthrough
	default:
		// 2026-07-28 wants 404 with -32601 for an unknown method
		// (MCP-REQUIREMENTS.md 1.8.2); the legacy era answers 200.
		status := fasthttp.StatusOK
		if modern {
			status = fasthttp.StatusNotFound
		}
		b.fail(ctx, s, m.ID, status, jsonrpc.MethodNotFound, "method not found")
	}
}

// answer writes a canned answer with id spliced in, in the configured
// framing.
func (b *backend) answer(ctx *fasthttp.RequestCtx, a *cannedAnswer, id []byte) {
	sp := &a.json
	if b.cfg.SSE {
		sp = &a.sse
		ctx.SetContentTypeBytes(contentSSE)
		ctx.Response.Header.Set("Cache-Control", "no-cache")
	} else {
		ctx.SetContentTypeBytes(contentJSON)
	}
	ctx.Response.AppendBody(sp.head)
	ctx.Response.AppendBody(id)
	ctx.Response.AppendBody(sp.tail)
}

// fail writes a JSON-RPC error response.
func (b *backend) fail(ctx *fasthttp.RequestCtx, s *backendScratch, id []byte, status, code int, msg string) {
	ctx.SetStatusCode(status)
	out := s.out[:0]
	sse := b.cfg.SSE && status == fasthttp.StatusOK
	if sse {
		ctx.SetContentTypeBytes(contentSSE)
		out = append(out, "event: message\ndata: "...)
	} else {
		ctx.SetContentTypeBytes(contentJSON)
	}
	out = jsonrpc.AppendError(out, id, code, msg, nil)
	if sse {
		out = append(out, "\n\n"...)
	}
	ctx.Response.AppendBody(out)
	s.out = out
}

func (b *backend) initialize(ctx *fasthttp.RequestCtx, m *jsonrpc.Message) {
	a, ok := b.initialed[string(m.ProtocolVersion)]
	if !ok {
		a = b.initialed[latestLegacyVersion]
	}
	if b.cfg.Sessions {
		id := newSessionID()
		b.mu.Lock()
		b.sessions[id] = &session{streams: make(map[net.Conn]struct{})}
		b.mu.Unlock()
		ctx.Response.Header.Set("Mcp-Session-Id", id)
	}
	b.answer(ctx, &a, m.ID)
}

// newSessionID returns 32 hex digits from crypto/rand: visible ASCII, as
// the transport requires of Mcp-Session-Id (2025-11-25 basic/transports
// "Session Management").
func newSessionID() string {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(raw[:])
}

func (b *backend) known(sid []byte) bool {
	b.mu.RLock()
	_, ok := b.sessions[string(sid)]
	b.mu.RUnlock()
	return ok
}

// toolsCall answers tools/call: the size of the arguments, after
// arguments.progress progress notifications (then always as SSE).
func (b *backend) toolsCall(ctx *fasthttp.RequestCtx, s *backendScratch, modern bool) {
	m := &s.m
	if !b.cannedTool(m.Name) {
		b.fail(ctx, s, m.ID, fasthttp.StatusOK, jsonrpc.InvalidParams, "unknown tool")
		return
	}
	progress := 0
	if len(m.Arguments) > 0 {
		v, kind, found, err := jsonrpc.Lookup(m.Arguments, "/progress", s.scratch[:0])
		if err == nil && found && kind == jsonrpc.ValueNumber {
			if n, err := strconv.Atoi(string(v)); err == nil && n > 0 {
				progress = min(n, maxProgressEvents)
			}
		}
	}
	sse := b.cfg.SSE || progress > 0
	body := s.out[:0]
	if sse {
		ctx.SetContentTypeBytes(contentSSE)
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		token := m.ProgressToken
		if token == nil {
			token = m.ID
		}
		for i := 1; i <= progress; i++ {
			body = append(body, `event: message`+"\n"+`data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":`...)
			body = append(body, token...)
			body = append(body, `,"progress":`...)
			body = strconv.AppendInt(body, int64(i), 10)
			body = append(body, `,"total":`...)
			body = strconv.AppendInt(body, int64(progress), 10)
			body = append(body, "}}\n\n"...)
		}
		body = append(body, "event: message\ndata: "...)
	} else {
		ctx.SetContentTypeBytes(contentJSON)
	}
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	body = append(body, m.ID...)
	body = append(body, `,"result":{"content":[{"type":"text","text":"received `...)
	body = strconv.AppendInt(body, int64(len(m.Arguments)), 10)
	body = append(body, ` bytes of arguments"}],"isError":false`...)
	if modern {
		body = append(body, `,"resultType":"complete"`...)
	}
	body = append(body, "}}"...)
	if sse {
		body = append(body, "\n\n"...)
	}
	ctx.Response.AppendBody(body)
	s.out = body
}

func (b *backend) get(ctx *fasthttp.RequestCtx) {
	sid := ctx.Request.Header.Peek("Mcp-Session-Id")
	if len(sid) == 0 {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	if !b.known(sid) {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	id := string(sid)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) { b.idleStream(c, id) })
}

// idleStream holds a standalone GET stream open: the response headers, then
// a keep-alive comment every keepAliveEvery until the client goes away, the
// session is deleted or the backend stops. The connection is hijacked so
// that an idle stream costs one goroutine blocked in Read, which also
// notices at once when the client closes.
func (b *backend) idleStream(c net.Conn, sid string) {
	defer c.Close()
	b.mu.Lock()
	s, ok := b.sessions[sid]
	if ok {
		select {
		case <-b.done:
			ok = false
		default:
			s.streams[c] = struct{}{}
		}
	}
	b.mu.Unlock()
	if !ok {
		return
	}
	defer func() {
		b.mu.Lock()
		delete(s.streams, c)
		b.mu.Unlock()
	}()
	const header = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n"
	if _, err := c.Write([]byte(header)); err != nil {
		return
	}
	var buf [64]byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(keepAliveEvery)); err != nil {
			return
		}
		_, err := c.Read(buf[:])
		var ne net.Error
		switch {
		case err == nil:
			// The client sent bytes on a stream it may not use; ignore them.
		case errors.As(err, &ne) && ne.Timeout():
			if _, err := c.Write(keepAliveChunk); err != nil {
				return
			}
		default:
			return
		}
	}
}

func (b *backend) delete(ctx *fasthttp.RequestCtx) {
	sid := ctx.Request.Header.Peek("Mcp-Session-Id")
	b.mu.Lock()
	s, ok := b.sessions[string(sid)]
	if ok {
		delete(b.sessions, string(sid))
		for c := range s.streams {
			_ = c.Close()
		}
	}
	b.mu.Unlock()
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// closeStreams closes every idle GET stream; done is closed, so no new one
// registers.
func (b *backend) closeStreams() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sessions {
		for c := range s.streams {
			_ = c.Close()
		}
	}
}
