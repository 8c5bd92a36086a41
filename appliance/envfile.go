package appliance

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The env file is the PingOne Privilege gateway's
// /var/lib/procyon/config/pingone.env: one KEY=VALUE per line.
//
//	# comment                  whole-line comments and blank lines are skipped
//	export OIDC_CLIENT_ID=abc  an optional "export " prefix (shell compatible)
//	OIDC_SCOPES=openid profile unquoted: up to " #" (an inline comment), trimmed
//	OIDC_CLIENT_SECRET='a#b$c' single quotes: literal, no escapes
//	SERVER_URL="https://gw"    double quotes: \" \\ \n \r \t \$ \` are escapes,
//	                           any other backslash is kept
//
// Values are single-line and never interpolated (${X} stays as written).
// Keys are [A-Za-z_][A-Za-z0-9_]*; a key set twice is an error; keys other
// than the ones mcpgw reads are kept and ignored. Error messages name the
// line and, where it is valid, the key, never a value.

// envEntry is one value of an env file and the line it was set on.
type envEntry struct {
	value Secret
	line  int
}

// LoadEnvFile reads a dotenv-style file (the format above) into a map whose
// values are Secrets. A file that cannot be read is returned as a wrapped
// *fs.PathError (errors.Is(err, fs.ErrNotExist) works); problems inside the
// file are returned together as ConfigErrors, each with its line.
func LoadEnvFile(path string) (map[string]Secret, error) {
	entries, errs, err := parseEnvFile(path)
	if err != nil {
		return nil, fmt.Errorf("appliance: cannot read env file: %w", err)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	m := make(map[string]Secret, len(entries))
	for k, e := range entries {
		m[k] = e.value
	}
	return m, nil
}

// parseEnvFile reads and parses path; err is set only when the file cannot
// be read.
func parseEnvFile(path string) (map[string]envEntry, ConfigErrors, error) {
	data, err := readBounded(path, maxRefSize)
	if err != nil {
		return nil, nil, err
	}
	entries, errs := parseEnv(path, data)
	return entries, errs, nil
}

// parseEnv parses the contents of an env file named file.
func parseEnv(file string, data []byte) (map[string]envEntry, ConfigErrors) {
	var errs ConfigErrors
	fail := func(line int, key, msg string) {
		errs = append(errs, ConfigError{File: file, Line: line, Key: key, Msg: msg})
	}
	text := strings.TrimPrefix(string(data), "\uFEFF")
	entries := make(map[string]envEntry)
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		t := strings.TrimLeft(strings.TrimSuffix(line, "\r"), " \t")
		if t == "" || t[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(t, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			t = strings.TrimLeft(rest, " \t")
		}
		eq := strings.IndexByte(t, '=')
		if eq < 0 {
			fail(n, "", "expected KEY=VALUE")
			continue
		}
		key := strings.TrimRight(t[:eq], " \t")
		if !isEnvName(key) {
			// Not quoted back: a malformed line may be a pasted secret.
			fail(n, "", "invalid variable name before \"=\" (want [A-Za-z_][A-Za-z0-9_]*)")
			continue
		}
		val, msg := parseEnvValue(strings.TrimLeft(t[eq+1:], " \t"))
		switch {
		case msg != "":
			fail(n, key, msg)
			continue
		case !utf8.ValidString(val) || strings.IndexByte(val, 0) >= 0:
			fail(n, key, "the value must be UTF-8 text without NUL")
			continue
		}
		if first, dup := entries[key]; dup {
			fail(n, key, fmt.Sprintf("set twice (first at line %d)", first.line))
			continue
		}
		entries[key] = envEntry{value: Secret{value: val}, line: n}
	}
	return entries, errs
}

// parseEnvValue decodes the text after "=" (leading blanks removed).
func parseEnvValue(s string) (string, string) {
	if s == "" {
		return "", ""
	}
	var val, rest string
	switch s[0] {
	case '\'':
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", "unterminated single quote (values are single-line)"
		}
		val, rest = s[1:1+end], s[2+end:]
	case '"':
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					c = '\n'
				case 'r':
					c = '\r'
				case 't':
					c = '\t'
				case '"', '\\', '$', '`':
					c = s[i]
				default:
					b.WriteByte('\\')
					c = s[i]
				}
			}
			b.WriteByte(c)
		}
		if i >= len(s) {
			return "", "unterminated double quote (values are single-line)"
		}
		val, rest = b.String(), s[i+1:]
	default:
		val = s
		for i := 1; i < len(s); i++ {
			if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
				val = s[:i]
				break
			}
		}
		return strings.TrimRight(val, " \t"), ""
	}
	if rest = strings.TrimLeft(rest, " \t"); rest != "" && rest[0] != '#' {
		return "", "unexpected text after the closing quote"
	}
	return val, ""
}
