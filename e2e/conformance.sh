#!/usr/bin/env bash
# Runs the official MCP conformance suites against the Go SDK conformance
# server, directly and through mcpgw, in both protocol eras, and fails if
# mcpgw fails any check the bare server passes. `make conformance` runs it with
# BIN (mcpgw, go-everything) and E2E_NODE_MODULES set; extra arguments go to
# the runner (-keep, -direct-only, -suite-timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${GO:-go}" run ./e2e/cmd/conformance "$@"
