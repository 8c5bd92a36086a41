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
//
// # The authorization server (broker mode)
//
// AuthServer (oauth*.go, consent.go, token.go, prm.go) is the OAuth 2.1
// authorization server MCP clients log in through (DESIGN.md section 5,
// MCP-REQUIREMENTS.md 4). Its Handler serves RFC 8414 metadata, the
// protected resource metadata of its applications (ProtectedResourceHandler,
// RFC 9728, plain and path-inserted), dynamic registration (RFC 7591;
// public clients, or confidential ones that ask for a secret), client ID
// metadata documents (an https client_id, fetched through a
// ClientMetadataFetcher), /oauth/authorize (PKCE S256 only, exact
// redirect_uri, RFC 8707 resource), /oauth/callback (the brokered login at
// the upstream provider, UpstreamLogin), the consent page, /oauth/token
// (authorization_code, refresh_token) and /oauth/revoke (RFC 7009).
// Authorization responses carry iss (RFC 9207).
//
// A login moves through single-use records in the state.Store, each keyed
// by the SHA-256 of a random 256-bit secret the browser or client holds:
//
//	authorize --login (10 min)--> provider --callback--> pending consent (10 min)
//	  --approve--> code (valid 60 s, record kept 10 min) --token--> family + refresh token
//
// Before redirect_uri is validated, authorization errors are an HTML page;
// after, they go to the client with error=. Provider failures (down, bad or
// expired state, refused ID token) are a page saying what happened.
//
// Consent (confused deputy, 4.6.1): the page names the client, the
// application, the user and the redirect host; it is not frameable or
// cacheable; its form is bound to the pending login by an HMAC token in the
// form and an HMAC cookie (SameSite=Lax, HttpOnly, __Host- on https), and a
// foreign Origin is refused. An approval is remembered per (user, client_id)
// with its redirect host; another host asks again.
//
// Access tokens are sealed, like session ids, with AES-256-GCM under a key
// derived from AuthServerConfig.Key (HKDF info "mcpgw oauth access token v1
// AES-256-GCM"), so any node with the key verifies them without the Store:
//
//	token = base64url( 0x01 | nonce (12) | AES-GCM(plaintext) | tag (16) )
//	additional data: "mcpgw oauth access token v1"
//	plaintext: expires (int64 BE, unix ns) | user | client_id | resource |
//	           family | uvarint group count | groups...
//	each string: uvarint length, then bytes; at most 6000 bytes in all
//
// Verify caches verified tokens in ristretto keyed by their SHA-256 (a hit
// allocates nothing) and checks expiry, audience (the application's
// Resource, canonically compared) and the revoked set on every call.
//
// Refresh tokens are random, stored hashed with their family (one login
// chain, RefreshTTL long), and rotate on every use. Presenting a used
// refresh token or a redeemed code revokes the family: its refresh tokens
// fail from then on, and its access tokens fail at once on this node and on
// every node started later (the revocation is kept for TokenTTL in the
// Store and in memory). Until the etcd backend's watch tells the other
// running nodes of a cluster (DESIGN.md section 10), they accept such
// access tokens until these expire (an hour by default).
//
// Redirect URIs match exactly, except the port of an http redirect URI on
// a loopback IP (RFC 8252 section 7.3). A redeemed refresh token's record
// is kept 7 days for reuse detection; an hourly sweep scans the expiring
// records so the Store removes the expired ones.
//
// Nothing the server logs contains a token, code, state, secret or cookie.
// AuthServer is safe for concurrent use; Close stops its sweeper and token
// cache.
package identity
