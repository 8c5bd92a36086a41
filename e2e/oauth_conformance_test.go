//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"io"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/procrun"
)

// TestOAuthConformance runs the official conformance suite's authorization
// server scenarios (@modelcontextprotocol/conformance 0.2.0-alpha.12,
// `authorization`) against mcpgw's authorization server: the RFC 8414
// metadata document, and a whole authorization-code grant with PKCE and
// resource for a client registered here, whose login the headless browser
// completes at the identity provider and mcpgw's consent page while the
// suite waits on its callback.
func TestOAuthConformance(t *testing.T) {
	s := startOAuthStack(t, "broker", "userinfo")
	port, err := procrun.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	callback := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
	clientID := s.registerRedirect(t, callback)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node22(), filepath.Join(nodeModules, "conformance-modern", "dist", "index.js"),
		"authorization", "--url", s.ServerURL, "--client-id", clientID, "--resource", s.URL, "--port", strconv.Itoa(port))
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	loggedIn := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if loggedIn || !strings.HasPrefix(line, s.Meta.AuthorizationEndpoint+"?") {
			continue
		}
		// The suite prints the authorization URL and waits for the
		// browser at its callback: log in as alice and deliver the code.
		loggedIn = true
		res := login(t, line, "alice", callback, "", nil)
		if !res.OK {
			t.Errorf("login for the suite: %+v\ntrace: %s", res.Error, strings.Join(res.Trace, " → "))
			cancel()
			continue
		}
		if u, _ := url.Parse(res.URL); u.Query().Get("code") == "" {
			t.Errorf("the login came back without a code: %s", u.Query())
		}
		if err := deliver(res.URL); err != nil {
			t.Errorf("delivering the code to the suite: %v", err)
		}
	}
	runErr := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the suite did not finish within 90s; output:\n%s", out.String())
	}
	if !loggedIn {
		t.Errorf("the suite never asked for a login")
	}
	m := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`).FindStringSubmatch(out.String())
	if m == nil || m[2] != "0" || m[1] == "0" || runErr != nil {
		t.Errorf("conformance authorization (run: %v): want every check passed; output:\n%s", runErr, out.String())
	} else {
		summary := out.String()
		if i := strings.Index(summary, "=== SUMMARY ==="); i >= 0 {
			summary = summary[i:]
		}
		t.Logf("conformance authorization:\n%s", summary)
	}
}

// deliver requests the suite's callback URL as the browser would. The suite
// prints the authorization URL before its callback server listens, so a
// refused connection is retried for a few seconds.
func deliver(u string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := httpClient.Get(u)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
