// Package auditlog is mcpgw's audit trail: the record schema of DESIGN.md
// section 6, a reflection-free encoder for it, and the spool, an
// append-only, hash-chained log of records in a Pebble database under
// audit.dir, written before the proxy forwards a request (sync mode); the
// Shipper that sends the records to the control plane, and the retention
// and size limits that delete them.
//
// # Guarantees
//
//   - Sync mode: when Log.Append returns nil, the record is in Pebble's
//     write-ahead log and fsynced; it survives a crash of the process or
//     the machine. Appends that wait together share one batch and one
//     fsync (group commit).
//   - Async mode: Append returns once the record is queued; a crash can
//     lose the records of the last moments (never one in the middle of the
//     chain: what survives is a prefix). Close writes and syncs the rest.
//   - No record is dropped: when the queue (4096 records) is full, Append
//     blocks until the committer makes room, in both modes.
//   - Every record has a seq, one more than the record before it, unique
//     and monotonic for the life of the spool (across restarts, and after
//     retention deletes old records), and an id "<node>-<seq>" unique
//     across gateways with distinct node ids.
//   - Tamper evidence: each record carries the hash of the one before, so
//     an edit, a deletion in the middle, or a reordering is found by
//     Log.Verify (or a Verifier over shipped lines) at the first record
//     where the chain breaks.
//   - After a Pebble write error the Log accepts no more records (fail
//     closed); the error is returned by every later Append.
//
// # Record JSON
//
// AppendJSON writes one object per record, fields in this order, optional
// ones left out when empty (the spool stores exactly these bytes, and
// shipping sends them one per line):
//
//	{"id":"gw1-42","seq":42,"prev_hash":"<64 hex>","hash":"<64 hex>",
//	 "time":"2026-11-25T23:01:02.000000042Z","kind":"activity",
//	 "session_id":"…","app":"…","user":"…","groups":["…"],
//	 "device":{"client_name":"…","client_version":"…","user_agent":"…","remote_addr":"…"},
//	 "resource_type":"MCP","protocol_version":"2025-11-25","direction":"client_to_server","message":"request",
//	 "method":"tools/call","jsonrpc_id":7,"name":"get_user","arguments":{…},"served":{…},
//	 "progress_token":"…","decision":"deny","rule":"readers","reason":"…",
//	 "status":"error","error_code":-32602,"latency_us":1234,"bytes_in":100,"bytes_out":200}
//
// jsonrpc_id, arguments and progress_token are raw JSON, copied as the
// caller passed them: the caller validates them (the spans jsonrpc.Scan
// returned, or JSON the gateway produced).
//
// # Chain
//
// The canonical encoding of a record is its JSON without the hash member:
// the first occurrence of `,"hash":"` up to and including the closing
// quote of the 64 digits (no string member before it can contain that
// text, since a quote inside a string is escaped). Then
//
//	hash = SHA-256(prev_hash (32 bytes) || canonical encoding)
//
// where prev_hash is the previous record's hash, absent from the JSON (32
// zero bytes) for the first record of a spool:
//
//	 seq 1                  seq 2                  seq 3
//	+--------------------+ +--------------------+ +--------------------+
//	| prev_hash: 0…0     | | prev_hash: H1 <----+-+ prev_hash: H2 <----+-- …
//	| body (time … )     | | body               | | body               |
//	| hash: H1 ----------+-+>                   | |                    |
//	+--------------------+ | hash: H2 ----------+-+>                   |
//	                       +--------------------+ | hash: H3           |
//	                                              +--------------------+
//
// A receiver of shipped lines can check them with a Verifier alone,
// anchored at the last seq and hash it holds.
//
// # Keys
//
// A spool is two Pebble databases under its directory. records/ holds the
// records and, written once, the node id, and nothing else: its tables
// never overlap, so compactions move them down instead of rewriting them.
// (A key written beside every batch, such as a chain head or an index
// entry, makes every table span the whole key range and every compaction
// rewrite the spool; it once cost Append more than half its speed.)
// index/ holds everything else.
//
//	records/ "m/node"            the node id
//	records/ 'r' seq (8, BE)     the record's JSON (AppendJSON), in seq order
//	index/   "m/anchor"          seq (8 bytes, big-endian) || hash (32) of the last
//	                             record deleted (retention, DropOldestShipped),
//	                             written (synced) before the deletion; absent when
//	                             none was
//	index/   "m/shipped"         seq (8, BE): the last record the receiver acknowledged
//	index/   "m/indexed"         seq (8, BE): the last record the index covers
//	index/   'x' ...             the query indexes (see Queries)
//
// The chain head is the last record (or the anchor, when every record was
// deleted): Open reads it. The committer applies a batch's index entries
// and "m/indexed" after the batch's records, without a sync of its own;
// Open brings an index that a crash left behind level with the records,
// from their JSON, and rebuilds one left ahead of them. Records at or below
// the anchor that a crash during a deletion left are passed over.
//
// Verify anchors the chain at "m/anchor", or without it at the start (seq
// 1, no prev_hash): deleting records from the front by any other means than
// the Log's own is a break, like a deletion in the middle.
//
// # Shipping
//
// A Shipper (audit.ship) sends the records after "m/shipped", in seq order,
// in batches of up to ShipOptions.Batch records, one POST a batch:
//
//	POST <audit.ship.url>
//	Content-Type: application/x-ndjson
//	Content-Encoding: gzip
//	Authorization: Bearer <token>        (with ShipOptions.Token)
//	Idempotency-Key: <node>-<first seq>-<last seq>
//	Mcpgw-Node: <node>
//	Mcpgw-Batch-First-Seq: <seq of the first line>
//	Mcpgw-Batch-Last-Seq: <seq of the last line>
//	Mcpgw-Batch-Prev-Hash: <64 hex: the hash before the first line; zeros at seq 1>
//	Mcpgw-Batch-Last-Hash: <64 hex: the hash of the last line>
//
//	<stored JSON of record first>\n
//	…
//	<stored JSON of record last>\n
//
// Any 2xx acknowledges the whole batch: the Shipper then writes
// "m/shipped" (fsynced) and goes on with the next. Anything else (a network
// error, a timeout, 3xx, 4xx, 5xx) is retried with the same batch, after a
// capped exponential backoff with full jitter (or the Retry-After of a 429
// or 503, up to the cap); a 401 first gets one immediate retry with a new
// token. Records are never dropped for a refusal; a 4xx other than 401,
// 408 and 429 is logged as an error, at most once a minute. A crash between
// a 2xx and the write of "m/shipped" sends that batch again after restart:
// the receiver dedupes by record id. Only durable records are sent (in
// Async mode the Shipper syncs the write-ahead log first), so a record the
// receiver holds is never lost locally and its id never reused. The
// receiver checks each node's chain across batches: a batch whose first
// seq is its last seq + 1 continues the chain when Prev-Hash is its last
// hash (and a Verifier anchored there checks the lines); a first seq above
// that is a gap, one at or below it a resend.
//
// # Retention and spool limits
//
// Log.Prune (and Log.RunRetention, for audit.retention) deletes the
// longest prefix of records that are older than the cut-off and shipped;
// with Options.Shipping false (audit.ship.url empty) every record counts
// as shipped. A deletion moves "m/anchor" and drops the index entries of
// the deleted records in one synced index batch, then deletes the records
// with one DeleteRange, so the chain loses a prefix, never a hole, then
// compacts the range, so the space is freed.
//
// Full reports whether the spool's disk usage has reached
// Options.MaxSpool. It is an atomic load: a maintainer goroutine owned by
// the Log reads Pebble's metrics after batches (at most every 100 ms) and
// after deletions. With WhenFull Reject the caller refuses new tool calls
// while Full (503, fail closed); reads and the records of calls in flight
// still append. With DropOldestShipped the maintainer deletes the oldest
// shipped records, whatever their age, until usage is under 90% of
// MaxSpool; when nothing shipped is left, Full stays true.
//
// # Concurrency
//
// A Log is safe for concurrent use. Append encodes the record in the
// caller's goroutine, takes a seq under a mutex while it queues the record
// (queue order is seq order), and in sync mode waits for the committer.
// The committer, one goroutine owned by the Log, takes every queued record
// (up to 1024), chains them and applies them to Pebble as one batch; a
// second goroutine, owned by the committer, waits for each batch's fsync
// in order, moves the head (Last) and wakes the batch's callers, while
// the committer builds the next batch (at most 4 batches in flight).
// A Shipper's Run is one goroutine, owned by the caller, which must end it
// before closing the Log; Shipper.Stats is safe from any goroutine. The
// maintainer (sizes, DropOldestShipped) is one more goroutine owned by
// the Log. Prune and the maintainer's deletions are serialized; they only
// touch shipped records, which nothing else writes. Close stops taking
// appends, lets the committer write what is queued, waits for it, stops
// the maintainer, and closes Pebble; Scan, ScanJSON and Verify
// hold the database open while they run, so their callbacks must not call
// Close. A Record passed to Append is not kept after Append returns; a
// line passed to a ScanJSON callback is valid only during the call.
//
// # Queries
//
// Log.Activity, ActivityByID, Sessions, Session and MarkAudited serve the
// admin API and mcpgw audit (query.go): newest first, at most MaxLimit a
// page, with opaque cursors (base64url of the list and the seq the next
// page continues below). The committer keeps three indexes under 'x' in
// index/, in the index batch that follows the records they describe
// (index.go); it never reads Pebble for them:
//
//	'x' 't' minute seq       a record of that minute (Unix minutes), written
//	                         when the minute of the records changes
//	'x' 's' seq              a session started by record seq: started, app,
//	                         user, session id
//	'x' 'g' len id seq       a segment: the counters, last seen, end and latest
//	                         audit mark of session id's records from seq on
//
// A session's records update its segment in a cache, written with each
// record; after a restart (or when the cache of 65536 sessions is
// emptied) its next record starts a new segment, and queries add them up.
// There is no per-record index (a key a record costs more in compactions
// than the record): Activity walks the records down from Until (by the
// time index) or the session's last record, tests each on its JSON text
// and decodes those that may match, stops at Since (minus TimeSkew), and
// after 200k records returns a short page with a cursor. An audit mark is
// an admin record, method "sessions/audited", user the auditor, reason
// the comment. pruneIndex drops the entries of deleted records.
package auditlog
