package jsonrpc

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// view is a Message with strings, for readable diffs.
type view struct {
	Kind                                       Kind
	Method, ID, Params, Name, RefType          string
	Arguments, ProgressToken                   string
	HasMeta, HasMetaClientCapabilities         bool
	MetaProtocolVersion, ProtocolVersion       string
	ClientName, ClientVersion                  string
	ElicitationURL                             bool
	Subscriptions, Result, ResultType          string
	ErrorCode                                  int64
	NilMethod, NilID, NilName, NilParams, NilR bool
}

func viewOf(m *Message) view {
	return view{
		Kind: m.Kind, Method: string(m.Method), ID: string(m.ID), Params: string(m.Params),
		Name: string(m.Name), RefType: string(m.RefType), Arguments: string(m.Arguments),
		ProgressToken: string(m.ProgressToken), HasMeta: m.HasMeta,
		HasMetaClientCapabilities: m.HasMetaClientCapabilities,
		MetaProtocolVersion:       string(m.MetaProtocolVersion), ProtocolVersion: string(m.ProtocolVersion),
		ClientName: string(m.ClientName), ClientVersion: string(m.ClientVersion),
		ElicitationURL: m.ElicitationURL, Subscriptions: string(m.Subscriptions),
		Result: string(m.Result), ResultType: string(m.ResultType), ErrorCode: m.ErrorCode,
		NilMethod: m.Method == nil, NilID: m.ID == nil, NilName: m.Name == nil,
		NilParams: m.Params == nil, NilR: m.Result == nil,
	}
}

// fill sets the Nil* flags of a wanted view from its string fields.
func (v view) fill() view {
	v.NilMethod, v.NilID, v.NilName = v.Method == "", v.ID == "", v.Name == ""
	v.NilParams, v.NilR = v.Params == "", v.Result == ""
	return v
}

const toolsCall = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_user","arguments":{"id":"u1"}}}`

