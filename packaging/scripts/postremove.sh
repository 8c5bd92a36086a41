#!/bin/sh
# mcpgw postremove (deb postrm: remove|purge|upgrade|abort-*|disappear;
# rpm %postun: 0 removal, 1+ upgrade).
#
# After a removal systemd forgets the unit. A deb purge also deletes
# /var/lib/mcpgw (session key, state store, admin token, audit spool); a plain
# removal or an RPM erase keeps it, as they keep /etc/mcpgw/mcpgw.yaml. The
# mcpgw user and group stay: files anywhere may still belong to them, and a
# reused id would hand those files to another account.
set -e

case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/mcpgw
fi
