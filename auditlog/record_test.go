package auditlog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fullRecord has every field set.
func fullRecord() *Record {
	return &Record{
		ID:              "gw1-42",
		Seq:             42,
		PrevHash:        Hash{1, 2, 3},
		Hash:            Hash{0xff, 31: 0xee},
		Time:            time.Date(2026, 11, 25, 23, 1, 2, 42, time.UTC),
		Kind:            KindActivity,
		SessionID:       "sess-1",
		App:             "mcp-pingone-admin",
		User:            "alice@example.com",
		Groups:          []string{"engineers", "sre"},
		Device:          Device{ClientName: "claude-ai", ClientVersion: "0.1.0", UserAgent: "node", RemoteAddr: "10.0.0.1:5555"},
		ResourceType:    ResourceTypeMCP,
		ProtocolVersion: "2025-11-25",
		Direction:       ClientToServer,
		Message:         MessageRequest,
		Method:          "tools/call",
		JSONRPCID:       json.RawMessage(`"abc"`),
		Name:            "get_user",
		Arguments:       json.RawMessage(`{"id":"u1","n":[1,2]}`),
		Served:          json.RawMessage(`{"count":1,"names":["get_user"]}`),
		ProgressToken:   json.RawMessage(`7`),
		Decision:        DecisionDeny,
		Rule:            "readers",
		Reason:          "deny_tools matched",
		Status:          StatusError,
		ErrorCode:       -32602,
		LatencyUS:       1234,
		BytesIn:         100,
		BytesOut:        200,
	}
}

func decode(t testing.TB, b []byte) *Record {
	t.Helper()
	var got Record
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("encoding/json cannot read %s: %v", b, err)
	}
	return &got
}

// sameRecord compares records the way JSON can carry them: times by
// instant, empty and nil slices alike.
var sameRecord = cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}

func TestAppendJSONDecodesToSameRecord(t *testing.T) {
	offset := time.FixedZone("x", -7*3600)
	for _, tc := range []struct {
		name string
		r    *Record
	}{
		{"full", fullRecord()},
		{"minimal", &Record{ID: "a-1", Seq: 1, Time: time.Unix(0, 0)}},
		{"zero", &Record{}},
		{"device part", &Record{ID: "x", Device: Device{UserAgent: "curl/8"}, Time: time.Unix(1, 999999999)}},
		{"device last", &Record{Device: Device{RemoteAddr: "[::1]:1"}}},
		{"non-UTC time", &Record{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, offset)}},
		{"number id", &Record{JSONRPCID: json.RawMessage(`-12.5e3`), Method: "ping"}},
		{"escapes", &Record{User: "a\"b\\c\n\r\t\x00\x1f\u2028\u2029<&>é😀", Groups: []string{"", "\x7f"}}},
		{"negative ints", &Record{ErrorCode: -1, LatencyUS: -2, BytesIn: 1 << 62, BytesOut: -1 << 63}},
		{"max seq", &Record{Seq: 1<<64 - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendJSON(nil, tc.r)
			if !json.Valid(b) {
				t.Fatalf("invalid JSON: %s", b)
			}
			got := decode(t, b)
			if diff := cmp.Diff(tc.r, got, sameRecord); diff != "" {
				t.Errorf("decoded record differs (-want +got):\n%s\n%s", diff, b)
			}
		})
	}
}

