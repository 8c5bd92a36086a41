package identity

// BearerToken returns the token of an Authorization header value of the
// Bearer scheme (RFC 6750 section 2.1):
//
//	credentials = "Bearer" 1*SP b64token
//	b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// The scheme is matched case-insensitively (RFC 9110 section 11.1) and any
// number of spaces may separate it from the token. Leading and trailing
// spaces and tabs are ignored, since they are not part of a field value
// (RFC 9110 section 5.5). Anything else, such as another scheme, an empty
// token, a tab or comma inside, or "=" before the end, is not a bearer token.
//
// The token is a subslice of authorization (no copy, no allocation) and is
// valid as long as authorization is.
func BearerToken(authorization []byte) (token []byte, ok bool) {
	const scheme = "bearer"
	h := trimOWS(authorization)
	if len(h) <= len(scheme) || h[len(scheme)] != ' ' {
		return nil, false
	}
	for i := range len(scheme) {
		// scheme is all lowercase letters; only 'X' and 'x' turn into 'x'
		// when the 0x20 bit is set.
		if h[i]|0x20 != scheme[i] {
			return nil, false
		}
	}
	token = h[len(scheme):]
	for len(token) > 0 && token[0] == ' ' {
		token = token[1:]
	}
	if !isB64Token(token) {
		return nil, false
	}
	return token, true
}

// trimOWS removes leading and trailing spaces and tabs.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isB64Token reports whether b is an RFC 6750 b64token (the token68 of RFC
// 9110 section 11.2).
func isB64Token(b []byte) bool {
	i := 0
	for i < len(b) && isB64TokenChar(b[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(b) && b[i] == '=' {
		i++
	}
	return i == len(b)
}

func isB64TokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		return true
	}
	return false
}
