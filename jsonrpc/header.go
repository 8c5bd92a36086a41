package jsonrpc

import (
	"bytes"
	"encoding/base64"
)

// AppendDecodedHeaderValue appends the value an MCP 2026-07-28 header
// (Mcp-Method, Mcp-Name, Mcp-Param-*) stands for: a value of the form
// =?base64?<standard base64, padded>?= (exact lowercase markers) is decoded,
// any other value is appended as it is (MCP-REQUIREMENTS.md 1.8.3, 1.8.5).
// A value with the markers but invalid base64 is an error (ErrHeaderBase64)
// and dst is returned unchanged.
func AppendDecodedHeaderValue(dst, v []byte) ([]byte, error) {
	const prefix, suffix = "=?base64?", "?="
	if len(v) < len(prefix)+len(suffix) || !bytes.HasPrefix(v, []byte(prefix)) || !bytes.HasSuffix(v, []byte(suffix)) {
		return append(dst, v...), nil
	}
	out, err := base64.StdEncoding.AppendDecode(dst, v[len(prefix):len(v)-len(suffix)])
	if err != nil {
		return dst, ErrHeaderBase64
	}
	return out, nil
}

// HeaderSafe reports whether v can be sent as a header value without
// encoding: printable ASCII (0x20-0x7E) with no leading or trailing space.
// Values that are not must be sent =?base64?...?= encoded.
func HeaderSafe(v []byte) bool {
	if len(v) > 0 && (v[0] == ' ' || v[len(v)-1] == ' ') {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
