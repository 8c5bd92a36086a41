package proxy

// Error codes the gateway uses in JSON-RPC error responses of its own.
// MCP 2026-07-28 reserves -32020…-32099 for the spec and asks
// implementations to keep application codes outside -32768…-32000
// (MCP-REQUIREMENTS.md 2.3.1), so the gateway's own codes sit just above.
const (
	// codeAccessDenied answers a call that policy refuses when the
	// application lists everything (visibility: all).
	codeAccessDenied = -31001
	// codeApprovalRequired answers a call to a tool that needs a
	// just-in-time grant the caller does not hold.
	codeApprovalRequired = -31002
	// codeUpstream reports that the upstream MCP server could not be
	// reached or answered something the gateway cannot read with certainty.
	codeUpstream = -31003
	// codeAuditUnavailable refuses a message the audit log cannot record
	// (a full spool with audit.when_full: reject, or a failed spool).
	codeAuditUnavailable = -31004
)

// Messages of the gateway's own errors. They never include request data.
const (
	msgParse               = "Parse error: the gateway could not read the message with certainty"
	msgInvalidRequest      = "Invalid Request"
	msgBatchRefused        = "Invalid Request: JSON-RPC batches are only accepted in sessions that negotiated 2025-03-26"
	msgTooLarge            = "Request too large"
	msgUpstreamDown        = "Upstream MCP server unavailable"
	msgUpstreamBad         = "Upstream MCP server sent a response the gateway cannot read"
	msgUpstreamAuth        = "Upstream MCP server refused the gateway's credentials"
	msgUpstreamTimeout     = "Upstream MCP server timed out"
	msgDenied              = "Access denied by gateway policy"
	msgApproval            = "This tool requires just-in-time approval; no grant is held"
	msgUnauthorized        = "Unauthorized: a valid bearer token is required"
	msgSessionNotFound     = "Session not found"
	msgSessionRequired     = "Bad Request: MCP-Session-Id header is required"
	msgBadOrigin           = "Forbidden: origin not allowed"
	msgBadHost             = "Forbidden: host not allowed"
	msgContentType         = "Unsupported Media Type: Content-Type must be application/json"
	msgVersionMismatch     = "Bad Request: unsupported MCP-Protocol-Version"
	msgHeaderMismatch      = "Header mismatch: Mcp-Method/Mcp-Name/MCP-Protocol-Version disagree with the body"
	msgAmbiguousHeaders    = "Bad Request: a protocol header was sent more than once"
	msgBadHeader           = "Bad Request: a protocol header holds a control character"
	msgAuditFull           = "Service unavailable: the audit spool is full; tool calls resume when it drains"
	msgAuditDown           = "Service unavailable: the audit log cannot record this message"
	msgNoAnswer            = "Upstream MCP server gave no answer to this request"
	msgModernChecks        = "Refused by the 2026-07-28 transport checks (version, Mcp-Method, Mcp-Name)"
	msgBatchElementRefused = "Invalid Request: another element of this batch was refused"
)
