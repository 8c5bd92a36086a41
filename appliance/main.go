package appliance

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// Exit codes (DESIGN.md section 2).
const (
	ExitOK     = 0
	ExitConfig = 1 // bad config or failed check
	ExitUsage  = 2
)

const defaultConfigPath = "/etc/mcpgw/mcpgw.yaml"

// Env is what a subcommand may use from its process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Main runs the mcpgw command line and returns the exit code. args excludes
// the program name. "serve" is the default subcommand.
func Main(args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(args, env)
	case "check":
		return runCheck(args, env)
	case "explain":
		return runExplain(args, env)
	case "tools":
		return runTools(args, env)
	case "audit":
		return runAudit(args, env)
	case "approvals":
		return runApprovals(args, env)
	case "version":
		fmt.Fprintln(env.Stdout, "mcpgw", Version())
		return ExitOK
	case "help", "-h", "--help":
		usage(env.Stdout)
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "mcpgw: unknown subcommand %q\n", cmd)
	usage(env.Stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  mcpgw serve   [--config F]      run the gateway (default subcommand)
  mcpgw check   [--config F] [--offline] [--timeout D]
                                  validate config, print each app's compiled rules, then the
                                  preflight: secrets, env file, TLS, upstreams, identity provider
                                  (--offline: no network; fail only on what stops serve)
  mcpgw tools   [--config F] --app NAME [--match REGEX] [--as USER [--groups G,..]]
                                  list the upstream's tools and the rules that match each
  mcpgw explain [--config F] --app NAME --user U [--groups G,..] --method M --name N
                                  would this be allowed, by which rule, why
  mcpgw audit   sessions|activity|tail|verify [--config F] [filters] [--json]
                                  read the audit log (filters: --app --user --session --method
                                  --name --decision --kind --audited --since --until); verify the
                                  hash chain; through the admin API while the gateway runs
  mcpgw approvals list [--status S] | approve ID [--comment C] [--whole-tool] | deny ID [--comment C]
                | request --app A --tool T [--tool T2] --reason R     [--token T] [--json]
                                  drive approvals through the running gateway's admin API, as the
                                  user whose token is --token or $MCPGW_TOKEN (list: else the admin token)
  mcpgw version
--config defaults to $MCPGW_CONFIG, else /etc/mcpgw/mcpgw.yaml.
`)
}

// Version is the module version the binary was built from.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// newFlags makes a subcommand's flag set with the common --config flag.
func newFlags(name string, env Env) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("mcpgw "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	def := defaultConfigPath
	if v := env.Getenv("MCPGW_CONFIG"); v != "" {
		def = v
	}
	cfg := fs.String("config", def, "configuration file")
	return fs, cfg
}

// parseFlags parses args; ok is false with the exit code to return.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}
