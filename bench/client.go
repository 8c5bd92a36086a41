package bench

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/valyala/fasthttp"
)

// The methods a request mix may name, by index.
const (
	methodToolsCall = iota
	methodToolsList
	methodPromptsList
	methodResourcesList
	methodPing
	methodCount
)

var methodNames = [methodCount]string{"tools/call", "tools/list", "prompts/list", "resources/list", "ping"}

// Error kinds that are not a status or a JSON-RPC code.
const (
	kindTimeout  = "timeout"  // no answer within LoadConfig.Timeout
	kindConnect  = "connect"  // cannot connect, or the connection was reset or closed
	kindProtocol = "protocol" // an answer that is not the JSON-RPC response to the request
)

// bodyTemplate is a request body with the request id spliced in at each
// gap between parts (the id, and in tools/call with progress also the
// progress token).
type bodyTemplate struct {
	parts [][]byte
	// mcpMethod and mcpName are the 2026-07-28 Mcp-Method and Mcp-Name
	// header values (MCP-REQUIREMENTS.md 1.8.3); mcpName is nil when the
	// method has none.
	mcpMethod, mcpName []byte
}

func (t *bodyTemplate) append(dst, id []byte) []byte {
	dst = append(dst, t.parts[0]...)
	for _, p := range t.parts[1:] {
		dst = append(dst, id...)
		dst = append(dst, p...)
	}
	return dst
}

// requestShape is what every worker's requests look like, built once per
// Run.
type requestShape struct {
	uri       string // request URI (absolute: fasthttp takes the host from it)
	token     string // "Bearer …" or empty
	modern    bool
	version   string // asked at initialize, or the 2026-07-28 _meta version
	templates [methodCount]bodyTemplate
}

const clientName = `"clientInfo":{"name":"mcpgw-bench","version":"1.0.0"}`

func newRequestShape(cfg *LoadConfig) *requestShape {
	s := &requestShape{uri: cfg.URL, modern: cfg.ProtocolVersion == modernVersion, version: cfg.ProtocolVersion}
	if cfg.Token != "" {
		s.token = "Bearer " + cfg.Token
	}
	meta := ""
	if s.modern {
		meta = `"io.modelcontextprotocol/protocolVersion":"` + modernVersion + `","io.modelcontextprotocol/clientCapabilities":{}`
	}
	for i, name := range methodNames {
		t := &s.templates[i]
		t.mcpMethod = []byte(name)
		head := `{"jsonrpc":"2.0","id":`
		if i != methodToolsCall {
			tail := `,"method":"` + name + `"}`
			if meta != "" {
				tail = `,"method":"` + name + `","params":{"_meta":{` + meta + `}}}`
			}
			t.parts = [][]byte{[]byte(head), []byte(tail)}
			continue
		}
		toolName := jsonrpc.AppendQuoted(nil, cfg.Tool)
		t.mcpName = headerValue(cfg.Tool)
		args := string(argumentsJSON(cfg.Payload, cfg.ProgressEvents))
		call := `,"method":"tools/call","params":{"name":` + string(toolName) + `,"arguments":` + args
		switch {
		case cfg.ProgressEvents > 0 && meta != "":
			t.parts = [][]byte{[]byte(head), []byte(call + `,"_meta":{"progressToken":`), []byte(`,` + meta + `}}}`)}
		case cfg.ProgressEvents > 0:
			t.parts = [][]byte{[]byte(head), []byte(call + `,"_meta":{"progressToken":`), []byte(`}}}`)}
		case meta != "":
			t.parts = [][]byte{[]byte(head), []byte(call + `,"_meta":{` + meta + `}}}`)}
		default:
			t.parts = [][]byte{[]byte(head), []byte(call + `}}`)}
		}
	}
	return s
}

// headerValue is v as a 2026-07-28 header value: as is when header-safe,
// else =?base64?…?= (MCP-REQUIREMENTS.md 1.8.3).
func headerValue(v string) []byte {
	if jsonrpc.HeaderSafe([]byte(v)) {
		return []byte(v)
	}
	return []byte("=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?=")
}

