package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/auditlog"
)

// mcpgw audit reads the audit store of this machine (DESIGN.md section 2):
//
//	mcpgw audit sessions [--config F] [filters] [--limit N] [--cursor C] [--all] [--json]
//	mcpgw audit activity [--config F] [filters] [--limit N] [--cursor C] [--all] [--json]
//	mcpgw audit tail     [--config F] [filters] [-n N] [--interval D] [--json]
//	mcpgw audit verify   [--config F] [--json]
//
// The filters are the admin API's (admin_audit.go), as flags. Pebble locks
// the spool's directory even for a read-only open, so while the gateway
// runs its spool can only be read through it: when server.admin.listen
// answers, the command asks the admin API with the admin token of
// server.admin.token_file; otherwise it opens audit.dir read-only itself.

// auditSource is where mcpgw audit reads: the running gateway's admin API
// or the spool itself. Each method takes the query parameters of the
// admin API.
type auditSource interface {
	activity(q url.Values) ([]auditlog.Record, string, error)
	sessions(q url.Values) ([]auditlog.Session, string, error)
	verify() (verifyResult, error)
	close() error
}

// The flags of each audit subcommand besides --config, in the admin API's
// parameter names, and those of the command only.
var auditFlags = map[string][]string{
	"sessions": {"app", "user", "audited", "since", "until", "limit", "cursor"},
	"activity": {"app", "user", "session", "method", "name", "decision", "kind", "since", "until", "limit", "cursor"},
	"tail":     {"app", "user", "session", "method", "name", "decision", "kind", "since"},
	"verify":   nil,
}

var auditFlagUsage = map[string]string{
	"app":      "only this application",
	"user":     "only this user",
	"session":  "only this session id",
	"method":   "only this JSON-RPC method (tools/call, initialize, ...)",
	"name":     "only this tool or prompt name, or resource URI",
	"decision": "only this decision: allow, deny, approval_required, refused",
	"kind":     "only this record kind: session, activity, approval, grant, admin",
	"audited":  "true: only sessions marked audited; false: only the others",
	"since":    "from this time: RFC 3339 (2026-11-25T14:03:00Z) or a duration ago (90m)",
	"until":    "before this time: RFC 3339 or a duration ago",
	"limit":    "records or sessions per page (default 100, at most 1000)",
	"cursor":   "continue from the cursor an earlier page printed",
}

func runAudit(args []string, env Env) int {
	if _, ok := auditFlags[firstArg(args)]; !ok {
		fmt.Fprintln(env.Stderr, "usage: mcpgw audit sessions|activity|tail|verify [--config F] [filters] [--json]")
		if a := firstArg(args); a == "-h" || a == "--help" || a == "help" {
			return ExitOK
		}
		return ExitUsage
	}
	sub := args[0]
	fs, cfgPath := newFlags("audit "+sub, env)
	vals := map[string]*string{}
	for _, name := range auditFlags[sub] {
		vals[name] = fs.String(name, "", auditFlagUsage[name])
	}
	asJSON := fs.Bool("json", false, "print records as stored (one JSON object a line)")
	all := fs.Bool("all", false, "print every page, not only the first")
	n := fs.Int("n", 10, "tail: print the last N matching records before following")
	interval := fs.Duration("interval", time.Second, "tail: how often to look for new records")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	q := url.Values{}
	fs.Visit(func(f *flag.Flag) {
		if v, ok := vals[f.Name]; ok {
			q.Set(f.Name, *v)
		}
	})
	// The filters are checked here too, so that a bad one is a usage
	// error whichever source answers.
	var err error
	if sub == "sessions" {
		_, _, err = parseSessionQuery(q, time.Now())
	} else {
		_, _, err = parseActivityQuery(q, time.Now())
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw audit %s: %v\n", sub, err)
		return ExitUsage
	}
	if sub != "tail" && (*n != 10 || *interval != time.Second) || sub == "tail" && (*n < 0 || *interval <= 0) {
		fmt.Fprintf(env.Stderr, "mcpgw audit %s: -n and --interval are for tail (-n at least 0, --interval above 0)\n", sub)
		return ExitUsage
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return ExitConfig
	}
	src, err := openAuditSource(cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw audit: %v\n", err)
		return ExitConfig
	}
	defer src.close()
	switch sub {
	case "verify":
		return auditVerify(src, env, *asJSON)
	case "tail":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = tailAudit(ctx, src, q, *n, *interval, env.Stdout, *asJSON)
	default:
		err = auditList(src, sub, q, *all, env, *asJSON)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw audit %s: %v\n", sub, err)
		return ExitConfig
	}
	return ExitOK
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// auditList prints a page of sessions or activity, or every page with
// all; without all, a next page is announced on stderr with its cursor. A
// page the store answered short (it spent its budget of records, see
// auditlog.Activity) is filled from the pages after it, so that the
// command prints --limit items unless there are no more.
func auditList(src auditSource, sub string, q url.Values, all bool, env Env, asJSON bool) error {
	want := auditlog.DefaultLimit
	if n, err := strconv.Atoi(q.Get("limit")); err == nil {
		want = min(n, auditlog.MaxLimit)
	}
	printed := 0
	for {
		var next string
		var n int
		var err error
		if sub == "sessions" {
			var items []auditlog.Session
			items, next, err = src.sessions(q)
			for i := range items {
				printSession(env.Stdout, &items[i], asJSON)
			}
			n = len(items)
		} else {
			var items []auditlog.Record
			items, next, err = src.activity(q)
			for i := range items {
				printRecord(env.Stdout, &items[i], asJSON)
			}
			n = len(items)
		}
		printed += n
		switch {
		case err != nil:
			return err
		case next == "":
			return nil
		case all:
		case printed >= want:
			fmt.Fprintf(env.Stderr, "more: --cursor %s (or --all)\n", next)
			return nil
		default:
			q.Set("limit", strconv.Itoa(want-printed))
		}
		q.Set("cursor", next)
	}
}

func auditVerify(src auditSource, env Env, asJSON bool) int {
	res, err := src.verify()
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw audit verify: %v\n", err)
		return ExitConfig
	}
	switch {
	case asJSON:
		b, _ := json.Marshal(res)
		fmt.Fprintf(env.Stdout, "%s\n", b)
	case res.OK && res.Head == 0:
		fmt.Fprintln(env.Stdout, "ok: the audit log is empty")
	case res.OK:
		fmt.Fprintf(env.Stdout, "ok: the chain holds through seq %d (hash %s)\n", res.Head, res.HeadHash)
	default:
		fmt.Fprintf(env.Stdout, "BROKEN at seq %d: %s\n", res.Seq, res.Message)
	}
	if !res.OK {
		return ExitConfig
	}
	return ExitOK
}

