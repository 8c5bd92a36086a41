package jsonrpc

import (
	"errors"
	"strings"
	"testing"
)

// allowSet allows the names it holds.
type allowSet map[string]bool

func (a allowSet) Allow(name []byte) bool { return a[string(name)] }

var filterCases = []struct {
	name    string
	list    ListKind
	private bool
	body    string
	want    string
	stats   FilterStats
}{
	{"tools all kept", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}`, FilterStats{Kept: 2}},
	{"first dropped", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"z"},{"name":"a"},{"name":"b"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}`, FilterStats{Kept: 2, Dropped: 1}},
	{"middle dropped", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"z"},{"name":"b"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}`, FilterStats{Kept: 2, Dropped: 1}},
	{"last dropped", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"},{"name":"z"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}`, FilterStats{Kept: 2, Dropped: 1}},
	{"all dropped, nextCursor kept", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"y"},{"name":"z"}],"nextCursor":"c2"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[],"nextCursor":"c2"}}`, FilterStats{Dropped: 2}},
	{"empty list", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[ ],"nextCursor":"c"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[ ],"nextCursor":"c"}}`, FilterStats{}},
	{"pretty printed", ListTools, false,
		"{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"z\"},\n      {\"name\": \"a\"},\n      {\"name\": \"y\"}\n    ]\n  }\n}\n",
		"{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"a\"}\n    ]\n  }\n}\n", FilterStats{Kept: 1, Dropped: 2}},
	{"prompts", ListPrompts, false,
		`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a","arguments":[{"name":"z"}]},{"name":"q"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a","arguments":[{"name":"z"}]}]}}`, FilterStats{Kept: 1, Dropped: 1}},
	{"resources by uri", ListResources, false,
		`{"jsonrpc":"2.0","id":1,"result":{"resources":[{"name":"a","uri":"x:z"},{"uri":"x:a","name":"z"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"x:a","name":"z"}]}}`, FilterStats{Kept: 1, Dropped: 1}},
	{"templates by uriTemplate", ListResourceTemplates, false,
		`{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"tpl/a","name":"n"},{"uri":"tpl/a","uriTemplate":"tpl/z"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"tpl/a","name":"n"}]}}`, FilterStats{Kept: 1, Dropped: 1}},
	{"name last, nested names ignored", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"inputSchema":{"name":"a","properties":{"name":{"type":"string"}}},"annotations":{},"name":"z"},{"description":"d","name":"b"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"description":"d","name":"b"}]}}`, FilterStats{Kept: 1, Dropped: 1}},
	{"escaped names", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"n\u0061me":"\u0061"},{"name":"\u00e9"},{"name":"a\/b"},{"name":"\u007a"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"n\u0061me":"\u0061"},{"name":"\u00e9"},{"name":"a\/b"}]}}`, FilterStats{Kept: 3, Dropped: 1}},
	{"unreadable entries dropped", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","name":"a"},{"Name":"a"},{"name":"a","NAME":"z"},{"desc":"no name"},{"name":5},"a",null,{"name":"b"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]}}`, FilterStats{Kept: 1, Dropped: 7, Unreadable: 7}},
	{"error untouched", ListTools, true,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no","data":{"tools":[{"name":"z"}]}}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no","data":{"tools":[{"name":"z"}]}}}`, FilterStats{}},
	{"result without list", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"z"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"z"}]}}`, FilterStats{}},
	{"list not an array", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":null}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":null}}`, FilterStats{}},
	{"ListNone copies", ListNone, false,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"z"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"z"}]}}`, FilterStats{}},
	{"cacheScope replaced", ListTools, true,
		`{"jsonrpc":"2.0","id":1,"result":{"ttlMs":6000,"cacheScope":"public","tools":[{"name":"z"},{"name":"a"}]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"ttlMs":6000,"cacheScope":"private","tools":[{"name":"a"}]}}`, FilterStats{Kept: 1, Dropped: 1}},
	{"cacheScope replaced after list", ListTools, true,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"z"},{"name":"a"}],"cacheScope" : "public" }}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"cacheScope" : "private" }}`, FilterStats{Kept: 1, Dropped: 1}},
	{"cacheScope added", ListTools, true,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}] ,"nextCursor":"n" }}`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}] ,"nextCursor":"n","cacheScope":"private" }}`, FilterStats{Kept: 1}},
	{"cacheScope added to empty result", ListTools, true,
		`{"jsonrpc":"2.0","id":1,"result":{ }}`,
		`{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"private" }}`, FilterStats{}},
	{"cacheScope left alone without PrivateCache", ListTools, false,
		`{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"public","tools":[]}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"public","tools":[]}}`, FilterStats{}},
}

func TestAppendFiltered(t *testing.T) {
	keepAB := allowSet{"a": true, "b": true, "x:a": true, "tpl/a": true, "é": true, "a/b": true}
	tests := filterCases
	var f Filter
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix:")
			got, stats, err := f.AppendFiltered(prefix, []byte(tt.body), tt.list, keepAB, FilterOptions{PrivateCache: tt.private})
			if err != nil {
				t.Fatalf("AppendFiltered: got error %v at %d, want nil", err, f.Offset())
			}
			if string(got) != "prefix:"+tt.want {
				t.Errorf("AppendFiltered:\n got %s\nwant %s", got, "prefix:"+tt.want)
			}
			if stats != tt.stats {
				t.Errorf("stats: got %+v, want %+v", stats, tt.stats)
			}
		})
	}
}

func TestAppendFilteredRefuses(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"invalid JSON", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},]}}`, ErrSyntax},
		{"invalid JSON after list", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]},}`, ErrSyntax},
		{"bad UTF-8 in dropped entry", "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"z\",\"d\":\"\xff\"}]}}", ErrUTF8},
		{"Tools beside tools", `{"jsonrpc":"2.0","id":1,"result":{"tools":[],"Tools":[{"name":"z"}]}}`, ErrAmbiguousKey},
		{"tools twice", `{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"z"}]}}`, ErrDuplicateKey},
		{"CacheScope", `{"jsonrpc":"2.0","id":1,"result":{"tools":[],"CacheScope":"public"}}`, ErrAmbiguousKey},
		{"not a message", `{"id":1,"result":{"tools":[]}}`, ErrVersion},
		{"trailing data", `{"jsonrpc":"2.0","id":1,"result":{"tools":[]}} x`, ErrTrailingData},
	}
	var f Filter
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, stats, err := f.AppendFiltered(dst, []byte(tt.body), ListTools, allowSet{"a": true}, FilterOptions{PrivateCache: true})
			if !errors.Is(err, tt.want) {
				t.Fatalf("AppendFiltered: got error %v, want %v", err, tt.want)
			}
			if string(got) != "keep" || stats != (FilterStats{}) {
				t.Errorf("AppendFiltered on error: got %q %+v, want %q and zero stats", got, stats, "keep")
			}
		})
	}
}

func TestAppendFilteredNilKeep(t *testing.T) {
	var f Filter
	got, stats, err := f.AppendFiltered(nil, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}`), ListTools, nil, FilterOptions{})
	if err != nil || string(got) != `{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}` || stats.Dropped != 1 {
		t.Errorf("nil keep: got %s %+v %v, want an empty list", got, stats, err)
	}
}

func TestListKindOf(t *testing.T) {
	for method, want := range map[string]ListKind{
		"tools/list": ListTools, "prompts/list": ListPrompts, "resources/list": ListResources,
		"resources/templates/list": ListResourceTemplates, "tools/call": ListNone, "": ListNone, "Tools/List": ListNone,
	} {
		if got := ListKindOf([]byte(method)); got != want {
			t.Errorf("ListKindOf(%q): got %v, want %v", method, got, want)
		}
	}
	if got := strings.Join([]string{ListTools.Key(), ListResourceTemplates.NameKey(), ListNone.Key()}, ","); got != "tools,uriTemplate," {
		t.Errorf("Key/NameKey: got %q, want %q", got, "tools,uriTemplate,")
	}
}