func TestAppendJSONGolden(t *testing.T) {
	got := string(AppendJSON(nil, fullRecord()))
	want := `{"id":"gw1-42","seq":42,"prev_hash":"0102030000000000000000000000000000000000000000000000000000000000",` +
		`"hash":"ff000000000000000000000000000000000000000000000000000000000000ee","time":"2026-11-25T23:01:02.000000042Z",` +
		`"kind":"activity","session_id":"sess-1","app":"mcp-pingone-admin","user":"alice@example.com","groups":["engineers","sre"],` +
		`"device":{"client_name":"claude-ai","client_version":"0.1.0","user_agent":"node","remote_addr":"10.0.0.1:5555"},` +
		`"resource_type":"MCP","protocol_version":"2025-11-25","direction":"client_to_server","message":"request","method":"tools/call","jsonrpc_id":"abc",` +
		`"name":"get_user","arguments":{"id":"u1","n":[1,2]},"served":{"count":1,"names":["get_user"]},"progress_token":7,"decision":"deny","rule":"readers",` +
		`"reason":"deny_tools matched","status":"error","error_code":-32602,"latency_us":1234,"bytes_in":100,"bytes_out":200}`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(AppendJSON(nil, &Record{})); got != `{"id":"","seq":0,"time":"0001-01-01T00:00:00.000000000Z"}` {
		t.Errorf("zero record: got %s", got)
	}
}

func TestAppendJSONClampsYears(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(-5, 3, 1, 0, 0, 0, 0, time.UTC), `"0000-01-01T00:00:00.000000000Z"`},
		{time.Date(10000, 3, 1, 0, 0, 0, 0, time.UTC), `"9999-12-31T23:59:59.999999999Z"`},
		{time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC), `"9999-12-31T23:59:59.000000001Z"`},
	} {
		if got := string(appendTime(nil, tc.t)); got != tc.want {
			t.Errorf("appendTime(%v): got %s, want %s", tc.t, got, tc.want)
		}
	}
}

// TestAppendJSONAllocs is the hot-path gate: encoding a record into a
// buffer with room allocates nothing.
func TestAppendJSONAllocs(t *testing.T) {
	r := fullRecord()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], r) }); n != 0 {
		t.Errorf("AppendJSON: got %v allocs per run, want 0", n)
	}
}

// perByte replaces each invalid UTF-8 byte of s by U+FFFD, as AppendJSON
// and encoding/json do.
func perByte(s string) string { return string([]rune(s)) }

func FuzzAppendJSON(f *testing.F) {
	f.Add("gw1-1", "alice", "get_\xffuser", "tools/call", "a\"b\\\n\u2028", "g\x00")
	f.Add("", "\xed\xa0\x80", "\xc3", "é😀", "\x7f<>&", "")
	f.Fuzz(func(t *testing.T, id, user, name, method, reason, group string) {
		r := fullRecord()
		r.ID, r.User, r.Name, r.Method, r.Reason = id, user, name, method, reason
		r.Groups = []string{group, user}
		r.Device.UserAgent = reason
		b := AppendJSON(nil, r)
		if !utf8.Valid(b) {
			t.Fatalf("invalid UTF-8: %q", b)
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %q", b)
		}
		got := decode(t, b)
		want := *r
		want.ID, want.User, want.Name, want.Method, want.Reason = perByte(id), perByte(user), perByte(name), perByte(method), perByte(reason)
		want.Groups = []string{perByte(group), perByte(user)}
		want.Device.UserAgent = perByte(reason)
		if diff := cmp.Diff(&want, got, sameRecord); diff != "" {
			t.Errorf("decoded record differs (-want +got):\n%s", diff)
		}
		if again := AppendJSON(nil, got); !bytes.Equal(again, b) {
			t.Errorf("decoded and encoded again:\n%q\nfirst encoding:\n%q", again, b)
		}
		// The hash member can be found by the first ,"hash":" (doc.go): no
		// string before it can hide that text.
		if i := bytes.Index(b, []byte(hashMember)); i < 0 || !strings.HasPrefix(string(b[i+len(hashMember):]), r.Hash.String()) {
			t.Errorf("hash member not found first in %q", b)
		}
	})
}

func TestHashText(t *testing.T) {
	h := Hash{0xab, 31: 0x01}
	b, _ := h.MarshalText()
	var back Hash
	if err := back.UnmarshalText(b); err != nil || back != h {
		t.Errorf("round trip: got %v, %v; want %v", back, err, h)
	}
	for _, bad := range []string{"", "ab", strings.Repeat("g", 64), strings.Repeat("a", 66)} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q): got no error", bad)
		}
	}
}
