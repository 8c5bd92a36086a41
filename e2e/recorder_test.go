//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// recorder is a reverse proxy between mcpgw and the upstream server that
// remembers what mcpgw forwarded: the JSON-RPC method and tool, prompt or
// resource name of every POSTed message, the Authorization headers it
// carried, and the session ids the upstream handed out. It is how the tests
// prove that a denied call never reached the server.
type recorder struct {
	URL string

	mu         sync.Mutex
	messages   []forwarded
	authz      []string
	sessionIDs []string
	inflight   map[string]int // "GET" or "POST tools/call": requests still being served
}

type forwarded struct {
	Method, Name string
}

func startRecorder(t *testing.T, upstream string) *recorder {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{inflight: map[string]int{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
		},
		FlushInterval: -1, // relay SSE events as they come
		ModifyResponse: func(resp *http.Response) error {
			if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
				r.mu.Lock()
				r.sessionIDs = append(r.sessionIDs, id)
				r.mu.Unlock()
			}
			return nil
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		key := req.Method
		if m := r.record(req, body); m != "" {
			key += " " + m
		}
		r.mu.Lock()
		r.inflight[key]++
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.inflight[key]--
			r.mu.Unlock()
		}()
		proxy.ServeHTTP(w, req)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.URL = "http://" + ln.Addr().String()
	return r
}

// record notes a request and returns the JSON-RPC method of the (first)
// message it carries.
func (r *recorder) record(req *http.Request, body []byte) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := req.Header.Values("Authorization"); len(a) > 0 {
		r.authz = append(r.authz, a...)
	}
	if req.Method != http.MethodPost {
		return ""
	}
	type message struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		} `json:"params"`
	}
	var msgs []message
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		_ = json.Unmarshal(body, &msgs)
	} else {
		var m message
		if json.Unmarshal(body, &m) == nil {
			msgs = append(msgs, m)
		}
	}
	for _, m := range msgs {
		name := m.Params.Name
		if name == "" {
			name = m.Params.URI
		}
		r.messages = append(r.messages, forwarded{Method: m.Method, Name: name})
	}
	if len(msgs) == 0 {
		return ""
	}
	return msgs[0].Method
}

// active is how many requests with this key ("GET", "POST tools/call") the
// upstream is still serving.
func (r *recorder) active(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[key]
}

// waitActive waits up to timeout for active(key) to reach n, and reports
// whether it did.
func (r *recorder) waitActive(key string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if r.active(key) == n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// count is how many forwarded messages had this method and (if not empty)
// name.
func (r *recorder) count(method, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.messages {
		if m.Method == method && (name == "" || m.Name == name) {
			n++
		}
	}
	return n
}

// authorization is every Authorization header value the upstream received.
func (r *recorder) authorization() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.authz...)
}

// upstreamSessionIDs is every MCP-Session-Id the upstream answered with.
func (r *recorder) upstreamSessionIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sessionIDs...)
}
