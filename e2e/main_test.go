//go:build e2e

// End-to-end tests: the real mcpgw binary in front of the official Go SDK
// conformance server, driven by the official TypeScript and Go MCP SDK
// clients and by raw HTTP. `make e2e` runs them with MCPGW_BIN,
// GO_EVERYTHING_BIN and E2E_NODE_MODULES set; without the binaries TestMain
// builds them, without node_modules it fails (run `make node-deps`).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/e2e/internal/harness"
)

var (
	mcpgwBin      string // the gateway under test
	everythingBin string // github.com/modelcontextprotocol/go-sdk/conformance/everything-server
	nodeModules   string // e2e/node_modules, from `make node-deps`
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := harness.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	nodeModules, err = harness.NodeModules(envOr("E2E_NODE_MODULES", filepath.Join(root, "e2e", "node_modules")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binDir, err := os.MkdirTemp("", "mcpgw-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, b := range []struct {
		dst      *string
		env, pkg string
	}{
		{&mcpgwBin, "MCPGW_BIN", "./cmd/mcpgw"},
		{&everythingBin, "GO_EVERYTHING_BIN", "github.com/modelcontextprotocol/go-sdk/conformance/everything-server"},
	} {
		if *b.dst = os.Getenv(b.env); *b.dst != "" {
			continue
		}
		*b.dst = filepath.Join(binDir, filepath.Base(b.pkg))
		fmt.Fprintf(os.Stderr, "e2e: %s not set, building %s\n", b.env, b.pkg)
		if err := harness.GoBuild(ctx, root, *b.dst, b.pkg); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	return m.Run()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