// argumentsJSON is a tools/call arguments object of size bytes (or the
// least above it that holds its members): {"progress":N,"data":"xxx…"}.
func argumentsJSON(size, progress int) []byte {
	buf := []byte(`{`)
	if progress > 0 {
		buf = append(buf, `"progress":`...)
		buf = strconv.AppendInt(buf, int64(progress), 10)
		buf = append(buf, ',')
	}
	buf = append(buf, `"data":"`...)
	if fill := size - len(buf) - 2; fill > 0 {
		buf = append(buf, strings.Repeat("x", fill)...)
	}
	return append(buf, `"}`...)
}

// conn is one worker's client session: its own request and response, body
// and id buffers and scanners, reused for every request. Not safe for
// concurrent use.
type conn struct {
	hc    *fasthttp.HostClient
	shape *requestShape
	req   *fasthttp.Request
	resp  *fasthttp.Response

	session []byte // Mcp-Session-Id the server gave at initialize
	nextID  int64
	id      []byte
	body    []byte

	sc jsonrpc.Scanner
	m  jsonrpc.Message
	er *jsonrpc.EventReader
	br bytes.Reader
	ev jsonrpc.Event

	// progress counts notifications/progress seen in the last answer.
	progress int
	// httpKinds and rpcKinds cache error kind strings by HTTP status and
	// JSON-RPC code, so that an error seen again does not allocate.
	httpKinds, rpcKinds map[int64]string
}

func newConn(hc *fasthttp.HostClient, shape *requestShape) *conn {
	c := &conn{
		hc:        hc,
		shape:     shape,
		req:       fasthttp.AcquireRequest(),
		resp:      fasthttp.AcquireResponse(),
		er:        jsonrpc.NewEventReader(nil, 0),
		httpKinds: make(map[int64]string),
		rpcKinds:  make(map[int64]string),
	}
	c.req.SetRequestURI(shape.uri)
	c.req.Header.SetMethod(fasthttp.MethodPost)
	c.req.Header.SetContentType("application/json")
	c.req.Header.Set("Accept", "application/json, text/event-stream")
	if shape.token != "" {
		c.req.Header.Set("Authorization", shape.token)
	}
	if shape.modern {
		c.req.Header.Set("MCP-Protocol-Version", modernVersion)
	}
	return c
}

// release returns the request and response to fasthttp's pools.
func (c *conn) release() {
	fasthttp.ReleaseRequest(c.req)
	fasthttp.ReleaseResponse(c.resp)
}

// errInitialize wraps what went wrong in the handshake.
var errInitialize = errors.New("bench: initialize failed")

// initialize performs the legacy handshake (initialize, then
// notifications/initialized), keeping the session id and the negotiated
// version for every later request. 2026-07-28 has no handshake.
func (c *conn) initialize() error {
	if c.shape.modern {
		return nil
	}
	c.body = append(c.body[:0], `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":`...)
	c.body = jsonrpc.AppendQuoted(c.body, c.shape.version)
	c.body = append(c.body, `,"capabilities":{},`+clientName+`}}`...)
	c.id = append(c.id[:0], '0')
	if kind, err := c.roundTrip(); kind != "" {
		return initError("initialize", kind, err)
	}
	if sid := c.resp.Header.Peek("Mcp-Session-Id"); len(sid) > 0 {
		c.session = append(c.session[:0], sid...)
		c.req.Header.SetBytesV("Mcp-Session-Id", c.session)
	}
	// The MCP-Protocol-Version header carries the negotiated version on
	// every later request (2025-06-18 basic/transports).
	if v := c.m.ProtocolVersion; len(v) > 0 {
		c.req.Header.SetBytesV("MCP-Protocol-Version", v)
	}
	c.body = append(c.body[:0], `{"jsonrpc":"2.0","method":"notifications/initialized"}`...)
	c.id = c.id[:0]
	if kind, err := c.roundTrip(); kind != "" {
		return initError("notifications/initialized", kind, err)
	}
	return nil
}

func initError(step, kind string, err error) error {
	if err != nil {
		return errors.Join(errInitialize, errors.New(step+": "+kind), err)
	}
	return errors.Join(errInitialize, errors.New(step+": "+kind))
}