var scanAcceptCases = []struct {
	name string
	body string
	want view
}{
	{"tools/call", toolsCall, view{Kind: KindRequest, Method: "tools/call", ID: "1",
		Params: `{"name":"get_user","arguments":{"id":"u1"}}`, Name: "get_user", Arguments: `{"id":"u1"}`}},
	{"tools/call arguments first with meta", `{"params":{"arguments":{"name":"not this"},"_meta":{"progressToken":42},"name":"t"},"method":"tools/call","id":"abc","jsonrpc":"2.0"}`,
		view{Kind: KindRequest, Method: "tools/call", ID: `"abc"`, Params: `{"arguments":{"name":"not this"},"_meta":{"progressToken":42},"name":"t"}`,
			Name: "t", Arguments: `{"name":"not this"}`, ProgressToken: "42", HasMeta: true}},
	{"whitespace everywhere", " \t\r\n{ \"jsonrpc\" : \"2.0\" , \"id\" : -7 , \"method\" : \"prompts/get\" , \"params\" : { \"name\" : \"p\" } }\n ",
		view{Kind: KindRequest, Method: "prompts/get", ID: "-7", Params: `{ "name" : "p" }`, Name: "p"}},
	{"escaped method and key", `{"jsonrpc":"2.0","id":2,"method":"tools\/call","params":{"n\u0061me":"a\"b\\c\u00e9\ud83d\ude00"}}`,
		view{Kind: KindRequest, Method: "tools/call", ID: "2", Params: `{"n\u0061me":"a\"b\\c\u00e9\ud83d\ude00"}`, Name: "a\"b\\cé😀"}},
	{"escaped version", `{"jsonrpc":"2\u002e0","method":"notifications/initialized"}`,
		view{Kind: KindNotification, Method: "notifications/initialized"}},
	{"raw unicode name", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"日本語ツール"}}`,
		view{Kind: KindRequest, Method: "tools/call", ID: "3", Params: `{"name":"日本語ツール"}`, Name: "日本語ツール"}},
	{"resources/read", `{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"file:///etc/hosts","name":"ignored"}}`,
		view{Kind: KindRequest, Method: "resources/read", ID: "4", Params: `{"uri":"file:///etc/hosts","name":"ignored"}`, Name: "file:///etc/hosts"}},
	{"resources/subscribe", `{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"test://a"}}`,
		view{Kind: KindRequest, Method: "resources/subscribe", ID: "5", Params: `{"uri":"test://a"}`, Name: "test://a"}},
	{"resources/unsubscribe", `{"jsonrpc":"2.0","id":5,"method":"resources/unsubscribe","params":{"uri":"test://a"}}`,
		view{Kind: KindRequest, Method: "resources/unsubscribe", ID: "5", Params: `{"uri":"test://a"}`, Name: "test://a"}},
	{"completion prompt", `{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"x","value":"y"}}}`,
		view{Kind: KindRequest, Method: "completion/complete", ID: "6", Params: `{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"x","value":"y"}}`, Name: "greet", RefType: "ref/prompt"}},
	{"completion resource", `{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"uri":"db://{t}","type":"ref/resource"}}}`,
		view{Kind: KindRequest, Method: "completion/complete", ID: "6", Params: `{"ref":{"uri":"db://{t}","type":"ref/resource"}}`, Name: "db://{t}", RefType: "ref/resource"}},
	{"completion unknown ref type", `{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/other","name":"x"}}}`,
		view{Kind: KindRequest, Method: "completion/complete", ID: "6", Params: `{"ref":{"type":"ref/other","name":"x"}}`, RefType: "ref/other"}},
	{"initialize", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"claude","version":"1.2"}}}`,
		view{Kind: KindRequest, Method: "initialize", ID: "0", Params: `{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"claude","version":"1.2"}}`,
			ProtocolVersion: "2025-11-25", ClientName: "claude", ClientVersion: "1.2", ElicitationURL: true}},
	{"modern request meta", `{"jsonrpc":"2.0","id":"r1","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
		view{Kind: KindRequest, Method: "tools/list", ID: `"r1"`, Params: `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
			HasMeta: true, MetaProtocolVersion: "2026-07-28", HasMetaClientCapabilities: true}},
	{"subscriptions/listen", `{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["a://1","b://\u0032"]}}}`,
		view{Kind: KindRequest, Method: "subscriptions/listen", ID: "9", Params: `{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["a://1","b://\u0032"]}}`,
			Subscriptions: `["a://1","b://\u0032"]`}},
	{"params array", `{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2]}`,
		view{Kind: KindRequest, Method: "x", ID: "1", Params: `[1,2]`}},
	{"notification cancelled", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}`,
		view{Kind: KindNotification, Method: "notifications/cancelled", Params: `{"requestId":3,"reason":"x"}`}},
	{"notification numeric name ignored", `{"jsonrpc":"2.0","method":"custom/x","params":{"name":5,"uri":{}}}`,
		view{Kind: KindNotification, Method: "custom/x", Params: `{"name":5,"uri":{}}`}},
	{"result initialize", `{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}`,
		view{Kind: KindResult, ID: "0", Result: `{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}`, ProtocolVersion: "2025-06-18"}},
	{"result input required", `{"result":{"resultType":"input_required","requestState":"opaque"},"id":"x","jsonrpc":"2.0"}`,
		view{Kind: KindResult, ID: `"x"`, Result: `{"resultType":"input_required","requestState":"opaque"}`, ResultType: "input_required"}},
	{"result tools list", `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","Name":"b"}],"nextCursor":"c"}}`,
		view{Kind: KindResult, ID: "2", Result: `{"tools":[{"name":"a","Name":"b"}],"nextCursor":"c"}`}},
	{"result not object", `{"jsonrpc":"2.0","id":2,"result":null}`,
		view{Kind: KindResult, ID: "2", Result: `null`}},
	{"error", `{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Unknown tool","data":{"x":1}}}`,
		view{Kind: KindError, ID: "3", ErrorCode: -32602}},
	{"error null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`,
		view{Kind: KindError, ID: "null", ErrorCode: -32700}},
	{"error without id", `{"jsonrpc":"2.0","error":{"code":1.5,"message":"x"}}`,
		view{Kind: KindError}},
	{"big integer id kept raw", `{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}`,
		view{Kind: KindRequest, Method: "ping", ID: "123456789012345678901234567890"}},
	{"duplicate key outside checked paths", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1,"a":2,"NAME":3}}}`,
		view{Kind: KindRequest, Method: "tools/call", ID: "1", Params: `{"name":"t","arguments":{"a":1,"a":2,"NAME":3}}`, Name: "t", Arguments: `{"a":1,"a":2,"NAME":3}`}},
	{"numbers", `{"jsonrpc":"2.0","method":"n","params":[0,-0,1.5e+10,2E-3,-1.0e5,123456789]}`,
		view{Kind: KindNotification, Method: "n", Params: `[0,-0,1.5e+10,2E-3,-1.0e5,123456789]`}},
	{"literals", `{"jsonrpc":"2.0","method":"n","params":[true,false,null,{},[]]}`,
		view{Kind: KindNotification, Method: "n", Params: `[true,false,null,{},[]]`}},
}

func TestScanAccepts(t *testing.T) {
	tests := scanAcceptCases
	var s Scanner
	var m Message
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Scan([]byte(tt.body), &m); err != nil {
				t.Fatalf("Scan: got error %v at offset %d, want nil", err, s.Offset())
			}
			want := tt.want.fill()
			if diff := cmp.Diff(want, viewOf(&m)); diff != "" {
				t.Errorf("Scan: message mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func nested(n int) string {
	return `{"jsonrpc":"2.0","method":"x","params":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
}

