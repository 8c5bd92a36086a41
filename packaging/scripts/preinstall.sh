#!/bin/sh
# mcpgw preinstall (deb preinst: install|upgrade; rpm %pre: 1 install, 2+ upgrade).
# Creates the mcpgw system group and user before the files are unpacked, so
# that the config and /var/lib/mcpgw get their owners by name. Idempotent: an
# existing user or group is left as it is.
set -e

if ! getent group mcpgw >/dev/null; then
	groupadd --system mcpgw
fi
if ! getent passwd mcpgw >/dev/null; then
	shell=/bin/false
	for s in /usr/sbin/nologin /sbin/nologin; do
		if [ -x "$s" ]; then
			shell=$s
			break
		fi
	done
	useradd --system --gid mcpgw --no-create-home --home-dir /var/lib/mcpgw \
		--shell "$shell" --comment "mcpgw MCP security gateway" mcpgw
fi
