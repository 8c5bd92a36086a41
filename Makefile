# mcpgw build, run and test entry points. `make test` is what CI runs (.ci/run):
# it installs everything the tests need into folders git ignores (bin/,
# e2e/node_modules/) and then runs unit tests, short fuzz runs, the end-to-end
# suite and the official conformance suite.

GO       ?= go
BIN      := $(CURDIR)/bin
E2E_NODE := $(CURDIR)/e2e/node_modules
FUZZ_EXECS ?= 40000
PKGS     := ./...

# Fuzz targets: package:FuzzName[:executions]. `make test` runs each for
# $(FUZZ_EXECS) executions or its own count (scripts/fuzz.sh says why counts,
# not durations), `make fuzz` for five minutes each.
FUZZ_TARGETS := \
	./jsonrpc:FuzzScan:150000 \
	./jsonrpc:FuzzFilter:150000 \
	./jsonrpc:FuzzSSE \
	./jsonrpc:FuzzRedact \
	./identity:FuzzBearerToken \
	./identity:FuzzSessionOpen \
	./identity:FuzzAccessToken \
	./identity:FuzzDecodeAccessToken:15000 \
	./identity:FuzzCheckRedirectURI:15000 \
	./identity:FuzzCanonicalResource \
	./identity:FuzzParseCIMDDocument \
	./identity:FuzzCIMDClientID:15000 \
	./identity:FuzzParseGroups \
	./policycache:FuzzMatcher:150000 \
	./proxy:FuzzChunked:20000 \
	./access:FuzzDecodeRecord \
	./appliance:FuzzLoadConfig:10000

.PHONY: all build run test unit fuzz fuzz-short e2e conformance bench check deps tools node-deps clean

all: build

build:
	$(GO) build -trimpath -o $(BIN)/mcpgw ./cmd/mcpgw

# Tools pinned in go.mod's tool block, built into bin/.
tools:
	$(GO) build -o $(BIN)/go-everything github.com/modelcontextprotocol/go-sdk/conformance/everything-server
	$(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

# npm packages pinned in e2e/package-lock.json (MCP SDK client, conformance
# suites, Node 22 for the suites and the OAuth tests, oidc-provider as the
# identity provider of the OAuth tests).
node-deps: $(E2E_NODE)/.installed
$(E2E_NODE)/.installed: e2e/package.json e2e/package-lock.json
	cd e2e && npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: tools node-deps

# A quickstart: mcpgw in front of the official Go SDK everything server.
run: build tools
	./scripts/quickstart.sh

test: deps build unit fuzz-short e2e conformance test-packaging

unit: tools
	$(GO) vet $(PKGS)
	$(BIN)/staticcheck $(PKGS)
	$(GO) test -count=1 $(PKGS)

fuzz-short:
	GO=$(GO) FUZZ_EXECS=$(FUZZ_EXECS) FUZZTIME= ./scripts/fuzz.sh $(FUZZ_TARGETS)

fuzz:
	GO=$(GO) FUZZTIME=5m ./scripts/fuzz.sh $(FUZZ_TARGETS)

e2e: deps build
	MCPGW_BIN=$(BIN)/mcpgw GO_EVERYTHING_BIN=$(BIN)/go-everything E2E_NODE_MODULES=$(E2E_NODE) \
		$(GO) test -count=1 -tags e2e -timeout 15m ./e2e/...

conformance: deps build
	BIN=$(BIN) E2E_NODE_MODULES=$(E2E_NODE) ./e2e/conformance.sh

# make package: dist/mcpgw_*.deb and dist/mcpgw-*.rpm for this machine's
# architecture, with nfpm from go.mod's tool block (packaging/build.sh).
# make test-packaging (root): builds them, inspects the .rpm, and installs both
# into a Debian bookworm container booted with systemd-nspawn
# (e2e/packaging_test.go; the Debian root is cached in .cache/packaging/).
.PHONY: package test-packaging packaging-deps

package:
	GO=$(GO) ./packaging/build.sh

packaging-deps:
	@command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null && command -v rpm >/dev/null || \
		{ apt-get update && apt-get install -y debootstrap systemd-container rpm; }

test-packaging: packaging-deps tools
	GO=$(GO) GO_EVERYTHING_BIN=$(BIN)/go-everything \
		$(GO) test -count=1 -tags packaging -timeout 20m -run '^TestPackaging$$' -v ./e2e/

# make bench: the comparison runner (bench/cmd/compare, BENCHMARKS.md) drives
# the mock backend directly, through nginx and through mcpgw, interleaved, and
# writes bench/results/latest.{json,md,svg}. BENCH_FLAGS passes options, e.g.
# BENCH_FLAGS="--rounds 5 --scenarios s1,s2". make soak holds constant load
# through mcpgw for $(SOAK) and fails if its memory or threads grow.
SOAK        ?= 2m
BENCH_FLAGS ?=
.PHONY: bench-micro bench-deps bench-tool soak

bench: bench-deps build bench-tool
	$(GO) run ./bench/cmd/compare --bin $(BIN) --out bench/results $(BENCH_FLAGS)

bench-micro:
	$(GO) test -run='^$$' -bench=. -benchmem ./jsonrpc ./policycache ./identity ./auditlog ./proxy

# nginx from Debian's packages, for the comparison.
bench-deps:
	@nginx -v >/dev/null 2>&1 || { apt-get update && apt-get install -y nginx; }

bench-tool:
	$(GO) build -trimpath -o $(BIN)/mcpgw-bench ./cmd/mcpgw-bench

soak: build bench-tool
	$(GO) run ./bench/cmd/compare --bin $(BIN) --out bench/results --soak $(SOAK)

check: tools
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(BIN)/staticcheck $(PKGS)
	$(GO) test -race -shuffle=on -count=1 $(PKGS)
	$(MAKE) fuzz-short

clean:
	rm -rf $(BIN) dist
