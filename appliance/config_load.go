package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Loading happens in three passes over one parsed yaml.Node tree, none of
// which stops at the first problem:
//
//	parse   yaml.v3 → *yaml.Node (syntax errors end the load: nothing to walk)
//	decode  walk the tree against the Config types by reflection: unknown
//	        keys, duplicate keys, wrong kinds and bad scalars are errors;
//	        ${env:…}/${file:…} are expanded as each string scalar is decoded;
//	        the position of every key is recorded under its dotted path
//	check   defaults, then validation (config_validate.go), reporting at the
//	        recorded positions
//
// Error messages never quote a scalar value: any of them may have been
// expanded from a secret.

const (
	defaultEnvFile = "/var/lib/procyon/config/pingone.env"
	defaultTLSCert = "/var/lib/procyon/ssl/mcpgw-cert.pem"
	defaultTLSKey  = "/var/lib/procyon/ssl/mcpgw-key.pem"

	maxConfigSize = 8 << 20 // bytes of mcpgw.yaml
	maxRefSize    = 1 << 20 // bytes of one ${file:…} or env file
	// maxDecodeNodes bounds the decode walk, which follows aliases: a
	// billion-laughs document must end in an error, not in memory exhaustion.
	// 2^18 is some fifty times the largest real configuration seen.
	maxDecodeNodes = 1 << 18
)

// ConfigError is one problem in a configuration file, at Line and Column
// (1-based; 0 when the problem has no position, such as a missing file).
// Key is the dotted path of the key, e.g. applications[0].rules[1].tools[2];
// map keys that are not plain words are quoted: arguments["/env"]. Msg never
// contains a configured value.
type ConfigError struct {
	File         string
	Line, Column int
	Key          string
	Msg          string
}

// Error formats e as "file:line: key: msg", leaving out what is unknown.
func (e ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in one load, in file order.
type ConfigErrors []ConfigError

// Error lists every problem, one per line.
func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// LoadConfig reads the file at path and returns the loaded Config (see
// ParseConfig). A file that cannot be read is returned as a wrapped
// *fs.PathError; every problem inside it is reported in a ConfigErrors.
func LoadConfig(path string) (*Config, error) {
	data, err := readBounded(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("appliance: cannot read config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig loads a Config from data; path names the file in messages and
// in Config.Path. It expands references, decodes strictly, reads the identity
// env file, applies defaults and validates. It either returns a Config or a
// non-empty ConfigErrors listing every problem. It starts nothing, writes
// nothing and keeps no state; it reads only the environment, the files that
// ${file:…} references name, the env file, and whether the default TLS pair
// exists.
func ParseConfig(path string, data []byte) (*Config, error) {
	return newLoader().parse(path, data)
}

// loader holds what a load reads from outside the file, so tests can point
// it elsewhere.
type loader struct {
	lookupEnv      func(string) (string, bool)
	defaultEnvFile string
	defaultTLSCert string
	defaultTLSKey  string
}

func newLoader() loader {
	return loader{
		lookupEnv:      os.LookupEnv,
		defaultEnvFile: defaultEnvFile,
		defaultTLSCert: defaultTLSCert,
		defaultTLSKey:  defaultTLSKey,
	}
}

func (l loader) parse(path string, data []byte) (*Config, error) {
	d := &decoder{
		loader: l,
		file:   path,
		pos:    make(map[string]keyPos),
		failed: make(map[string]bool),
		budget: maxDecodeNodes,
	}
	cfg := &Config{Path: path}
	root, ok := d.parseYAML(data)
	if ok && root != nil {
		d.pos[""] = keyPos{line: root.Line, col: root.Column}
		if deref(root).Kind != yaml.MappingNode {
			d.errorAt(root, "", "the top level must be a mapping, got "+nodeKindName(root))
		} else {
			d.decode(root, reflect.ValueOf(cfg).Elem(), "")
		}
	}
	if ok && d.budget >= 0 { // past the budget, validating would cost as much
		d.check(cfg)
	}
	cfg.refs = d.refs
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool {
			a, b := d.errs[i], d.errs[j]
			if a.File != b.File {
				return a.File == path // the config first, then the env file
			}
			if a.Line != b.Line { // in file order, unpositioned last
				return a.Line != 0 && (b.Line == 0 || a.Line < b.Line)
			}
			return a.Column < b.Column
		})
		return nil, d.errs
	}
	return cfg, nil
}

// keyPos is where a key (or a sequence item) was written.
type keyPos struct {
	line, col int
	expanded  bool // the value came (in part) from a ${…} reference
}

type decoder struct {
	loader
	file   string
	errs   ConfigErrors
	pos    map[string]keyPos // by dotted path; only keys with a non-null value
	failed map[string]bool   // paths that already have an error
	budget int               // nodes left to visit
	refs   []string          // the references expanded, each once (Config.refs)
}

// parseYAML parses exactly one document. It returns nil and true for an
// empty file.
func (d *decoder) parseYAML(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.syntaxError(err)
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errs = append(d.errs, ConfigError{File: d.file, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document; the config is one document"})
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		d.syntaxError(err)
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, true
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, true // a document of comments only
	}
	return root, true
}

// syntaxError turns "yaml: line N: problem" into a positioned ConfigError.
// yaml.v3's parser messages are fixed texts, never document content.
func (d *decoder) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, err := strconv.Atoi(n); err == nil {
				line, msg = v, after
			}
		}
	}
	d.errs = append(d.errs, ConfigError{File: d.file, Line: line, Msg: "invalid YAML: " + msg})
}

