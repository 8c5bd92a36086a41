package jsonrpc

import "testing"

// The hot path allocates nothing once buffers have grown (STYLE.md "The hot
// path"). Each test warms up first, then counts.

func TestScanAllocs(t *testing.T) {
	bodies := [][]byte{
		benchToolsCall(2048),
		[]byte(`{"jsonrpc":"2.0","id":"a\u0062c","method":"tools\/call","params":{"n\u0061me":"x\ty","_meta":{"progressToken":1}}}`),
		[]byte(`{"jsonrpc":"2.0","method":"x","params":{` + manyKeys(40) + `}}`),
		[]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`),
		[]byte(`{"jsonrpc":"2.0","id":1,"method":"x","params":[1,}`),
	}
	var s Scanner
	var m Message
	for _, body := range bodies {
		_ = s.Scan(body, &m)
		if n := testing.AllocsPerRun(100, func() { _ = s.Scan(body, &m) }); n != 0 {
			t.Errorf("Scan(%.40q...): got %v allocs per run, want 0", body, n)
		}
	}
}

func TestAppendFilteredAllocs(t *testing.T) {
	bodies := [][]byte{
		benchToolsList(1000),
		[]byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"n\u0061me":"tool_\u0030"},{"name":"x"}]}}`),
		[]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}`),
	}
	var f Filter
	var dst []byte
	keep := everyTenth{}
	for _, body := range bodies {
		dst, _, _ = f.AppendFiltered(dst[:0], body, ListTools, keep, FilterOptions{PrivateCache: true})
		if n := testing.AllocsPerRun(50, func() {
			dst, _, _ = f.AppendFiltered(dst[:0], body, ListTools, keep, FilterOptions{PrivateCache: true})
		}); n != 0 {
			t.Errorf("AppendFiltered(%.40q...): got %v allocs per run, want 0", body, n)
		}
	}
}
