// Package jsonrpc reads and writes the JSON-RPC 2.0 messages of the Model
// Context Protocol on mcpgw's hot path, without decoding them into Go values.
//
// It provides:
//
//   - Scanner.Scan: validates one message and reports where the fields the
//     policy checks are (Message); SplitBatch and IsBatch for arrays.
//   - Filter.AppendFiltered: copies a tools/prompts/resources/templates list
//     result without the entries a caller may not see.
//   - EventReader, AppendEvent, AppendComment: text/event-stream framing.
//   - Lookup and EachString: JSON pointers into arguments; arrays of strings.
//   - AppendError, AppendQuoted: error responses.
//   - AppendDecodedHeaderValue, HeaderSafe: MCP 2026-07-28 header values.
//
// # What Scan guarantees
//
// Anything the scanner cannot read with certainty is refused (DESIGN.md
// section 3), so that the gateway and every decoder behind it read the same
// message:
//
//   - The whole body is one JSON value per RFC 8259: strings are valid UTF-8
//     with no raw control characters and valid escapes; a \u escape of a
//     surrogate must be half of a pair (encoding/json accepts lone
//     surrogates and turns them into U+FFFD, JavaScript keeps them: refused
//     here, ErrEscape); numbers and literals follow the grammar; nothing but
//     whitespace follows the value (ErrTrailingData); nesting is at most
//     MaxDepth (64) deep. These errors all match ErrSyntax.
//   - In every object on the path to a checked field (the top level,
//     params, params.ref, params._meta, params.clientInfo,
//     params.capabilities(.elicitation), params.notifications, result,
//     error) no key appears twice (ErrDuplicateKey), and no key equals a
//     checked key of that object except for letter case, under the Unicode
//     simple folding encoding/json uses to match fields (ErrAmbiguousKey:
//     "NAME", or "naMe", or "name" with U+017F for the s of "progreſſToken").
//   - Keys and values are compared after decoding escapes ("n\u0061me" is
//     name; "tools\/call" is tools/call).
//   - The message is JSON-RPC 2.0: a top-level object (ErrNotObject; an
//     array is ErrBatch), "jsonrpc" exactly "2.0" (ErrVersion), a request id
//     a string or integer (ErrInvalidID), never both result and error nor
//     method and either (ErrInvalidMessage). A checked field of the wrong
//     type (a numeric params.name in tools/call) is ErrInvalidMessage.
//
// Scan never allocates once its scratch buffers have grown to the largest
// message seen. An error is a preallocated sentinel; Scanner.Offset says
// where it was found. Malformed JSON is reported as such even when a
// semantic problem came first in the body.
//
//	body:  {"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{...},"name":"get_user"}}
//	        │          │     │     │                       │        │             │        │
//	walk:  top ──────── checked members ──────────────── params ─── skipValue ── name ────┘
//	        │                                              │        (validated,  (string decoded
//	        │ keys recorded per object: duplicates and     │         not read)    into Name)
//	        │ letter-case twins of checked keys refused    │
//	        ▼                                              ▼
//	finish: kind from the members present, Name chosen by method, ids checked
//
// Objects on checked paths are walked member by member; everything else is
// validated by skipValue, an iterative validator that reads the common
// token shapes inline (plain keys and their colon, integers, literals as
// one word) and checks strings eight or sixteen bytes at a time for a
// quote, a backslash, a control or a non-ASCII byte; anything else goes to
// the general functions, which make every check.
//
// # Buffer lifetimes
//
// Every []byte a Scanner, Filter or EventReader returns aliases either the
// input or the reader's own buffer, and stays valid until the next call on
// the same value (Scan, AppendFiltered, Next, Reset). Callers must not modify
// them. Append* functions write only to the dst they are given.
//
// # Concurrency
//
// Scanner, Filter and EventReader are not safe for concurrent use: keep one
// per connection or take them from a pool. The package functions are safe
// for concurrent use. The package imports only the standard library.
package jsonrpc
