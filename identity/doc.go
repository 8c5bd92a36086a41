// Package identity says who a request acts for and mints the gateway's own
// MCP session ids (DESIGN.md sections 4 and 5).
//
// # Principals
//
// Every authenticator yields a *Principal: the user, their groups, whether
// the request is anonymous (applications with auth: none get the shared
// AnonymousPrincipal), the authenticator that vouched (Source), and a Key
// that identifies (user, set of groups, anonymous) without ambiguity, for
// the policy cache. Principals are immutable and shared; the hot path hands
// out pointers to them and never copies or allocates.
//
// The first authenticator is the static dev_users table (DevUsers): bearer
// tokens from the config, for quickstarts and tests. BearerToken extracts
// the token of an Authorization header (RFC 6750) without allocating, and
// DevUsers.Lookup finds its principal without allocating, through a map
// keyed by the token's SHA-256. The OAuth authorization server and IdP JWT
// validation come later and yield Principals the same way.
//
// # Session ids
//
// In the legacy protocol era the gateway mints its own MCP-Session-Id at
// initialize (MCP-REQUIREMENTS.md 1.5.5). The id carries the Session (owner,
// application, negotiated version, the upstream's session id or none, time
// of issue) encrypted and authenticated with AES-256-GCM, so that any
// gateway holding the key can route it and no session table is shared, the
// client cannot read the upstream's id or anyone's name from it, and any
// change to it is detected (1.5.6, 4.6.4). Ids are random, since every Mint
// draws a fresh nonce, and use only the 64 characters of unpadded base64url,
// which are visible ASCII (1.5.1). A session id is not a credential: every
// request is still authenticated, and its principal must be the session's
// owner (4.6.4).
//
// Wire format, version 1 (the id is the unpadded base64url of these bytes;
// at most MaxSessionIDLen characters):
//
//	+---------+----------------+--------------------------------+--------+
//	| version | nonce          | ciphertext of the plaintext    | tag    |
//	| 0x01    | 12 random bytes| (same length as the plaintext) | 16 B   |
//	+---------+----------------+--------------------------------+--------+
//	          \________________ AES-256-GCM Seal output _________________/
//	additional data: "mcpgw session v1"
//
//	plaintext:
//	+--------------+-----+------+-----+-----+-----+---------+-----+-------------+
//	| issued       | len | user | len | app | len | version | len | upstream id |
//	| int64 BE, ns |     |      |     |     |     |         |     |  (may be 0) |
//	+--------------+-----+------+-----+-----+-----+---------+-----+-------------+
//	len: uvarint byte length of the field that follows (1 or 2 bytes)
//	limits: user 512, app 256, version 128, upstream id 512
//
// The version byte is in the clear so that the format can change: Open
// accepts only version 1, and the additional data names the version, so a
// v1 ciphertext cannot be read as any later format. The AES key is derived
// from the key file with HKDF-SHA-256 (info "mcpgw session id v1
// AES-256-GCM"). With random 96-bit nonces one key must seal fewer than
// 2^32 ids; sessions are minted once per initialize, far below that.
//
// # Keys
//
// LoadOrCreateSessionKey keeps the 32-byte key in a file (under
// server.data_dir) that only its owner may read. It creates the file
// atomically on first start and refuses a file that is the wrong size or
// readable by group or others, rather than silently replacing a key and
// ending every session. Replicas that share sessions share the file.
// Neither keys nor tokens appear in errors or logs.
//
// # Concurrency and lifetimes
//
// Principal, DevUsers and SessionCodec are immutable after construction and
// safe for concurrent use. BearerToken returns a subslice of its argument,
// valid as long as the argument is. Open does not keep the id it is given;
// the strings it stores in a Session are its own.
package identity
