package jsonrpc

// Kind classifies a JSON-RPC 2.0 message by its members.
type Kind uint8

const (
	KindInvalid      Kind = iota
	KindRequest           // "method" and "id"
	KindNotification      // "method", no "id"
	KindResult            // "id" and "result"
	KindError             // "error" ("id" may be null)
)

// Message is what Scanner.Scan found in one JSON-RPC message.
//
// Every []byte field aliases either the scanned body or the Scanner's scratch
// buffer (when a string had escapes that had to be decoded). They stay valid
// until the next call to Scan or Reset on the same Scanner, and must not be
// modified. String fields hold the decoded value (escapes resolved, no
// quotes); "raw" fields hold the exact JSON token or span as it appears in the
// body.
type Message struct {
	Kind Kind

	// Method is the decoded "method" string (requests and notifications).
	Method []byte
	// ID is the raw "id" token as sent: a JSON string with its quotes or a
	// JSON number, byte for byte. Nil when absent. For KindError it may be
	// the literal null.
	ID []byte

	// Params is the raw span of "params" (nil when absent).
	Params []byte
	// Name is the decoded name the policy checks: params.name for
	// tools/call and prompts/get, params.uri for resources/read,
	// resources/subscribe and resources/unsubscribe, and params.ref.name or
	// params.ref.uri for completion/complete. Nil when absent.
	Name []byte
	// RefType is the decoded params.ref.type of completion/complete
	// ("ref/prompt" or "ref/resource"); nil otherwise.
	RefType []byte
	// Arguments is the raw span of params.arguments (nil when absent).
	Arguments []byte
	// ProgressToken is the raw token of params._meta.progressToken.
	ProgressToken []byte

	// HasMeta reports whether params._meta is present.
	HasMeta bool
	// MetaProtocolVersion is the decoded
	// params._meta["io.modelcontextprotocol/protocolVersion"] (modern era).
	MetaProtocolVersion []byte
	// HasMetaClientCapabilities reports whether
	// params._meta["io.modelcontextprotocol/clientCapabilities"] is present.
	HasMetaClientCapabilities bool

	// ProtocolVersion is the decoded params.protocolVersion of an initialize
	// request, or result.protocolVersion of a result (the initialize result).
	ProtocolVersion []byte
	// ClientName and ClientVersion are params.clientInfo.name/.version of an
	// initialize request (self-reported; audit only).
	ClientName, ClientVersion []byte
	// ElicitationURL reports whether an initialize request declared
	// params.capabilities.elicitation.url.
	ElicitationURL bool

	// Subscriptions is the raw span of
	// params.notifications.resourceSubscriptions (subscriptions/listen), an
	// array of URI strings; nil when absent. Walk it with EachString.
	Subscriptions []byte

	// Result is the raw span of "result" (KindResult).
	Result []byte
	// ResultType is the decoded result.resultType ("complete",
	// "input_required"); nil when absent.
	ResultType []byte
	// ErrorCode is error.code for KindError (0 when absent or not an
	// integer).
	ErrorCode int64
}

// Reset clears m for reuse.
func (m *Message) Reset() { *m = Message{} }

// ListKind names a list result the filter can rewrite.
type ListKind uint8

const (
	ListNone              ListKind = iota
	ListTools                      // result.tools[], keyed by "name"
	ListPrompts                    // result.prompts[], keyed by "name"
	ListResources                  // result.resources[], keyed by "uri"
	ListResourceTemplates          // result.resourceTemplates[], keyed by "uriTemplate"
)

// NameFilter decides whether a list entry with the given decoded name stays.
// Implementations must not retain name.
type NameFilter interface {
	Allow(name []byte) bool
}
