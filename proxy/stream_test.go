package proxy

import (
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/mcpgw/mcpgw/policycache"
)

// A response replayed on a GET stream is filtered by every list shape, each
// pass reading the previous one's output; the buffers alternate and are
// reused from one event to the next.
func TestFilterEventByEveryListKind(t *testing.T) {
	pol := testPolicy(t, "app")
	rl := &relay{r: &route{policy: pol.App("app")}, subject: policycache.NewSubject("alice@example.com", []string{"engineers"}, false)}
	all := []jsonrpc.ListKind{jsonrpc.ListTools, jsonrpc.ListPrompts, jsonrpc.ListResources, jsonrpc.ListResourceTemplates}
	for i, c := range []struct{ data, want, gone string }{
		{`{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"list_items"},{"name":"delete_items"},{"name":"get_secret"}]}}`, `"list_items"`, "delete_items"},
		{`{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"get_item"},{"name":"unlist_all"}],"nextCursor":"c"}}`, `"get_item"`, "unlist_all"},
	} {
		rl.ev = jsonrpc.Event{ID: []byte("e1"), HasID: true, HasData: true, Data: []byte(c.data)}
		out := string(rl.filterEvent(all...))
		if !strings.HasPrefix(out, "id: e1\n") || !strings.Contains(out, c.want) || strings.Contains(out, c.gone) {
			t.Errorf("event %d: got %q, want id kept, %s kept and %s dropped", i, out, c.want, c.gone)
		}
	}
}
