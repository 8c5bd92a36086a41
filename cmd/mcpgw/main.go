// Command mcpgw is the MCP security gateway. It only hands its command line
// to the appliance package.
package main

import (
	"os"

	"github.com/mcpgw/mcpgw/appliance"
)

func main() {
	os.Exit(appliance.Main(os.Args[1:], appliance.Env{Stdout: os.Stdout, Stderr: os.Stderr}))
}
