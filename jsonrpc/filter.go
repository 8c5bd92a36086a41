package jsonrpc

// ListKindOf returns the list a method's result carries, or ListNone.
func ListKindOf(method []byte) ListKind {
	switch string(method) {
	case "tools/list":
		return ListTools
	case "prompts/list":
		return ListPrompts
	case "resources/list":
		return ListResources
	case "resources/templates/list":
		return ListResourceTemplates
	}
	return ListNone
}

// Key returns the member of the result that holds the list ("tools",
// "prompts", "resources", "resourceTemplates"), or "" for ListNone.
func (k ListKind) Key() string {
	switch k {
	case ListTools:
		return "tools"
	case ListPrompts:
		return "prompts"
	case ListResources:
		return "resources"
	case ListResourceTemplates:
		return "resourceTemplates"
	}
	return ""
}

// NameKey returns the member of a list entry that names it ("name", "uri",
// "uriTemplate"), or "" for ListNone.
func (k ListKind) NameKey() string {
	switch k {
	case ListTools, ListPrompts:
		return "name"
	case ListResources:
		return "uri"
	case ListResourceTemplates:
		return "uriTemplate"
	}
	return ""
}

// FilterOptions adjust what AppendFiltered writes.
type FilterOptions struct {
	// PrivateCache marks the result as private to the caller: the value of
	// result.cacheScope becomes "private", or "cacheScope":"private" is
	// added to the result. A list filtered for one principal must not be
	// cached for others (MCP 2026-07-28 caching; MCP-REQUIREMENTS.md 3.4.3).
	PrivateCache bool
}

// FilterStats counts the entries of the filtered list.
type FilterStats struct {
	Kept, Dropped int
	// Unreadable counts the dropped entries whose name could not be read
	// with certainty: not an object, name missing, not a string, given
	// twice, or a key equal to the name key except for letter case. They
	// are included in Dropped.
	Unreadable int
}

// Filter rewrites list results so that they show only what a caller may
// see. A Filter is reusable and not safe for concurrent use; in steady state
// (dst with room) a call allocates nothing.
type Filter struct {
	s Scanner
	m Message
}

// AppendFiltered validates body as one JSON-RPC message, exactly as Scan
// does, and appends it to dst. When it is a result whose result.<list> is an
// array, the entries that keep does not allow are left out (commas kept
// right); everything else is copied byte for byte. An entry whose name cannot
// be read with certainty is dropped without asking keep. Errors and other
// messages pass through unchanged (but see PrivateCache). A nil keep allows
// nothing.
//
// In filter mode the list key and "cacheScope" are checked keys of result:
// a result with "Tools" beside "tools" is refused, since a case-insensitive
// client would read the unfiltered copy.
//
// On error nothing is appended and dst is returned as it was.
func (f *Filter) AppendFiltered(dst, body []byte, list ListKind, keep NameFilter, opts FilterOptions) ([]byte, FilterStats, error) {
	s := &f.s
	s.flt = filterState{
		active:  true,
		private: opts.PrivateCache,
		keep:    keep,
		nameKey: list.NameKey(),
		dst:     dst,
	}
	s.resultLevel = &filterResultLevels[list]
	err := s.scan(body, &f.m)
	out, copied, stats := s.flt.dst, s.flt.copied, s.flt.stats
	s.flt = filterState{}
	if err != nil {
		return dst, FilterStats{}, err
	}
	return append(out, body[copied:]...), stats, nil
}

// Message returns what the last AppendFiltered read from its body (valid
// until the next call, like Scan's).
func (f *Filter) Message() *Message { return &f.m }

// Offset returns where the last AppendFiltered failed.
func (f *Filter) Offset() int { return f.s.Offset() }

// filterResultLevels are resultLevel plus the list and cacheScope, per kind.
var filterResultLevels = func() (t [ListResourceTemplates + 1]level) {
	for k := range t {
		fields := append([]field{}, resultLevel.fields...)
		fields = append(fields, field{"cacheScope", actCacheScope, slotCacheScope, nil})
		if key := ListKind(k).Key(); key != "" {
			fields = append(fields, field{key, actList, slotList, nil})
		}
		t[k] = level{fields: fields, result: true}
	}
	return t
}()

