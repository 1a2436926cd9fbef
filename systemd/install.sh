#!/bin/sh
# Install corral on a systemd host: the binary, the units, and an example
# configuration if there is none. As root, on the host itself:
#
#   systemd/install.sh [BINARY]
#
# BINARY defaults to bin/corral (`make build`). Environment:
#   PREFIX   where the binary goes, PREFIX/bin/corral (default /usr/local)
#   DESTDIR  stage everything under this directory instead of / (packaging,
#            tests); nothing is started then
#   UNITDIR  where the units go (default /etc/systemd/system)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-${BINARY:-$here/../bin/corral}}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
UNITDIR=${UNITDIR:-/etc/systemd/system}
bindir=$PREFIX/bin
confdir=/etc/corral

if [ ! -x "$binary" ]; then
	echo "install.sh: $binary is not an executable: build it first (make build)" >&2
	exit 1
fi

install -d -m 0755 "$DESTDIR$bindir" "$DESTDIR$UNITDIR"
install -d -m 0700 "$DESTDIR$confdir"
install -m 0755 "$binary" "$DESTDIR$bindir/corral"

# The unit names the binary where PREFIX put it.
sed "s#^ExecStart=/usr/local/bin/corral #ExecStart=$bindir/corral #" "$here/corral.service" >"$DESTDIR$UNITDIR/corral.service.tmp"
chmod 0644 "$DESTDIR$UNITDIR/corral.service.tmp"
mv "$DESTDIR$UNITDIR/corral.service.tmp" "$DESTDIR$UNITDIR/corral.service"
install -m 0644 "$here/corral.slice" "$DESTDIR$UNITDIR/corral.slice"

# An existing configuration is never replaced.
if [ -e "$DESTDIR$confdir/corral.yaml" ]; then
	echo "kept the existing $confdir/corral.yaml"
else
	install -m 0600 "$here/corral.yaml" "$DESTDIR$confdir/corral.yaml"
	echo "installed an example $confdir/corral.yaml: edit it (corral policy check validates it)"
fi

echo "installed $bindir/corral, $UNITDIR/corral.service and $UNITDIR/corral.slice${DESTDIR:+ under $DESTDIR}"

# Start it only on a live host run by systemd.
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now corral.service
	echo "corral.service is enabled and started: systemctl status corral"
else
	echo "not started here${DESTDIR:+ (DESTDIR is set)}; on the host, run:"
	echo "  systemctl daemon-reload && systemctl enable --now corral.service"
fi