// errorAt records a problem at node n under path, unless path already has one
// (a value that failed to decode would otherwise also fail validation).
func (d *decoder) errorAt(n *yaml.Node, path, msg string) {
	if d.failed[path] {
		return
	}
	d.failed[path] = true
	d.errs = append(d.errs, ConfigError{File: d.file, Line: n.Line, Column: n.Column, Key: path, Msg: msg})
}

// errorKey records a problem at the recorded position of path or, when path
// was not written, of its nearest written ancestor.
func (d *decoder) errorKey(path, msg string) {
	if d.failed[path] {
		return
	}
	d.failed[path] = true
	p := d.posOf(path)
	d.errs = append(d.errs, ConfigError{File: d.file, Line: p.line, Column: p.col, Key: path, Msg: msg})
}

func (d *decoder) posOf(path string) keyPos {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		if path == "" {
			return keyPos{}
		}
		path = parentPath(path)
	}
}

// has reports whether path was written with a non-null value.
func (d *decoder) has(path string) bool {
	_, ok := d.pos[path]
	return ok
}

// parentPath strips the last element of a dotted path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		// An index or a quoted map key; quoted keys are strconv.Quote'd, so
		// the last `["` or `[` that is not inside quotes starts it.
		if i := strings.LastIndex(path, `["`); i >= 0 && strings.HasSuffix(path, `"]`) {
			if _, err := strconv.Unquote(path[i+1 : len(path)-1]); err == nil {
				return path[:i]
			}
		}
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// joinMapKey appends a map key: bare when it is a plain word, else quoted.
func joinMapKey(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	if plain {
		return joinKey(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// deref follows an alias. Alias cycles (`a: &x [*x]`) cannot recurse
// without bound: decode descends only as deep as the Config types nest.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// decode stores node n into v, whose key is path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.budget--
	if d.budget < 0 {
		if d.budget == -1 {
			d.errorAt(n, path, fmt.Sprintf("the document expands to more than %d nodes (aliases?)", maxDecodeNodes))
		}
		return
	}
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		delete(d.pos, path) // null is "not set": defaults apply
		return
	}
	if n.Kind == yaml.ScalarNode && !isPlainScalarTag(n.ShortTag()) {
		d.errorAt(n, path, "unsupported YAML tag "+strconv.Quote(n.Tag))
		return
	}

	if v.Kind() != reflect.Pointer && reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		d.decodeUnmarshaler(n, v.Addr().Interface().(yaml.Unmarshaler), path)
		return
	}
	if v.Type() == durationType {
		d.decodeDuration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.typedScalar(n, path, "!!bool", "true or false")
		switch {
		case !ok:
		case s == "true" || s == "True" || s == "TRUE":
			v.SetBool(true)
		case s == "false" || s == "False" || s == "FALSE":
			v.SetBool(false)
		default:
			d.errorAt(n, path, "must be true or false")
		}
	case reflect.Int:
		s, ok := d.typedScalar(n, path, "!!int", "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 0, strconv.IntSize)
		if err != nil {
			d.errorAt(n, path, "must be an integer in range")
			return
		}
		v.SetInt(i)
	case reflect.Pointer:
		if n.Kind != yaml.MappingNode {
			d.errorAt(n, path, "must be a mapping, got "+nodeKindName(n))
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorAt(n, path, "must be a list, got "+nodeKindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := joinIndex(path, i)
			d.pos[ip] = keyPos{line: item.Line, col: item.Column}
			d.decode(item, s.Index(i), ip)
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	default:
		panic("BUG: appliance: config field of unsupported type " + v.Type().String())
	}
}

// scalar returns the expanded text of scalar n, or reports why there is none.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorAt(n, path, "must be "+want+", got "+nodeKindName(n))
		return "", false
	}
	if n.ShortTag() != "!!str" {
		return n.Value, true
	}
	s, expanded, ok := d.expand(n, path)
	if expanded {
		p := d.pos[path]
		p.expanded = true
		d.pos[path] = p
	}
	return s, ok
}

// typedScalar returns the text of a scalar resolved as tag, or of a string
// that came from a reference (an environment variable is always a string).
// A literal "true" or "250" in quotes is refused: the quotes say string.
func (d *decoder) typedScalar(n *yaml.Node, path, tag, want string) (string, bool) {
	s, ok := d.scalar(n, path, want)
	if !ok {
		return "", false
	}
	if t := n.ShortTag(); t != tag && !(t == "!!str" && d.pos[path].expanded) {
		d.errorAt(n, path, "must be "+want)
		return "", false
	}
	return s, true
}

func (d *decoder) decodeUnmarshaler(n *yaml.Node, u yaml.Unmarshaler, path string) {
	if n.Kind == yaml.ScalarNode {
		s, ok := d.scalar(n, path, "a scalar")
		if !ok {
			return
		}
		c := *n // never modify the parsed tree: an alias may share n
		c.Value = s
		n = &c
	}
	if err := u.UnmarshalYAML(n); err != nil {
		d.errorAt(n, path, err.Error())
	}
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	const want = "a duration such as 90s, 15m or 1h30m"
	s, ok := d.scalar(n, path, want)
	if !ok {
		return
	}
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		d.errorAt(n, path, "must be "+want+": a number needs a unit")
		return
	}
	if n.ShortTag() != "!!str" {
		d.errorAt(n, path, "must be "+want)
		return
	}
	dur, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorAt(n, path, "must be "+want)
	case dur <= 0:
		d.errorAt(n, path, "must be a positive duration")
	default:
		v.SetInt(int64(dur))
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	if d.eachEntry(n, path, func(k, val *yaml.Node, key, kp string) {
		d.pos[kp] = keyPos{line: k.Line, col: k.Column}
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, kp)
		m.SetMapIndex(reflect.ValueOf(key), e)
	}) {
		v.Set(m)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	d.eachEntry(n, path, func(k, val *yaml.Node, key, kp string) {
		f, ok := fieldByYAMLName(v.Type(), key)
		if !ok {
			d.errorAt(k, kp, "unknown key")
			return
		}
		d.pos[kp] = keyPos{line: k.Line, col: k.Column}
		d.decode(val, v.FieldByIndex(f.Index), kp)
	})
}

