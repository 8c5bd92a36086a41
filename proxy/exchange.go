package proxy

import (
	"sync"

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
}

// pendingCall remembers what a forwarded request needs from its response:
// its id and, for list methods, which list to filter.
type pendingCall struct {
	id   []byte // raw id token, copied
	list jsonrpc.ListKind
	init bool
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func acquireExchange() *exchange { return exchangePool.Get().(*exchange) }

func releaseExchange(ex *exchange) {
	ex.msg.Reset()
	ex.subject = policycache.Subject{}
	ex.names = listFilter{}
	ex.args = argLookup{}
	ex.hdr = reqHeaders{}
	ex.body = ex.body[:0]
	ex.out = ex.out[:0]
	ex.tmp = ex.tmp[:0]
	ex.elems = ex.elems[:0]
	for i := range ex.pending {
		ex.pending[i] = pendingCall{id: ex.pending[i].id[:0]}
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

func (ex *exchange) addPending(id []byte, list jsonrpc.ListKind, init bool) {
	if len(ex.pending) < cap(ex.pending) {
		ex.pending = ex.pending[:len(ex.pending)+1]
	} else {
		ex.pending = append(ex.pending, pendingCall{})
	}
	p := &ex.pending[len(ex.pending)-1]
	p.id = append(p.id[:0], id...)
	p.list = list
	p.init = init
}

// listFilter adapts policy visibility to the jsonrpc filter.
type listFilter struct {
	policy  *policycache.AppPolicy
	subject *policycache.Subject
	kind    policycache.Kind
}

func (f *listFilter) Allow(name []byte) bool {
	return f.policy.Visible(f.subject, f.kind, name)
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
