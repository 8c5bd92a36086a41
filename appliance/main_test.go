package appliance

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// runMain runs the command line as cmd/mcpgw does, without MCPGW_CONFIG.
func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

const explainConfig = `identity:
  dev_users:
    - {token: alice-token-0123456789, user: alice@example.com, groups: [engineers]}
applications:
  - name: admin
    frontend_url: http://127.0.0.1:8080/mcp
    upstream_url: http://127.0.0.1:9000/mcp
    headers: {X-Api-Key: "${file:@DIR@/sentinel}"}
    rules:
      - name: readers
        subjects: {groups: [engineers]}
        tools: ["list_.*", "get_.*"]
        deny_tools: ["get_secret.*"]
      - name: writers
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        arguments: {/environment: "dev|staging"}
`

func TestCheckCommand(t *testing.T) {
	dir := fixtureDir(t)
	good := writeFile(t, dir, "good.yaml", strings.ReplaceAll(explainConfig, "@DIR@", dir))
	code, out, errOut := runMain("check", "--offline", "--config", good)
	if code != ExitOK {
		t.Fatalf("check good config: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"identity\n  mode broker (no OIDC client: only dev users log in)", "issuer none", "env file none read",
		"application admin", "rule readers (enforce)", `"get_secret.*"`, "X-Api-Key (values hidden)", "ok (1 applications)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, sentinel) {
		t.Errorf("check printed a secret value")
	}

	// With an env file: the mode, the issuer and the keys read, never a value.
	envFile := writeFile(t, dir, "pingone.env", "OIDC_CLIENT_ID=gw\nOIDC_CLIENT_SECRET="+sentinel+"\n"+
		"OIDC_AUTH_URL=https://idp.example/as/authorize\nOIDC_TOKEN_URL=https://idp.example/as/token\nSERVER_URL=http://127.0.0.1:8080\n")
	withEnv := writeFile(t, dir, "env.yaml", "identity:\n  env_file: "+envFile+"\n"+
		strings.ReplaceAll(strings.TrimPrefix(explainConfig, "identity:\n"), "@DIR@", dir))
	code, out, errOut = runMain("check", "--offline", "--config", withEnv)
	if code != ExitOK {
		t.Fatalf("check config with env file: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"mode broker (mcpgw is the authorization server at http://127.0.0.1:8080)",
		"issuer derived from OIDC_AUTH_URL by discovery",
		"env file " + envFile + " read (OIDC_AUTH_URL, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_TOKEN_URL, SERVER_URL; values hidden)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, sentinel) {
		t.Errorf("check printed a secret value")
	}

	code, _, errOut = runMain("check", "--config", filepath.Join("testdata", "config", "bad-regex.yaml"))
	if code != ExitConfig || !strings.Contains(errOut, "bad-regex.yaml:") {
		t.Errorf("check bad config: got exit %d, stderr %q; want exit 1 naming file:line", code, errOut)
	}
	if code, _, _ := runMain("check", "--nope"); code != ExitUsage {
		t.Errorf("check --nope: got exit %d, want %d", code, ExitUsage)
	}
	if code, _, _ := runMain("frobnicate"); code != ExitUsage {
		t.Errorf("unknown subcommand: got exit %d, want %d", code, ExitUsage)
	}
}

func TestExplainCommand(t *testing.T) {
	dir := fixtureDir(t)
	cfg := writeFile(t, dir, "mcpgw.yaml", strings.ReplaceAll(explainConfig, "@DIR@", dir))
	for _, c := range []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"allowed by a rule", []string{"--user", "alice@example.com", "--groups", "engineers", "--name", "list_users"},
			ExitOK, []string{"allow tools/call", "allowed_by_rule", "rule readers"}},
		{"deny wins", []string{"--user", "alice@example.com", "--groups", "engineers", "--name", "get_secret_key"},
			ExitConfig, []string{"deny tools/call", "denied_by_rule", "rule readers"}},
		{"default deny", []string{"--user", "bob@example.com", "--name", "list_users"},
			ExitConfig, []string{"deny", "default_deny"}},
		{"argument constraint holds", []string{"--user", "carol", "--groups", "sre", "--name", "delete_x", "--arguments", `{"environment":"dev"}`},
			ExitOK, []string{"allow", "rule writers"}},
		{"argument constraint fails", []string{"--user", "carol", "--groups", "sre", "--name", "delete_x", "--arguments", `{"environment":"prod"}`},
			ExitConfig, []string{"deny", "arguments_mismatch"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"explain", "--config", cfg, "--app", "admin"}, c.args...)
			code, out, errOut := runMain(args...)
			if code != c.wantCode {
				t.Fatalf("exit: got %d, want %d (stdout %q, stderr %q)", code, c.wantCode, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output %q lacks %q", out, w)
				}
			}
		})
	}
	if code, _, _ := runMain("explain", "--config", cfg, "--app", "admin", "--user", "u", "--name", "x", "--method", "tools/list"); code != ExitUsage {
		t.Errorf("explain of an unchecked method: got exit %d, want %d", code, ExitUsage)
	}
	if code, _, _ := runMain("explain", "--config", cfg, "--app", "nope", "--user", "u", "--name", "x"); code != ExitUsage {
		t.Errorf("explain of an unknown app: got exit %d, want %d", code, ExitUsage)
	}
}

func TestVersionCommand(t *testing.T) {
	code, out, _ := runMain("version")
	if code != ExitOK || !strings.HasPrefix(out, "mcpgw ") {
		t.Errorf("version: got %d %q", code, out)
	}
}