var scanRefuseCases = []struct {
	name string
	body string
	want error
}{
	{"empty", ``, ErrTruncated},
	{"spaces", "  \n", ErrTruncated},
	{"truncated", `{"jsonrpc":"2.0","method":"x"`, ErrTruncated},
	{"truncated string", `{"jsonrpc":"2.0","method":"x`, ErrTruncated},
	{"trailing data", `{"jsonrpc":"2.0","method":"x"} {}`, ErrTrailingData},
	{"trailing garbage", `{"jsonrpc":"2.0","method":"x"}x`, ErrTrailingData},
	{"two messages", `{"jsonrpc":"2.0","method":"x"}{"jsonrpc":"2.0","method":"y"}`, ErrTrailingData},
	{"not object", `"x"`, ErrNotObject},
	{"number", `12`, ErrNotObject},
	{"batch", `[{"jsonrpc":"2.0","method":"x"}]`, ErrBatch},
	{"invalid top", `nul`, ErrTruncated},
	{"bad literal", `{"jsonrpc":"2.0","method":"x","params":[tru]}`, ErrSyntax},
	{"missing colon", `{"jsonrpc" "2.0"}`, ErrSyntax},
	{"trailing comma object", `{"jsonrpc":"2.0","method":"x",}`, ErrSyntax},
	{"trailing comma array", `{"jsonrpc":"2.0","method":"x","params":[1,]}`, ErrSyntax},
	{"single quotes", `{'jsonrpc':"2.0"}`, ErrSyntax},
	{"unquoted key", `{jsonrpc:"2.0"}`, ErrSyntax},
	{"leading zero", `{"jsonrpc":"2.0","method":"x","params":[01]}`, ErrSyntax},
	{"bare minus", `{"jsonrpc":"2.0","method":"x","params":[-]}`, ErrNumber},
	{"dot no digits", `{"jsonrpc":"2.0","method":"x","params":[1.]}`, ErrNumber},
	{"exp no digits", `{"jsonrpc":"2.0","method":"x","params":[1e+]}`, ErrNumber},
	{"plus sign", `{"jsonrpc":"2.0","method":"x","params":[+1]}`, ErrSyntax},
	{"hex number", `{"jsonrpc":"2.0","method":"x","params":[0x10]}`, ErrSyntax},
	{"NaN", `{"jsonrpc":"2.0","method":"x","params":[NaN]}`, ErrSyntax},
	{"raw 0xff", "{\"jsonrpc\":\"2.0\",\"method\":\"x\xff\"}", ErrUTF8},
	{"raw 0xff in skipped", "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{\"a\":\"\xff\"}}", ErrUTF8},
	{"truncated multibyte", "{\"jsonrpc\":\"2.0\",\"method\":\"\xe6\x97\"}", ErrUTF8},
	{"overlong slash", "{\"jsonrpc\":\"2.0\",\"method\":\"\xc0\xaf\"}", ErrUTF8},
	{"overlong 3 byte", "{\"jsonrpc\":\"2.0\",\"method\":\"\xe0\x80\xaf\"}", ErrUTF8},
	{"encoded surrogate", "{\"jsonrpc\":\"2.0\",\"method\":\"\xed\xa0\x80\"}", ErrUTF8},
	{"above max rune", "{\"jsonrpc\":\"2.0\",\"method\":\"\xf4\x90\x80\x80\"}", ErrUTF8},
	{"high byte outside string", "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\xff", ErrTrailingData},
	{"raw newline in string", "{\"jsonrpc\":\"2.0\",\"method\":\"a\nb\"}", ErrControl},
	{"raw tab in string", "{\"jsonrpc\":\"2.0\",\"method\":\"a\tb\"}", ErrControl},
	{"raw NUL in key", "{\"json\x00rpc\":\"2.0\"}", ErrControl},
	{"bad escape", `{"jsonrpc":"2.0","method":"\x41"}`, ErrEscape},
	{"short unicode escape", `{"jsonrpc":"2.0","method":"\u12"}`, ErrEscape},
	{"non-hex unicode escape", `{"jsonrpc":"2.0","method":"\u12g4"}`, ErrEscape},
	{"lone high surrogate", `{"jsonrpc":"2.0","method":"\ud800"}`, ErrEscape},
	{"lone low surrogate", `{"jsonrpc":"2.0","method":"\udc00"}`, ErrEscape},
	{"high surrogate then char", `{"jsonrpc":"2.0","method":"\ud800\u0041"}`, ErrEscape},
	{"reversed pair", `{"jsonrpc":"2.0","method":"\ude00\ud83d"}`, ErrEscape},
	{"lone surrogate in skipped", `{"jsonrpc":"2.0","method":"x","params":{"arguments":{"a":"\udfff"}}}`, ErrEscape},
	{"depth 65", nested(65), ErrDepth},
	{"depth 65 in object", `{"jsonrpc":"2.0","method":"x","params":{"arguments":` + strings.Repeat(`{"a":`, 63) + `1` + strings.Repeat(`}`, 63) + `}}`, ErrDepth},

	{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`, ErrDuplicateKey},
	{"duplicate escaped key", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","n\u0061me":"b"}}`, ErrDuplicateKey},
	{"duplicate unchecked top key", `{"jsonrpc":"2.0","id":1,"method":"x","extra":1,"extra":2}`, ErrDuplicateKey},
	{"duplicate in meta", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":1,"progressToken":2}}}`, ErrDuplicateKey},
	{"duplicate in ref", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","type":"ref/resource"}}}`, ErrDuplicateKey},
	{"duplicate in error", `{"jsonrpc":"2.0","id":1,"error":{"code":1,"code":2}}`, ErrDuplicateKey},
	{"duplicate in result", `{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","resultType":"input_required"}}`, ErrDuplicateKey},
	{"duplicate jsonrpc", `{"jsonrpc":"2.0","jsonrpc":"2.0","method":"x"}`, ErrDuplicateKey},
	{"duplicate among many keys", `{"jsonrpc":"2.0","method":"x","params":{` + manyKeys(40) + `,"k7":0}}`, ErrDuplicateKey},
	{"Method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}`, ErrAmbiguousKey},
	{"NAME alone", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"x"}}`, ErrAmbiguousKey},
	{"name and Name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}`, ErrAmbiguousKey},
	{"escaped Name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","\u004eame":"b"}}`, ErrAmbiguousKey},
	{"long s", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progreſsToken":1}}}`, ErrAmbiguousKey},
	{"kelvin", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressTo\u212aen":1}}}`, ErrAmbiguousKey},
	{"URI", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"URI":"x"}}`, ErrAmbiguousKey},
	{"Ref Type", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"Type":"ref/prompt"}}}`, ErrAmbiguousKey},
	{"JSONRPC", `{"JSONRPC":"2.0","jsonrpc":"2.0","method":"x"}`, ErrAmbiguousKey},
	{"Error Code", `{"jsonrpc":"2.0","id":1,"error":{"Code":1}}`, ErrAmbiguousKey},
	{"ResultType", `{"jsonrpc":"2.0","id":1,"result":{"ResultType":"complete"}}`, ErrAmbiguousKey},
	{"syntax wins over earlier semantic", `{"jsonrpc":"2.0","Method":"x","method":"y",}`, ErrSyntax},

	{"no version", `{"id":1,"method":"x"}`, ErrVersion},
	{"version 1.0", `{"jsonrpc":"1.0","id":1,"method":"x"}`, ErrVersion},
	{"version number", `{"jsonrpc":2.0,"id":1,"method":"x"}`, ErrVersion},
	{"version with space", `{"jsonrpc":"2.0 ","id":1,"method":"x"}`, ErrVersion},
	{"id null", `{"jsonrpc":"2.0","id":null,"method":"x"}`, ErrInvalidID},
	{"id float", `{"jsonrpc":"2.0","id":1.5,"method":"x"}`, ErrInvalidID},
	{"id exponent", `{"jsonrpc":"2.0","id":1e3,"method":"x"}`, ErrInvalidID},
	{"id bool", `{"jsonrpc":"2.0","id":true,"method":"x"}`, ErrInvalidID},
	{"id object", `{"jsonrpc":"2.0","id":{},"method":"x"}`, ErrInvalidID},
	{"id array", `{"jsonrpc":"2.0","id":[1],"method":"x"}`, ErrInvalidID},
	{"result id null", `{"jsonrpc":"2.0","id":null,"result":{}}`, ErrInvalidID},
	{"result without id", `{"jsonrpc":"2.0","result":{}}`, ErrInvalidID},
	{"error id bool", `{"jsonrpc":"2.0","id":false,"error":{"code":1}}`, ErrInvalidID},
	{"result and error", `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}`, ErrInvalidMessage},
	{"method and result", `{"jsonrpc":"2.0","id":1,"method":"x","result":{}}`, ErrInvalidMessage},
	{"method and error", `{"jsonrpc":"2.0","id":1,"method":"x","error":{"code":1}}`, ErrInvalidMessage},
	{"nothing", `{"jsonrpc":"2.0","id":1}`, ErrInvalidMessage},
	{"method number", `{"jsonrpc":"2.0","id":1,"method":5}`, ErrInvalidMessage},
	{"params string", `{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}`, ErrInvalidMessage},
	{"error string", `{"jsonrpc":"2.0","id":1,"error":"bad"}`, ErrInvalidMessage},
	{"tools/call name number", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`, ErrInvalidMessage},
	{"resources/read uri null", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}`, ErrInvalidMessage},
	{"completion ref string", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":"ref/prompt"}}`, ErrInvalidMessage},
	{"meta not object", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":[]}}`, ErrInvalidMessage},
	{"meta version number", `{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}`, ErrInvalidMessage},
	{"subscriptions not strings", `{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a",1]}}}`, ErrInvalidMessage},
	{"subscriptions not array", `{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":"a"}}}`, ErrInvalidMessage},
	{"initialize version number", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1}}`, ErrInvalidMessage},
}

func TestScanRefuses(t *testing.T) {
	tests := scanRefuseCases
	var s Scanner
	var m Message
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Scan([]byte(tt.body), &m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Scan(%q): got error %v, want %v", tt.body, err, tt.want)
			}
			if diff := cmp.Diff(viewOf(&Message{}), viewOf(&m)); diff != "" {
				t.Errorf("Scan: message not reset on error (-want +got):\n%s", diff)
			}
			if off := s.Offset(); off < 0 || off > len(tt.body) {
				t.Errorf("Offset: got %d, want within [0,%d]", off, len(tt.body))
			}
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k`)
		b.WriteString(string(rune('0' + i/10)))
		b.WriteString(string(rune('0' + i%10)))
		b.WriteString(`":0`)
	}
	return strings.ReplaceAll(b.String(), `"k0`, `"k`)
}