// eachEntry calls fn for every entry of mapping n whose key is a scalar,
// written once and not a merge key, with the entry's dotted path kp. It
// reports false when n is not a mapping.
func (d *decoder) eachEntry(n *yaml.Node, path string, fn func(k, val *yaml.Node, key, kp string)) bool {
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, path, "must be a mapping, got "+nodeKindName(n))
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := deref(n.Content[i])
		switch {
		case k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null":
			d.errorAt(k, path, "a key must be a string, got "+nodeKindName(k))
		case k.ShortTag() == "!!merge":
			d.errorAt(k, joinKey(path, "<<"), "merge keys are not supported")
		default:
			kp := joinMapKey(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.errorAt(k, kp, fmt.Sprintf("duplicate key (first at line %d)", first))
				continue
			}
			seen[k.Value] = k.Line
			fn(k, n.Content[i+1], k.Value, kp)
		}
	}
	return true
}

func fieldByYAMLName(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" && name == key && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// isPlainScalarTag reports whether tag is one of the YAML core schema's
// scalar tags; others (!!binary, application tags) are refused.
func isPlainScalarTag(tag string) bool {
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp":
		return true
	}
	return false
}

// nodeKindName names what n is, for "must be X, got Y" messages, without
// quoting its content.
func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		}
		return "a scalar tagged " + strconv.Quote(n.Tag)
	}
	return "nothing"
}