// close ends the session with DELETE (best effort; not measured).
func (c *conn) close() {
	if len(c.session) == 0 {
		return
	}
	c.req.Header.SetMethod(fasthttp.MethodDelete)
	c.req.ResetBody()
	_ = c.hc.Do(c.req, c.resp)
	c.req.Header.SetMethod(fasthttp.MethodPost)
}

// call sends one request of the given method and reads its answer. It
// returns "" on success or the error kind.
func (c *conn) call(method int) string {
	c.nextID++
	c.id = strconv.AppendInt(c.id[:0], c.nextID, 10)
	t := &c.shape.templates[method]
	c.body = t.append(c.body[:0], c.id)
	if c.shape.modern {
		c.req.Header.SetBytesV("Mcp-Method", t.mcpMethod)
		if t.mcpName != nil {
			c.req.Header.SetBytesV("Mcp-Name", t.mcpName)
		} else {
			c.req.Header.Del("Mcp-Name")
		}
	}
	kind, _ := c.roundTrip()
	return kind
}

// roundTrip posts c.body and checks the answer: for a request (c.id not
// empty) the JSON-RPC response with that id, as JSON or within an event
// stream; for a notification any 2xx. On failure it returns the error kind
// and the transport error, if any.
func (c *conn) roundTrip() (string, error) {
	c.req.SetBodyRaw(c.body)
	c.progress = 0
	if err := c.hc.Do(c.req, c.resp); err != nil {
		return transportKind(err), err
	}
	status := c.resp.StatusCode()
	if status < 200 || status > 299 {
		return cachedKind(c.httpKinds, "http_", int64(status)), nil
	}
	if len(c.id) == 0 {
		return "", nil
	}
	body := c.resp.Body()
	if bytes.HasPrefix(c.resp.Header.ContentType(), contentSSE) {
		return c.readEvents(body), nil
	}
	if err := c.sc.Scan(body, &c.m); err != nil {
		return kindProtocol, nil
	}
	return c.answerKind(), nil
}

// readEvents finds the response to the request in an event stream,
// counting progress notifications before it. The stream is read whole:
// fasthttp returns once the server ends it, which MCP servers do after the
// response (2025-11-25 basic/transports: "After the JSON-RPC response has
// been sent, the server SHOULD close the SSE stream"); one held open runs
// into the read timeout.
func (c *conn) readEvents(body []byte) string {
	c.br.Reset(body)
	c.er.Reset(&c.br)
	for {
		if err := c.er.Next(&c.ev); err != nil {
			return kindProtocol
		}
		if !c.ev.HasData || len(c.ev.Data) == 0 {
			continue
		}
		if c.sc.Scan(c.ev.Data, &c.m) != nil {
			return kindProtocol
		}
		switch c.m.Kind {
		case jsonrpc.KindNotification:
			if string(c.m.Method) == "notifications/progress" {
				c.progress++
			}
		case jsonrpc.KindResult, jsonrpc.KindError:
			if bytes.Equal(c.m.ID, c.id) {
				return c.answerKind()
			}
		}
	}
}

// answerKind classifies the scanned message c.m as the answer to c.id.
func (c *conn) answerKind() string {
	if !bytes.Equal(c.m.ID, c.id) {
		return kindProtocol
	}
	switch c.m.Kind {
	case jsonrpc.KindResult:
		return ""
	case jsonrpc.KindError:
		return cachedKind(c.rpcKinds, "jsonrpc_", c.m.ErrorCode)
	}
	return kindProtocol
}

// cachedKind returns prefix+n, kept in cache.
func cachedKind(cache map[int64]string, prefix string, n int64) string {
	if k, ok := cache[n]; ok {
		return k
	}
	k := prefix + strconv.FormatInt(n, 10)
	cache[n] = k
	return k
}

// transportKind classifies an error of fasthttp's Do.
func transportKind(err error) string {
	// fasthttp.ErrTimeout has Timeout but is no net.Error (no Temporary).
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return kindConnect
	case errors.As(err, &te) && te.Timeout():
		return kindTimeout
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, fasthttp.ErrNoFreeConns):
		return kindConnect
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return kindConnect
	}
	return kindProtocol
}
