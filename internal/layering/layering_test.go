package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/mcpgw/mcpgw/"

// allowed lists, per project package, the project packages it may import
// (DESIGN.md section 1: arrows only point down the table). internal/*
// helpers are allowed everywhere; e2e is a test harness and unrestricted.
var allowed = map[string][]string{
	"cmd/mcpgw":       {"appliance"},
	"cmd/mcpgw-bench": {"bench"},
	"appliance":       {"proxy", "identity", "access", "policycache", "auditlog", "jsonrpc", "bench"},
	"proxy":           {"jsonrpc", "policycache", "identity", "access", "auditlog"},
	"identity":        {},
	"access":          {},
	"policycache":     {"jsonrpc"},
	"auditlog":        {},
	"jsonrpc":         {},
	"bench":           {"jsonrpc"},
}

// stdlibOnly packages may import nothing outside the standard library.
var stdlibOnly = map[string]bool{"jsonrpc": true}

func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		if strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "e2e") {
			continue
		}
		room := pkg
		if !strings.HasPrefix(room, "cmd/") {
			room, _, _ = strings.Cut(pkg, "/")
		}
		may, ok := allowed[room]
		if !ok {
			t.Errorf("package %s is not a room of DESIGN.md section 1; add it to the table on purpose", pkg)
			continue
		}
		seen++
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module) {
				dep := strings.TrimPrefix(imp, module)
				if strings.HasPrefix(dep, "internal/") {
					continue
				}
				depRoom, _, _ := strings.Cut(dep, "/")
				if depRoom == room {
					continue
				}
				if !contains(may, depRoom) {
					t.Errorf("%s imports %s: not allowed (may import %v)", pkg, dep, may)
				}
				continue
			}
			if stdlibOnly[room] && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				t.Errorf("%s imports %s: it must use the standard library only", pkg, imp)
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list reported no project packages")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
