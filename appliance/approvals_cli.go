package appliance

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/access"
)

// mcpgw approvals drives approvals through the running gateway's admin
// API (DESIGN.md section 2; admin_approvals.go):
//
//	mcpgw approvals list    [--config F] [--token T] [--status S] [--json]
//	mcpgw approvals approve ID [--config F] [--token T] [--comment C] [--whole-tool] [--json]
//	mcpgw approvals deny    ID [--config F] [--token T] [--comment C] [--json]
//	mcpgw approvals request [--config F] [--token T] --app A --tool T [--tool T2 ...] --reason R [--json]
//
// Approvals are personal, so the bearer token is the user's own: --token,
// else $MCPGW_TOKEN (which, unlike a flag, does not show in the process
// list). Only list falls back to the admin token of
// server.admin.token_file, which sees every request but can neither
// request nor decide. The gateway is asked at server.admin.listen.
//
// Exit codes: 0 done, 1 refused by the gateway (its message printed) or
// the gateway or config cannot be read, 2 usage.

// approvalsUsage is the usage line of mcpgw approvals.
const approvalsUsage = "usage: mcpgw approvals list [--status S] | approve ID [--comment C] [--whole-tool] | deny ID [--comment C] | " +
	"request --app A --tool T [--tool T2] --reason R   [--config F] [--token T] [--json]"

// toolFlags collects a repeated --tool.
type toolFlags []string

func (t *toolFlags) String() string     { return strings.Join(*t, ",") }
func (t *toolFlags) Set(v string) error { *t = append(*t, v); return nil }

func runApprovals(args []string, env Env) int {
	sub := firstArg(args)
	switch sub {
	case "list", "approve", "deny", "request":
	case "-h", "--help", "help":
		fmt.Fprintln(env.Stdout, approvalsUsage)
		return ExitOK
	default:
		fmt.Fprintln(env.Stderr, approvalsUsage)
		return ExitUsage
	}
	args = args[1:]
	fs, cfgPath := newFlags("approvals "+sub, env)
	token := fs.String("token", "", "your bearer token (default $MCPGW_TOKEN; for list, else the admin token)")
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	var status, comment, app, reason *string
	var wholeTool *bool
	var tools toolFlags
	switch sub {
	case "list":
		status = fs.String("status", "", "only requests with this status: pending, approved, denied, expired")
	case "approve", "deny":
		comment = fs.String("comment", "", "a comment for the record")
		if sub == "approve" {
			wholeTool = fs.Bool("whole-tool", false, "grant the tools whatever their arguments, not only the call asked for")
		}
	case "request":
		app = fs.String("app", "", "the application (required)")
		fs.Var(&tools, "tool", "a tool to ask for (required; repeat for more)")
		reason = fs.String("reason", "", "why, for the approvers (required)")
	}
	// The request's id may come before, among or after the flags: the
	// flag package stops at it, so parsing goes on after it.
	var id string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			return ExitUsage
		}
		rest = fs.Args()
		if id != "" || (sub != "approve" && sub != "deny") || len(rest) == 0 {
			break
		}
		id, rest = rest[0], rest[1:]
	}
	switch {
	case len(rest) > 0:
		return approvalsUsageError(env, sub, fmt.Sprintf("unexpected argument %q", rest[0]))
	case (sub == "approve" || sub == "deny") && id == "":
		return approvalsUsageError(env, sub, "which request? mcpgw approvals "+sub+" ID")
	case sub == "list" && *status != "" && !access.Status(*status).Valid():
		return approvalsUsageError(env, sub, "--status must be pending, approved, denied or expired")
	case sub == "request" && (*app == "" || len(tools) == 0 || *reason == ""):
		return approvalsUsageError(env, sub, "--app, --tool and --reason are required")
	}
	tok := *token
	if tok == "" {
		tok = env.Getenv("MCPGW_TOKEN")
	}
	if tok == "" && sub != "list" {
		return approvalsUsageError(env, sub, "approvals are personal: give your own bearer token with --token or $MCPGW_TOKEN")
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return ExitConfig
	}
	if tok == "" {
		b, err := readAdminToken(cfg.Server.Admin.TokenFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mcpgw approvals list: no --token or $MCPGW_TOKEN, and the admin token cannot be read: %v\n", err)
			return ExitConfig
		}
		tok = string(b)
	}
	c := &approvalsClient{
		base:   "http://" + dialableAddr(cfg.Server.Admin.Listen),
		token:  tok,
		client: &http.Client{Timeout: time.Minute},
	}
	var out []byte
	var created bool
	switch sub {
	case "list":
		q := url.Values{}
		if *status != "" {
			q.Set("status", *status)
		}
		out, _, err = c.do("GET", "/api/v1/approvals?"+q.Encode(), nil)
	case "approve":
		out, _, err = c.do("POST", "/api/v1/approvals/"+url.PathEscape(id)+"/approve",
			map[string]any{"comment": *comment, "whole_tool": *wholeTool})
	case "deny":
		out, _, err = c.do("POST", "/api/v1/approvals/"+url.PathEscape(id)+"/deny", map[string]any{"comment": *comment})
	case "request":
		var code int
		out, code, err = c.do("POST", "/api/v1/approvals", map[string]any{"app": *app, "tools": []string(tools), "reason": *reason})
		created = code == http.StatusCreated
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw approvals %s: %v\n", sub, err)
		return ExitConfig
	}
	if *asJSON {
		_, _ = env.Stdout.Write(out)
		return ExitOK
	}
	if err := printApprovals(env, sub, out, created); err != nil {
		fmt.Fprintf(env.Stderr, "mcpgw approvals %s: %v\n", sub, err)
		return ExitConfig
	}
	return ExitOK
}