// filterState is the output side of a filtering walk. Edits happen in body
// order, so the output is body[:copied] already appended (with edits) plus
// whatever comes next.
type filterState struct {
	active  bool
	private bool
	keep    NameFilter
	nameKey string
	dst     []byte
	copied  int
	stats   FilterStats
}

// replaceCacheScope replaces the value of result.cacheScope at body[start:end].
func (f *filterState) replaceCacheScope(b []byte, start, end int) {
	if !f.active || !f.private {
		return
	}
	f.dst = append(f.dst, b[f.copied:start]...)
	f.dst = append(f.dst, `"private"`...)
	f.copied = end
}

// endResult adds "cacheScope":"private" to a result object that had none:
// after its last member, or right after the brace of an empty one.
func (f *filterState) endResult(b []byte, open, lastEnd, members int, hadScope bool) {
	if !f.private || hadScope {
		return
	}
	if members == 0 {
		f.dst = append(f.dst, b[f.copied:open+1]...)
		f.dst = append(f.dst, `"cacheScope":"private"`...)
		f.copied = open + 1
		return
	}
	f.dst = append(f.dst, b[f.copied:lastEnd]...)
	f.dst = append(f.dst, `,"cacheScope":"private"`...)
	f.copied = lastEnd
}

// filterList copies the list array at s.body[i] (its depth given) to the
// output without the entries keep refuses. Each kept entry keeps the
// whitespace in front of it; the array keeps its closing whitespace.
func (s *Scanner) filterList(i, depth int) (int, error) {
	b, f := s.body, &s.flt
	if depth > MaxDepth {
		return i, ErrDepth
	}
	f.dst = append(f.dst, b[f.copied:i+1]...)
	seg := i + 1 // start of the current element's segment (after '[' or ',')
	j, done := firstItem(b, i, ']')
	if done {
		f.dst = append(f.dst, b[seg:j]...)
		f.copied = j
		return j, nil
	}
	kept, mark := 0, len(s.scratch)
	for {
		end, ok, err := s.readEntry(j, depth)
		s.scratch = s.scratch[:mark] // the entry's decoded name is no longer needed
		if err != nil {
			return end, err
		}
		if ok {
			if kept > 0 {
				f.dst = append(f.dst, ',')
			}
			f.dst = append(f.dst, b[seg:end]...)
			kept++
			f.stats.Kept++
		} else {
			f.stats.Dropped++
		}
		next, done, err := nextItem(b, end, ']')
		if err != nil {
			return next, err
		}
		if done {
			f.dst = append(f.dst, b[end:next]...)
			f.copied = next
			return next, nil
		}
		seg, j = next, next
	}
}

// readEntry validates one list entry at s.body[i] (after optional
// whitespace) in an array at depth and reports whether it stays. It may
// leave decoded strings in the scratch buffer.
func (s *Scanner) readEntry(i, depth int) (int, bool, error) {
	b, f := s.body, &s.flt
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, false, ErrTruncated
	}
	if b[i] != '{' {
		end, err := skipValue(b, i, depth)
		f.stats.Unreadable++
		return end, false, err
	}
	if depth+1 > MaxDepth {
		return i, false, ErrDepth
	}
	count, readable := 0, true
	var name []byte
	j, done := firstItem(b, i, '}')
	for !done {
		raw, esc, _, next, err := readKey(b, j)
		if err != nil {
			return next, false, err
		}
		key := raw
		if esc {
			key = s.unescape(raw)
		}
		if string(key) == f.nameKey {
			count++
			next = skipSpace(b, next)
			if next < len(b) && b[next] == '"' {
				end, esc, err := scanString(b, next)
				if err != nil {
					return end, false, err
				}
				name = b[next+1 : end-1]
				if esc {
					name = s.unescape(name)
				}
				j = end
			} else {
				readable = false
				if j, err = skipValue(b, next, depth+1); err != nil {
					return j, false, err
				}
			}
		} else {
			if foldEqual(key, f.nameKey) {
				readable = false
			}
			if j, err = skipValue(b, next, depth+1); err != nil {
				return j, false, err
			}
		}
		if j, done, err = nextItem(b, j, '}'); err != nil {
			return j, false, err
		}
	}
	if count != 1 || !readable {
		f.stats.Unreadable++
		return j, false, nil
	}
	return j, f.keep != nil && f.keep.Allow(name), nil
}