// References.
//
// ${env:NAME} is the environment variable NAME ([A-Za-z_][A-Za-z0-9_]*) and
// ${file:/abs/path} the contents of a regular file of at most 1 MiB, one
// trailing newline ("\n" or "\r\n") trimmed. Any number of references may
// sit anywhere in a string value; mapping keys are never expanded. "$${"
// stands for a literal "${" (a "$" not followed by "{" is always literal, so
// RE2 anchors need no escaping). A reference to an unset variable, an
// unreadable file, or one that expands to the empty string is an error.

// expand resolves the references in the string scalar n. It reports whether
// any reference was expanded, and false in ok after recording an error.
func (d *decoder) expand(n *yaml.Node, path string) (s string, expanded, ok bool) {
	in := n.Value
	if !strings.Contains(in, "${") {
		return in, false, true
	}
	var b strings.Builder
	ok = true
	for {
		i := strings.Index(in, "${")
		if i < 0 {
			b.WriteString(in)
			break
		}
		if i > 0 && in[i-1] == '$' { // "$${" → "${"
			b.WriteString(in[:i-1])
			b.WriteString("${")
			in = in[i+2:]
			continue
		}
		b.WriteString(in[:i])
		end := strings.IndexByte(in[i:], '}')
		if end < 0 {
			d.errorAt(n, path, `unterminated reference: "${" without "}" (write "$${" for a literal "${")`)
			return "", expanded, false
		}
		ref := in[i : i+end+1]
		in = in[i+end+1:]
		if !slices.Contains(d.refs, ref) {
			d.refs = append(d.refs, ref)
		}
		v, msg := d.resolve(ref)
		expanded = true
		if msg != "" {
			// Report every bad reference of the value, not only the first.
			d.errs = append(d.errs, ConfigError{File: d.file, Line: n.Line, Column: n.Column, Key: path, Msg: msg})
			d.failed[path] = true
			ok = false
			continue
		}
		b.WriteString(v)
	}
	if !ok {
		return "", expanded, false
	}
	return b.String(), expanded, true
}

// resolve returns the value of one reference "${kind:arg}", or a message
// naming the reference (never a value) when it has none.
func (d *decoder) resolve(ref string) (value, msg string) {
	kind, arg, _ := strings.Cut(ref[2:len(ref)-1], ":")
	switch kind {
	case "env":
		if !isEnvName(arg) {
			return "", fmt.Sprintf("%s: invalid variable name (want [A-Za-z_][A-Za-z0-9_]*)", quoteRef(ref))
		}
		v, ok := d.lookupEnv(arg)
		if !ok {
			return "", fmt.Sprintf("%s: environment variable is not set", ref)
		}
		if v == "" {
			return "", fmt.Sprintf("%s: environment variable is empty", ref)
		}
		return v, ""
	case "file":
		if !strings.HasPrefix(arg, "/") {
			return "", fmt.Sprintf("%s: the path must be absolute", quoteRef(ref))
		}
		data, err := readBounded(arg, maxRefSize)
		if err != nil {
			return "", fmt.Sprintf("%s: cannot read: %s", ref, describeReadError(err))
		}
		v := string(data)
		if strings.HasSuffix(v, "\r\n") {
			v = v[:len(v)-2]
		} else {
			v = strings.TrimSuffix(v, "\n")
		}
		if v == "" {
			return "", fmt.Sprintf("%s: file is empty", ref)
		}
		return v, ""
	}
	return "", fmt.Sprintf(`%s: unknown reference (want ${env:NAME} or ${file:/path}; write "$${" for a literal "${")`, quoteRef(ref))
}

// quoteRef shortens a malformed reference for a message: it is written in
// the file, so not a secret, but may be long.
func quoteRef(ref string) string {
	const max = 80
	if len(ref) > max {
		return ref[:max] + "…"
	}
	return ref
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// readBounded reads a regular file of at most limit bytes. Devices, FIFOs
// and directories are refused so that a reference to /dev/zero or a pipe
// cannot hang or exhaust a load.
func readBounded(path string, limit int64) ([]byte, error) {
	// Stat before opening: opening a FIFO for reading blocks until a writer
	// comes.
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", limit)}
	}
	return data, nil
}

var errNotRegular = errors.New("not a regular file")

// describeReadError drops the path (the message already names the reference).
func describeReadError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
