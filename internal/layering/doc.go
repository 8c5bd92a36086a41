// Package layering holds the test that keeps the architecture of
// DESIGN.md section 1 visible in the import graph: every top-level package
// imports only the rooms below it, and the hot-path leaf (jsonrpc) imports
// nothing but the standard library.
package layering