func TestScanDepthLimit(t *testing.T) {
	var s Scanner
	var m Message
	if err := s.Scan([]byte(nested(MaxDepth)), &m); err != nil {
		t.Errorf("depth %d: got error %v, want nil", MaxDepth, err)
	}
	if err := s.Scan([]byte(nested(MaxDepth+1)), &m); !errors.Is(err, ErrDepth) {
		t.Errorf("depth %d: got error %v, want %v", MaxDepth+1, err, ErrDepth)
	}
}

func TestScanErrorsMatchSyntax(t *testing.T) {
	for _, err := range []error{ErrTruncated, ErrUTF8, ErrEscape, ErrControl, ErrNumber, ErrDepth, ErrTrailingData} {
		if !errors.Is(err, ErrSyntax) || CodeOf(err) != ParseError {
			t.Errorf("%v: got errors.Is(ErrSyntax)=%v CodeOf=%d, want true %d", err, errors.Is(err, ErrSyntax), CodeOf(err), ParseError)
		}
	}
	for _, err := range []error{ErrDuplicateKey, ErrAmbiguousKey, ErrVersion, ErrInvalidID, ErrInvalidMessage, ErrBatch, ErrNotObject} {
		if errors.Is(err, ErrSyntax) || CodeOf(err) != InvalidRequest {
			t.Errorf("%v: got errors.Is(ErrSyntax)=%v CodeOf=%d, want false %d", err, errors.Is(err, ErrSyntax), CodeOf(err), InvalidRequest)
		}
	}
}