func approvalsUsageError(env Env, sub, msg string) int {
	fmt.Fprintf(env.Stderr, "mcpgw approvals %s: %s\n%s\n", sub, msg, approvalsUsage)
	return ExitUsage
}

// printApprovals writes the admin API's answer out for people: a list of
// requests, or the one request a decision or request answered.
func printApprovals(env Env, sub string, out []byte, created bool) error {
	if sub == "list" {
		var page struct {
			Items []access.Request `json:"items"`
		}
		if err := json.Unmarshal(out, &page); err != nil {
			return errors.New("the admin API's answer is not the JSON expected")
		}
		if len(page.Items) == 0 {
			fmt.Fprintln(env.Stderr, "no approval requests")
		}
		for i := range page.Items {
			printApprovalRequest(env.Stdout, &page.Items[i])
		}
		return nil
	}
	var req access.Request
	if err := json.Unmarshal(out, &req); err != nil {
		return errors.New("the admin API's answer is not the JSON expected")
	}
	printApprovalRequest(env.Stdout, &req)
	if sub == "request" && !created {
		fmt.Fprintln(env.Stderr, "a pending request for these tools already existed; it is the one above")
	}
	return nil
}

// printApprovalRequest writes req as one line:
//
//	apr_… pending level=1/2 user=alice@example.com app=crm tools=delete_group,delete_user expires=2026-11-25T15:00:00Z reason=INC-42
func printApprovalRequest(w io.Writer, req *access.Request) {
	b := append([]byte(req.ID), ' ')
	b = append(b, req.Status...)
	b = appendField(b, "level", strconv.Itoa(req.Level)+"/"+strconv.Itoa(len(req.Levels)))
	b = appendField(b, "user", req.User)
	b = appendField(b, "app", req.App)
	b = appendField(b, "tools", strings.Join(req.Tools, ","))
	if req.ArgumentsHash != "" {
		b = appendField(b, "arguments_hash", req.ArgumentsHash)
	}
	b = appendField(b, "expires", req.Expires.UTC().Format(time.RFC3339))
	b = appendField(b, "grant", req.GrantID)
	b = appendField(b, "reason", req.Reason)
	_, _ = w.Write(append(b, '\n'))
}

// approvalsClient asks the admin API with one bearer token.
type approvalsClient struct {
	base, token string
	client      *http.Client
}

// maxAdminAnswer bounds what is read of an admin API answer.
const maxAdminAnswer = 64 << 20

// do sends method path with body (JSON; nil for none) and returns the
// answer of a 2xx, with its status; else the gateway's error message.
func (c *approvalsClient) do(method, path string, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic("BUG: appliance: cannot encode an admin request: " + err.Error())
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+strings.TrimSuffix(path, "?"), rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot reach the gateway's admin API (server.admin.listen): %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("cannot read the admin API's answer: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return out, resp.StatusCode, nil
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(out, &e) == nil && e.Error.Message != "" {
		return nil, resp.StatusCode, fmt.Errorf("refused: %s (%d %s)", e.Error.Message, resp.StatusCode, e.Error.Code)
	}
	return nil, resp.StatusCode, fmt.Errorf("refused: status %d", resp.StatusCode)
}
