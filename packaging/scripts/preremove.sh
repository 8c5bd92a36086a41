#!/bin/sh
# mcpgw preremove (deb prerm: remove|upgrade|deconfigure|failed-upgrade;
# rpm %preun: 0 removal, 1+ upgrade). Stops and disables the service when the
# package goes away, never on an upgrade (postinstall restarts it then).
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d /run/systemd/system ]; then
	systemctl stop mcpgw.service || true
fi
systemctl disable mcpgw.service >/dev/null 2>&1 || true