func TestScanLongStrings(t *testing.T) {
	// Every position of a special byte relative to the 8- and 16-byte
	// blocks, in a checked string, in a skipped value and in a skipped key.
	var s Scanner
	var m Message
	for n := 0; n < 40; n++ {
		pad := strings.Repeat("a", n)
		for _, tc := range []struct {
			name, value string
			want        error
			decoded     string
		}{
			{"plain", pad, nil, pad},
			{"escape", pad + `\n` + pad, nil, pad + "\n" + pad},
			{"unicode", pad + "é" + pad, nil, pad + "é" + pad},
			{"control", pad + "\x01", ErrControl, ""},
			{"bad utf8", pad + "\xc3", ErrUTF8, ""},
		} {
			body := `{"jsonrpc":"2.0","method":"` + tc.value + `"}`
			err := s.Scan([]byte(body), &m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s/%d: got error %v, want %v", tc.name, n, err, tc.want)
			}
			if err == nil && string(m.Method) != tc.decoded {
				t.Fatalf("%s/%d: got method %q, want %q", tc.name, n, m.Method, tc.decoded)
			}
			for _, body := range []string{
				`{"jsonrpc":"2.0","method":"m","params":{"arguments":{"k":"` + tc.value + `"}}}`,
				`{"jsonrpc":"2.0","method":"m","params":{"arguments":{"` + tc.value + `":1}}}`,
				`{"jsonrpc":"2.0","method":"m","params":{"arguments":["` + tc.value + `"]}}`,
			} {
				if err := s.Scan([]byte(body), &m); !errors.Is(err, tc.want) {
					t.Fatalf("%s/%d: Scan(%q): got error %v, want %v", tc.name, n, body, err, tc.want)
				}
			}
		}
	}
}

