#!/bin/sh
# mcpgw postinstall (deb postinst: configure [old-version] | abort-*;
# rpm %post: 1 install, 2+ upgrade).
#
# Sets owners and modes, reloads systemd, enables the unit on a first install,
# and starts (install) or restarts (upgrade, if running) the service only when
# `mcpgw check` passes on the installed configuration as the mcpgw user: a
# half-configured gateway is never started, and on an upgrade whose new binary
# rejects the configuration the running one is left serving. Without a
# running systemd (a chroot or image build) only the files are set up and the
# unit enabled.
set -e

case "$1" in
configure) if [ -n "$2" ]; then action=upgrade; else action=install; fi ;;
1) action=install ;;
[0-9]*) action=upgrade ;;
*) exit 0 ;; # abort-upgrade, abort-remove, abort-deconfigure: nothing was changed
esac

config=/etc/mcpgw/mcpgw.yaml
chown root:mcpgw /etc/mcpgw "$config"
chmod 0750 /etc/mcpgw
chmod 0640 "$config"
install -d -o mcpgw -g mcpgw -m 0750 /var/lib/mcpgw
chown mcpgw:mcpgw /var/lib/mcpgw
chmod 0750 /var/lib/mcpgw

have_systemctl=false
booted=false
if command -v systemctl >/dev/null 2>&1; then
	have_systemctl=true
	# What sd_booted(3) tests: systemd is PID 1 here.
	[ -d /run/systemd/system ] && booted=true
fi

if $have_systemctl && [ "$action" = install ]; then
	systemctl enable mcpgw.service >/dev/null 2>&1 || true
fi
$booted || exit 0
systemctl daemon-reload || true

# check as the service's user, so an unreadable ${file:...} fails here too.
# --offline, as the unit's ExecCondition: an upstream that is down right now
# is no reason not to start.
check() {
	if command -v runuser >/dev/null 2>&1; then
		runuser -u mcpgw -- /usr/bin/mcpgw check --offline --config "$config"
	else
		/usr/bin/mcpgw check --offline --config "$config"
	fi
}
report=$(mktemp)
if errors=$(check 2>&1 >"$report"); then
	rm -f "$report"
	if [ "$action" = install ]; then
		systemctl start mcpgw.service ||
			echo "mcpgw: the service did not start: see journalctl -u mcpgw" >&2
	else
		systemctl try-restart mcpgw.service ||
			echo "mcpgw: the service did not restart: see journalctl -u mcpgw" >&2
		# A reinstall after a removal (which disabled the unit) comes here
		# too, as does an upgrade of a unit the operator disabled.
		if ! systemctl is-enabled --quiet mcpgw.service; then
			echo "mcpgw: the unit is disabled; to run the gateway: systemctl enable --now mcpgw" >&2
		fi
	fi
	exit 0
fi
{
	echo "mcpgw: $config does not pass \`mcpgw check\`:"
	# Load errors come on stderr, the preflight's FAIL lines on stdout.
	{
		printf '%s\n' "$errors"
		grep FAIL "$report" || true
	} | sed -e '/^$/d' -e 's/^ */  /'
	if [ "$action" = install ]; then
		echo "mcpgw: the service is enabled but NOT started."
	else
		echo "mcpgw: the service was NOT restarted; a running gateway keeps the previous binary."
	fi
	echo "mcpgw: edit $config, run \`runuser -u mcpgw -- mcpgw check\`, then \`systemctl restart mcpgw\`."
} >&2
rm -f "$report"
exit 0
