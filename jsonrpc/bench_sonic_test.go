package jsonrpc

import (
	"testing"

	"github.com/bytedance/sonic/ast"
)

// BenchmarkScanToolsCall2KiBSonicSearcher is the second baseline: sonic's
// searcher finding method, id and params.name in the same body. It does not
// validate the document (it skips what it does not look at) and each path is
// its own pass, so it is the speed of "find three fields", not of "read with
// certainty". The scanner's own benchmark is BenchmarkScanToolsCall2KiB.
func BenchmarkScanToolsCall2KiBSonicSearcher(b *testing.B) {
	body := string(benchToolsCall(2048))
	s := ast.NewSearcher(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		m, err := s.GetByPath("method")
		if err != nil {
			b.Fatal(err)
		}
		if v, err := m.String(); err != nil || v != "tools/call" {
			b.Fatalf("method %q %v", v, err)
		}
		id, err := s.GetByPath("id")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := id.Raw(); err != nil {
			b.Fatal(err)
		}
		n, err := s.GetByPath("params", "name")
		if err != nil {
			b.Fatal(err)
		}
		if v, err := n.String(); err != nil || v != "query_database" {
			b.Fatalf("name %q %v", v, err)
		}
	}
}