func TestSplitBatch(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
		err  error
	}{
		{"two", ` [ {"a":1} , {"b":[2]}] `, []string{`{"a":1}`, `{"b":[2]}`}, nil},
		{"one", `[{"jsonrpc":"2.0","method":"x"}]`, []string{`{"jsonrpc":"2.0","method":"x"}`}, nil},
		{"non-objects kept for Scan to refuse", `[1,"x"]`, []string{`1`, `"x"`}, nil},
		{"empty", `[]`, nil, ErrEmptyBatch},
		{"empty with space", `[ ]`, nil, ErrEmptyBatch},
		{"not array", `{"a":1}`, nil, ErrNotBatch},
		{"trailing", `[{}]x`, nil, ErrTrailingData},
		{"truncated", `[{},`, nil, ErrTruncated},
		{"invalid element", `[{"a":tru}]`, nil, ErrSyntax},
		{"depth counts the array", "[" + strings.Repeat("[", 64) + strings.Repeat("]", 64) + "]", nil, ErrDepth},
	}
	var s Scanner
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.SplitBatch([]byte(tt.body), nil)
			if !errors.Is(err, tt.err) {
				t.Fatalf("SplitBatch: got error %v, want %v", err, tt.err)
			}
			var gs []string
			for _, e := range got {
				gs = append(gs, string(e))
			}
			if tt.err == nil {
				if diff := cmp.Diff(tt.want, gs); diff != "" {
					t.Errorf("SplitBatch: spans (-want +got):\n%s", diff)
				}
			} else if len(got) != 0 {
				t.Errorf("SplitBatch: got %d spans on error, want 0", len(got))
			}
		})
	}
	for body, want := range map[string]bool{"[": true, " \n[1]": true, `{}`: false, "": false, " ": false} {
		if got := IsBatch([]byte(body)); got != want {
			t.Errorf("IsBatch(%q): got %v, want %v", body, got, want)
		}
	}
}