// tailAudit prints the last n records q selects, oldest first, then the
// ones committed after them, polling every interval, until ctx ends.
func tailAudit(ctx context.Context, src auditSource, q url.Values, n int, interval time.Duration, w io.Writer, asJSON bool) error {
	// Start from the newest record, whatever it is: following begins
	// there, not at the last record the filters select.
	top, _, err := src.activity(url.Values{"limit": {"1"}})
	if err != nil {
		return err
	}
	var after uint64
	if len(top) > 0 {
		after = top[0].Seq
	}
	if n > 0 {
		last := cloneValues(q)
		last.Set("limit", strconv.Itoa(min(n, auditlog.MaxLimit)))
		last.Set("after", "0")
		items, _, err := src.activity(last)
		if err != nil {
			return err
		}
		for i := range slices.Backward(items) {
			if items[i].Seq <= after {
				printRecord(w, &items[i], asJSON)
			}
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		top, _, err := src.activity(url.Values{"limit": {"1"}})
		if err != nil {
			return err
		}
		if len(top) == 0 || top[0].Seq <= after {
			continue
		}
		head := top[0].Seq
		// Everything in (after, head] that q selects, newest first over
		// pages, printed oldest first.
		var items []auditlog.Record
		page := cloneValues(q)
		page.Set("after", strconv.FormatUint(after, 10))
		page.Set("limit", strconv.Itoa(auditlog.MaxLimit))
		for {
			got, next, err := src.activity(page)
			if err != nil {
				return err
			}
			items = append(items, got...)
			if next == "" {
				break
			}
			page.Set("cursor", next)
		}
		for i := range slices.Backward(items) {
			printRecord(w, &items[i], asJSON)
			head = max(head, items[i].Seq)
		}
		after = head
	}
}

func cloneValues(q url.Values) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	return c
}

// printRecord writes r as stored (asJSON) or as one line for people:
//
//	2026-11-25T14:01:00.000Z gw1-3 activity user=alice@example.com app=crm session=s-alice request tools/call name=get_0 decision=allow rule=readers
func printRecord(w io.Writer, r *auditlog.Record, asJSON bool) {
	if asJSON {
		_, _ = w.Write(append(auditlog.AppendJSON(nil, r), '\n'))
		return
	}
	b := r.Time.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, ' ')
	b = append(b, r.ID...)
	b = append(b, ' ')
	b = append(b, r.Kind...)
	b = appendField(b, "user", r.User)
	b = appendField(b, "app", r.App)
	b = appendField(b, "session", r.SessionID)
	b = appendField(b, "", string(r.Message))
	b = appendField(b, "", r.Method)
	b = appendField(b, "name", r.Name)
	b = appendField(b, "id", string(r.JSONRPCID))
	b = appendField(b, "decision", string(r.Decision))
	b = appendField(b, "rule", r.Rule)
	b = appendField(b, "status", r.Status)
	if r.ErrorCode != 0 {
		b = appendField(b, "error_code", strconv.FormatInt(r.ErrorCode, 10))
	}
	if r.LatencyUS != 0 {
		b = appendField(b, "latency", (time.Duration(r.LatencyUS) * time.Microsecond).String())
	}
	b = appendField(b, "reason", r.Reason)
	b = appendField(b, "client", clientName(&r.Device))
	b = appendField(b, "from", r.Device.RemoteAddr)
	if len(r.Arguments) > 0 {
		// JSON as stored: one line (AppendJSON escapes line breaks) and
		// self-delimiting, so it needs no quotes.
		b = append(append(b, " args="...), r.Arguments...)
	}
	_, _ = w.Write(append(b, '\n'))
}

