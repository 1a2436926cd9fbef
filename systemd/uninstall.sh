#!/bin/sh
# Remove corral from a systemd host: stop and disable the unit, remove the
# eBPF links it left pinned (so no connection is refused any more), the
# units and the binary. The configuration (/etc/corral) and the state
# (/var/lib/corral: recordings, audit log, approvals, corral's CA) stay
# unless --purge is given.
#
#   systemd/uninstall.sh [--purge]
#
# PREFIX, DESTDIR and UNITDIR as for install.sh. With DESTDIR the files are
# removed from under it, and the links are unpinned from the live pin
# directory its configuration names.
set -eu

purge=no
for arg in "$@"; do
	case $arg in
	--purge) purge=yes ;;
	*)
		echo "usage: $0 [--purge]" >&2
		exit 2
		;;
	esac
done

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
UNITDIR=${UNITDIR:-/etc/systemd/system}
bin=$DESTDIR$PREFIX/bin/corral
conf=$DESTDIR/etc/corral/corral.yaml
live=no
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	live=yes
fi
status=0

if [ "$live" = yes ]; then
	systemctl disable --now corral.service || true
fi

# The agent runs with --keep-pinned: its links outlive it and refuse
# connects to protected targets until they are removed.
if [ -x "$bin" ]; then
	if [ -e "$conf" ]; then
		set -- --config "$conf"
		where="the pin directory of $conf"
	else
		set --
		where="the default pin directory"
	fi
	if "$bin" unpin "$@"; then
		echo "removed the pinned eBPF links in $where"
	else
		echo "uninstall.sh: could not remove the pinned links in $where: run corral unpin --pin-dir DIR" >&2
		status=1
	fi
else
	echo "uninstall.sh: $bin not found: if links are still pinned, remove them (corral unpin, or rm under /sys/fs/bpf/corral)" >&2
fi

rm -f "$DESTDIR$UNITDIR/corral.service" "$DESTDIR$UNITDIR/corral.slice" "$bin"
echo "removed $PREFIX/bin/corral and the units${DESTDIR:+ from under $DESTDIR}"
if [ "$live" = yes ]; then
	systemctl daemon-reload
fi

if [ "$purge" = yes ]; then
	rm -rf "$DESTDIR/var/lib/corral" "$DESTDIR/etc/corral" "$DESTDIR/run/corral"
	echo "purged /etc/corral and /var/lib/corral"
else
	echo "kept /etc/corral and /var/lib/corral (--purge removes them)"
fi
exit $status
