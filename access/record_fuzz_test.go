package access

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeRecord: stored bytes (from another version, another node, or
// a damaged store) never panic the decoders, and whatever decodes keeps
// the invariants Decide indexes by and survives a round trip.
func FuzzDecodeRecord(f *testing.F) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	req := &requestRecord{
		Request: Request{
			ID: "apr_x", App: app, User: requester, Rule: ruleTwo, Tools: []string{"update_user"},
			ArgumentsHash: hashHex(hashOf("a")), Status: StatusPending, Level: 2,
			Levels:    []Level{{Groups: []string{"secops"}, Count: 2}, {Users: []string{"cab"}, Count: 1}},
			Decisions: []Decision{{Level: 1, Approver: "s", Decision: DecisionApprove, Time: now, WholeTool: true}},
			Created:   now, Expires: now.Add(time.Hour),
		},
		GrantTTL: time.Minute,
	}
	f.Add(encodeRequest(req))
	f.Add(encodeGrant(&Grant{ID: "grt_x", RequestID: "apr_x", App: app, User: requester, Tools: []string{"t"}, Expires: now}))
	f.Add([]byte(`{"v":1,"id":"a","app":"b","user":"c","tools":["t"],"status":"pending","level":0,"levels":[],"grant_ttl_ns":1}`))
	f.Add([]byte(`{"v":1,"id":"a","app":"b","user":"c","tools":["t"],"status":"approved","level":1,"levels":[{"count":1}],"grant_ttl_ns":1,"arguments_hash":"AB"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := decodeGrant(b); err == nil {
			again, err := decodeGrant(encodeGrant(&g.g))
			if err != nil {
				t.Fatalf("a decoded grant does not decode again: %v", err)
			}
			if diff := cmp.Diff(g.g, again.g); diff != "" {
				t.Fatalf("grant round trip (-first +second):\n%s", diff)
			}
		}
		rec, err := decodeRequest(b)
		if err != nil {
			return
		}
		if rec.Level < 1 || rec.Level > len(rec.Levels) || !rec.Status.Valid() {
			t.Fatalf("decoded level %d of %d, status %q", rec.Level, len(rec.Levels), rec.Status)
		}
		_ = rec.Levels[rec.Level-1].Allows("x", []string{"y"})
		again, err := decodeRequest(encodeRequest(rec.clone()))
		if err != nil {
			t.Fatalf("a decoded request does not decode again: %v", err)
		}
		if diff := cmp.Diff(rec, again); diff != "" {
			t.Fatalf("request round trip (-first +second):\n%s", diff)
		}
	})
}
