package proxy

import (
	"bytes"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/auditlog"

	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/mcpgw/mcpgw/policycache"
)

// exchange holds the per-request scratch state of one POST: the scanner,
// the decoded message, buffers and the policy adapters. Exchanges are
// pooled; nothing in one may be kept after release.
type exchange struct {
	scan    jsonrpc.Scanner
	msg     jsonrpc.Message
	filter  jsonrpc.Filter
	subject policycache.Subject
	names   listFilter
	args    argLookup
	hdr     reqHeaders // the client request's headers; valid while its handler runs
	req     []byte     // upstream request, head and body
	body    []byte     // upstream response body
	out     []byte     // rewritten response body
	tmp     []byte
	elems   [][]byte
	pending []pendingCall

	// Audit (audit.go).
	scope    auditScope
	rec      auditlog.Record
	redactor jsonrpc.Redactor
	argBuf   []byte
	served   servedNames
	client   clientInfo // initialize's clientInfo, copied
	start    time.Time
	relayed  bool // the pending calls went to a relay, which audits them
	// elicitURL: the legacy session's client declared URL-mode
	// elicitation, so an approval refusal may be a -32042 (approval.go).
	elicitURL bool
	verdicts  []verdict // a batch's, per element
}

// pendingCall remembers what a forwarded request needs from its response:
// its id and, for list methods, which list to filter.
type pendingCall struct {
	id   []byte // raw id token, copied
	list jsonrpc.ListKind
	init bool

	// For its response record (audit.go).
	method, name, progress []byte // copied
	start                  time.Time
	session                string // initialize: the session it opened
	audited                bool
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func acquireExchange() *exchange { return exchangePool.Get().(*exchange) }

func releaseExchange(ex *exchange) {
	ex.msg.Reset()
	ex.subject = policycache.Subject{}
	ex.names = listFilter{}
	ex.args = argLookup{}
	ex.hdr = reqHeaders{}
	ex.scope.reset()
	ex.rec = auditlog.Record{}
	ex.argBuf = ex.argBuf[:0]
	ex.served.reset(false)
	ex.client = clientInfo{name: ex.client.name[:0], version: ex.client.version[:0]}
	ex.relayed = false
	ex.elicitURL = false
	ex.body = ex.body[:0]
	ex.out = ex.out[:0]
	ex.tmp = ex.tmp[:0]
	ex.elems = ex.elems[:0]
	for i := range ex.pending {
		ex.pending[i].reset()
	}
	ex.pending = ex.pending[:0]
	if cap(ex.body) > 1<<20 {
		ex.body = nil // do not pin large buffers in the pool
	}
	if cap(ex.out) > 1<<20 {
		ex.out = nil
	}
	exchangePool.Put(ex)
}

// addPending remembers request m, forwarded now.
func (ex *exchange) addPending(m *jsonrpc.Message) {
	if len(ex.pending) < cap(ex.pending) {
		ex.pending = ex.pending[:len(ex.pending)+1]
	} else {
		ex.pending = append(ex.pending, pendingCall{})
	}
	ex.pending[len(ex.pending)-1].set(m, ex.start)
}

func (p *pendingCall) set(m *jsonrpc.Message, start time.Time) {
	p.id = append(p.id[:0], m.ID...)
	p.list = jsonrpc.ListKindOf(m.Method)
	p.init = bytes.Equal(m.Method, []byte("initialize"))
	p.method = append(p.method[:0], m.Method...)
	p.name = append(p.name[:0], m.Name...)
	p.progress = append(p.progress[:0], m.ProgressToken...)
	p.start = start
	p.session = ""
	p.audited = false
}

// copyFrom makes p a copy of o that shares no memory with it.
func (p *pendingCall) copyFrom(o *pendingCall) {
	p.id = append(p.id[:0], o.id...)
	p.list, p.init = o.list, o.init
	p.method = append(p.method[:0], o.method...)
	p.name = append(p.name[:0], o.name...)
	p.progress = append(p.progress[:0], o.progress...)
	p.start, p.session, p.audited = o.start, o.session, o.audited
}

func (p *pendingCall) reset() {
	*p = pendingCall{id: p.id[:0], method: p.method[:0], name: p.name[:0], progress: p.progress[:0]}
}

// listFilter adapts policy visibility to the jsonrpc filter.
type listFilter struct {
	policy  *policycache.AppPolicy
	subject *policycache.Subject
	kind    policycache.Kind
	served  *servedNames // what was kept, for the audit record
}

func (f *listFilter) Allow(name []byte) bool {
	ok := f.policy.Visible(f.subject, f.kind, name)
	if ok && f.served != nil {
		f.served.add(name)
	}
	return ok
}

// argLookup gives argument constraints access to params.arguments.
type argLookup struct {
	doc     []byte
	scratch []byte
}

func (a *argLookup) Lookup(pointer string) ([]byte, bool) {
	v, kind, found, err := jsonrpc.Lookup(a.doc, pointer, a.scratch[:0])
	if err != nil || !found || !kind.Scalar() {
		return nil, false
	}
	return v, true
}

func listPolicyKind(k jsonrpc.ListKind) policycache.Kind {
	switch k {
	case jsonrpc.ListPrompts:
		return policycache.KindPrompt
	case jsonrpc.ListResources, jsonrpc.ListResourceTemplates:
		return policycache.KindResource
	default:
		return policycache.KindTool
	}
}
