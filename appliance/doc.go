// Package appliance is mcpgw as a program: the configuration file
// (loading, strict validation with file:line errors, the identity env
// file), the wiring of the other packages into a running gateway, its
// lifecycle (signals, reload, sd_notify), the admin listener, and the
// subcommands (serve, check, explain, audit, version). cmd/mcpgw only hands it the
// command line.
//
// # Lifecycle of serve
//
//	once per process                  per configuration load (start, SIGHUP)
//	----------------                  --------------------------------------
//	data_dir/session.key              LoadConfig: decode, defaults, validate
//	  └─ HKDF → OAuth token key       compile: policy + proxy.Snapshot
//	data_dir/state (Pebble store)     attach: identity for the snapshot
//	CIMD fetcher (its cache)            broker:   OIDCUpstream + AuthServer
//	admin token (token_file)            resource: JWTVerifier + metadata
//	frontend and admin listeners      proxy.Server.Update swaps it in
//
// A reload builds a complete new compiled snapshot and swaps it in only
// when everything succeeded; on any error the running one keeps serving.
// The replaced snapshot's policy and token caches are closed a minute
// later, when no request can still hold them. Listener addresses, TLS on or
// off and data_dir need a restart.
//
// # Admin listener
//
// server.admin.listen (default 127.0.0.1:9900) serves /healthz and /readyz
// without credentials and everything under /api/v1/ behind the admin token
// (admin.go); the audit endpoints (admin_audit.go) also take user tokens
// whose groups roles.auditor_groups or roles.admin_groups name. It is never
// served on the frontend listener. mcpgw audit reads the audit log through
// it while the gateway runs (Pebble locks the spool even for readers), and
// opens the spool itself otherwise (audit_cli.go).
//
// # Concurrency
//
// A loaded Config is never modified and may be read from any goroutine.
// serve owns every goroutine it starts (the two listeners) and waits for
// them when its context ends.
package appliance
