// Package access runs just-in-time access (DESIGN.md "Policy semantics" and
// section 7): approval requests, multi-level approvals, time-bound grants
// and their revocation, for tools that policy allows only through a rule
// with an `approval` section (policycache's Effect NeedsApproval).
//
// # Use
//
// The appliance builds a Service with New (Options: the state.Store, the
// flows of every approval rule keyed by application and rule name, an
// ApprovalRuleFunc over the current policy, an OnEvent hook) and calls
// Update on every config reload. The proxy calls Check on every call that
// policy answered with NeedsApproval; on a miss it calls RequestFor and
// answers the JSON-RPC error naming the request. The admin API calls
// Request (POST /api/v1/approvals), Requests and Get (GET
// /api/v1/approvals), Decide (POST .../approve|deny), Grants and Revoke
// (GET and DELETE /api/v1/grants).
//
// # Guarantees
//
//   - At most one pending request exists per (user, application, sorted
//     tools, arguments hash or "whole tools"), however many connections
//     ask at once: the request is claimed by a compare-and-swap of its
//     dedupe key in the Store, so this holds across nodes sharing a Store.
//   - Levels are decided in order. A level passes when Count distinct
//     approvers named by it (a user of Users, or a member of one of Groups)
//     approved; the same person may approve several levels if the flow
//     names them there. The requester never decides their own request. One
//     denial at any level ends the request.
//   - A request keeps the levels and grant TTL of the flow it was created
//     under; Update affects new requests only.
//   - After the last level approves, a grant lets the requester call the
//     request's tools for GrantTTL from that approval: only the exact call
//     (its arguments hash) when the request carried one, else any call of
//     those tools. Approvers of an exact-call request may widen the grant
//     to the whole tools (ApproveWholeTool); it is widened only when every
//     approval agreed.
//   - A pending request expires at Created+RequestTTL: from that instant it
//     reads as expired (lazily, on every read) and the sweeper records it;
//     the transition is a compare-and-swap, so its event is emitted once.
//   - Check compares the grant's expiry with the clock on every call (a
//     grant covers calls strictly before Expires) and Revoke updates the
//     in-memory index before it returns: no stale entry lets a call
//     through on this node. (Another node sharing an etcd Store learns of
//     grants and revocations through the Store's watch, a later step; until
//     then a Service sees only the grants it created or loaded at New.)
//   - Every change is durable in the Store before OnEvent hears of it and
//     before the method returns.
//
// # State machine of a request
//
//	              RequestFor / Request
//	                      |
//	                      v
//	   +-------- pending, level 1 <---------------------+
//	   |           |        |                           |
//	   |           |        | approve (count not yet    |
//	   |  deny     |        |   reached at this level)  |
//	   |           |        +---------------------------+
//	   |           | count reached, more levels: level+1 (pending)
//	   |           | count reached at the last level
//	   v           v
//	denied      approved --> grant (expires after grant_ttl; revocable)
//
//	pending --(now >= expires: read or sweep)--> expired
//
// denied, approved and expired are final; Decide on them is ErrNotPending.
//
// # Events
//
// OnEvent hears: requested (actor: the requester), approved (one per
// approver and level), denied, granted (after the approved of the last
// level), expired (a request), revoked and grant_expired (a grant; emitted
// by the sweeper of the node that held it in memory). A grant or request
// whose record ran out while no Service was running disappears without an
// event.
//
// # Key layout in the state.Store
//
//	access/requests/<id>     JSON requestRecord: Request fields, "v": 1,
//	                         "grant_ttl_ns"; ttl RequestTTL+Keep while
//	                         pending, then Keep from the decision or expiry
//	                         (at least GrantTTL once approved)
//	access/grants/<id>       JSON grantRecord: Grant fields, "v": 1;
//	                         ttl GrantTTL (gone when the grant expires)
//	access/pending/<sha256>  the id of the pending request of (user, app,
//	                         tools, hash), hex SHA-256 of the
//	                         length-prefixed fields; ttl RequestTTL
//
// Request ids are "apr_" and grant ids "grt_" followed by 128 random bits
// in lowercase base32. Times are UTC and marshal as RFC 3339.
//
// # Concurrency
//
// Service is safe for concurrent use. Requests live in the Store only;
// every change of one is a compare-and-swap against the bytes that were
// read, retried on conflict, so concurrent deciders (on one node or
// several) never lose a decision. Grants live in the Store and in memory:
// a mutex guards the map of grants and the order of index swaps, and
// Check reads an immutable index through an atomic pointer, without locks
// or allocations. Values returned are the caller's; Event.Tools is shared
// by the events of one change. The sweeper goroutine belongs to the
// Service and Close stops it.
package access
