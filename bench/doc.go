// Package bench measures MCP Streamable HTTP endpoints: a load generator
// (mcpgw-bench), a fast mock MCP backend that is never the bottleneck, and
// the comparison runner behind make bench, which drives the backend
// directly, through nginx as a plain reverse proxy and through mcpgw in one
// run and reports the ratios (DESIGN.md section 8).
package bench
