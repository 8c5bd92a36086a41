#!/usr/bin/env bash
# `make package`: builds the packaged binaries (static: CGO_ENABLED=0;
# -trimpath) and the .deb and .rpm for the host's architecture into dist/,
# with nfpm as pinned in go.mod's tool block.
#
# The package version is the module version the go command stamps into the
# binary from git (what `mcpgw version` prints): a tag such as v1.2.0, else a
# pseudo-version v0.0.0-<commit time>-<commit>[+dirty], which sorts by commit
# time, so a later build upgrades an earlier one. Outside a git checkout it is
# 0.0.0~devel.
#
# Environment: GO (default go), DIST (default dist, relative to the repository
# root).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
go=${GO:-go}
dist=${DIST:-dist}
mkdir -p "$dist/bin"
dist=$(cd "$dist" && pwd)

# The machine's GOFLAGS may say -buildvcs=false; the version comes from git.
# This checkout is what is being built, so git may read it whoever owns it
# (a CI checkout often belongs to another user than the one building).
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="$root"
vcs=false
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
	vcs=true
fi
CGO_ENABLED=0 "$go" build -trimpath -buildvcs=$vcs -ldflags='-s -w' -o "$dist/bin/" ./cmd/mcpgw ./cmd/mcpgw-bench

version=$("$go" version -m "$dist/bin/mcpgw" | awk '$1 == "mod" { print $3 }')
case "$version" in
v[0-9]*) version=${version#v} ;;
*) version=0.0.0~devel ;;
esac
export MCPGW_VERSION=$version
MCPGW_ARCH=$("$go" env GOARCH)
export MCPGW_ARCH

# nfpm expands the environment in version and arch but not in a source
# path: write the binaries' folder into a copy of the config.
sed "s|\${MCPGW_DIST}|$dist|g" packaging/nfpm.yaml >"$dist/nfpm.yaml"
rm -f "$dist"/mcpgw_*.deb "$dist"/mcpgw-*.rpm
for packager in deb rpm; do
	"$go" tool nfpm package --config "$dist/nfpm.yaml" --packager "$packager" --target "$dist/" >/dev/null
done
rm -f "$dist/nfpm.yaml"
ls -l "$dist"/*.deb "$dist"/*.rpm