// printSession writes s as JSON (asJSON) or as one line for people.
func printSession(w io.Writer, s *auditlog.Session, asJSON bool) {
	if asJSON {
		writeJSONLine(w, s)
		return
	}
	b := s.Started.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000Z07:00")
	if s.Started.IsZero() {
		b = append(b[:0], '-')
	}
	b = append(b, ' ')
	b = append(b, s.ID...)
	b = appendField(b, "user", s.User)
	b = appendField(b, "app", s.App)
	b = appendField(b, "client", clientName(&s.Device))
	b = appendField(b, "from", s.Device.RemoteAddr)
	b = fmt.Appendf(b, " records=%d requests=%d denied=%d errors=%d", s.Records, s.Requests, s.Denied, s.Errors)
	if !s.LastSeen.IsZero() {
		b = appendField(b, "last_seen", s.LastSeen.UTC().Format(time.RFC3339))
	}
	if s.Ended.IsZero() {
		b = append(b, " open"...)
	} else {
		b = appendField(b, "ended", s.Ended.UTC().Format(time.RFC3339))
		b = appendField(b, "reason", s.EndReason)
	}
	if a := s.Audited; a != nil {
		b = appendField(b, "audited_by", a.By)
		b = appendField(b, "audited", a.Time.UTC().Format(time.RFC3339))
		b = appendField(b, "comment", a.Comment)
	}
	_, _ = w.Write(append(b, '\n'))
}

func writeJSONLine(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func clientName(d *auditlog.Device) string {
	if d.ClientVersion == "" {
		return d.ClientName
	}
	return d.ClientName + "/" + d.ClientVersion
}

// appendField appends " key=value" (" value" without a key), quoting a
// value that holds a space, a quote or a control character so that a line
// stays one line; nothing for an empty value.
func appendField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ' ')
	if key != "" {
		b = append(append(b, key...), '=')
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f || r == '\u2028' || r == '\u2029' }) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// openAuditSource returns the running gateway's admin API when
// server.admin.listen answers, else the spool under audit.dir, opened
// read-only.
func openAuditSource(cfg *Config) (auditSource, error) {
	addr := dialableAddr(cfg.Server.Admin.Listen)
	if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		conn.Close()
		tok, err := readAdminToken(cfg.Server.Admin.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("the gateway runs (its admin API answers at %s), and its audit log can only be read through it, "+
				"but the admin token cannot be read: %w", addr, err)
		}
		return &remoteAudit{base: "http://" + addr, token: string(tok), client: &http.Client{Timeout: 5 * time.Minute}}, nil
	}
	l, err := auditlog.OpenReadOnly(cfg.Audit.Dir)
	if err != nil {
		return nil, fmt.Errorf("no gateway answers at %s (server.admin.listen), and the audit log cannot be opened: %w", addr, err)
	}
	return &localAudit{log: l}, nil
}

// dialableAddr turns a listen address into one to connect to: an empty or
// unspecified host becomes the loopback address.
func dialableAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// localAudit reads the spool itself.
type localAudit struct{ log *auditlog.Log }

func (s *localAudit) activity(q url.Values) ([]auditlog.Record, string, error) {
	f, p, err := parseActivityQuery(q, time.Now())
	if err != nil {
		return nil, "", err
	}
	return s.log.Activity(f, p.cursor, p.limit)
}

func (s *localAudit) sessions(q url.Values) ([]auditlog.Session, string, error) {
	f, p, err := parseSessionQuery(q, time.Now())
	if err != nil {
		return nil, "", err
	}
	return s.log.Sessions(f, p.cursor, p.limit)
}

func (s *localAudit) verify() (verifyResult, error) { return verifyChain(s.log) }
func (s *localAudit) close() error                  { return s.log.Close() }

// remoteAudit asks the running gateway's admin API.
type remoteAudit struct {
	base, token string
	client      *http.Client
}

func (s *remoteAudit) activity(q url.Values) ([]auditlog.Record, string, error) {
	return getPage[auditlog.Record](s, "/api/v1/activity", q)
}

func (s *remoteAudit) sessions(q url.Values) ([]auditlog.Session, string, error) {
	return getPage[auditlog.Session](s, "/api/v1/sessions", q)
}

// getPage asks for one page of a list.
func getPage[T any](s *remoteAudit, path string, q url.Values) ([]T, string, error) {
	var page struct {
		Items      []T    `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	err := s.get(path, q, &page)
	return page.Items, page.NextCursor, err
}

func (s *remoteAudit) verify() (verifyResult, error) {
	var res verifyResult
	err := s.get("/api/v1/audit/verify", nil, &res)
	return res, err
}

func (s *remoteAudit) close() error { return nil }

// get asks the admin API and decodes its answer into v.
func (s *remoteAudit) get(path string, q url.Values, v any) error {
	u := s.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("cannot read the admin API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %s (%d %s)", e.Error.Message, resp.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("admin API: status %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errors.New("admin API: the answer is not the JSON expected")
	}
	return nil
}
