package jsonrpc

import (
	"strconv"
	"unicode/utf8"
)

// JSON-RPC error codes: the five of JSON-RPC 2.0 and the MCP ones the gateway
// answers with (MCP-REQUIREMENTS.md 2.3).
const (
	ParseError     = -32700
	InvalidRequest = -32600
	MethodNotFound = -32601
	InvalidParams  = -32602
	InternalError  = -32603

	HeaderMismatch             = -32020 // 2026-07-28
	MissingClientCapability    = -32021 // 2026-07-28
	UnsupportedProtocolVersion = -32022 // 2026-07-28
	URLElicitationRequired     = -32042 // 2025-11-25
)

// AppendError appends a JSON-RPC error response:
//
//	{"jsonrpc":"2.0","id":<id>,"error":{"code":<code>,"message":"<message>","data":<data>}}
//
// id is a raw id token as Message.ID holds it (nil writes null); data is a raw
// JSON value written as is and left out when nil. Neither is validated: pass
// what Scan returned or what this package produced. message is escaped.
func AppendError(dst, id []byte, code int, message string, data []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if id == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, id...)
	}
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	dst = AppendQuoted(dst, message)
	if data != nil {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return append(dst, "}}"...)
}

// AppendQuoted appends s as a JSON string. Quotes, backslashes and control
// characters are escaped, and so are U+2028 and U+2029 (JavaScript line
// terminators, as encoding/json does); invalid UTF-8 becomes U+FFFD, so the
// result is always valid JSON.
func AppendQuoted(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
