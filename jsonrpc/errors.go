package jsonrpc

import "errors"

// Errors returned by this package. They are preallocated values: the hot path
// never builds an error. Every error that means "the body is not well-formed
// JSON" (the ones a JSON-RPC peer answers with ParseError) also matches
// ErrSyntax under errors.Is; CodeOf maps an error to its JSON-RPC code.
var (
	// ErrSyntax is the generic malformed-JSON error; every other parse
	// error below matches it with errors.Is.
	ErrSyntax = errors.New("jsonrpc: invalid JSON")

	ErrTruncated    error = &parseError{"jsonrpc: JSON ends early"}
	ErrUTF8         error = &parseError{"jsonrpc: invalid UTF-8 in string"}
	ErrEscape       error = &parseError{"jsonrpc: invalid escape or lone surrogate in string"}
	ErrControl      error = &parseError{"jsonrpc: unescaped control character in string"}
	ErrNumber       error = &parseError{"jsonrpc: invalid number"}
	ErrDepth        error = &parseError{"jsonrpc: nesting deeper than 64"}
	ErrTrailingData error = &parseError{"jsonrpc: data after the JSON value"}

	// ErrDuplicateKey: an object on the path to a checked field has the
	// same key twice (keys compared after decoding escapes).
	ErrDuplicateKey = errors.New("jsonrpc: duplicate key in a checked object")
	// ErrAmbiguousKey: a key differs from a checked key only in letter
	// case (Unicode simple folding, as bytes.EqualFold and encoding/json
	// compare), so a case-insensitive decoder would read it as that key.
	ErrAmbiguousKey = errors.New("jsonrpc: key equals a checked key except for letter case")

	ErrNotObject      = errors.New("jsonrpc: message is not a JSON object")
	ErrBatch          = errors.New("jsonrpc: batch (JSON array) where one message was expected")
	ErrNotBatch       = errors.New("jsonrpc: batch is not a JSON array")
	ErrEmptyBatch     = errors.New("jsonrpc: empty batch")
	ErrVersion        = errors.New(`jsonrpc: "jsonrpc" member missing or not "2.0"`)
	ErrInvalidID      = errors.New("jsonrpc: id is not a string or an integer")
	ErrInvalidMessage = errors.New("jsonrpc: not a valid JSON-RPC message")

	ErrPointer   = errors.New("jsonrpc: invalid JSON pointer")
	ErrNotArray  = errors.New("jsonrpc: value is not a JSON array")
	ErrNotString = errors.New("jsonrpc: array element is not a string")

	ErrEventTooLarge = errors.New("jsonrpc: SSE event larger than the limit")
	ErrHeaderBase64  = errors.New("jsonrpc: invalid =?base64?...?= header value")
)

// parseError is a malformed-JSON error that also matches ErrSyntax.
type parseError struct{ msg string }

func (e *parseError) Error() string        { return e.msg }
func (e *parseError) Is(target error) bool { return target == ErrSyntax }

// CodeOf returns the JSON-RPC error code a peer should answer for an error
// from Scan or SplitBatch: ParseError for malformed JSON, InvalidRequest for
// anything else.
func CodeOf(err error) int {
	if errors.Is(err, ErrSyntax) {
		return ParseError
	}
	return InvalidRequest
}
