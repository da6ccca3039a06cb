#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Provide the pristine base tree of $BASE and print its path on stdout.
#
# KSRC=/path/to/linux uses the user's own tree (git or plain) as is.
# Otherwise Debian's linux-source-$BASE is unpacked once into build/$BASE/base:
# - 6.12 comes from this machine's own suites (bookworm), installed by
#   harness/deps.sh;
# - 7.3 comes from the trixie-backports suite of the same Debian archive,
#   which this machine does not use: a private apt configuration in
#   build/apt/ (derived from the machine's own sources, so no archive host is
#   written down here) downloads that one package, nothing is installed and
#   the machine's apt state is not touched.
set -euo pipefail
. "$(dirname "$0")/common.sh"

if [ -n "${KSRC:-}" ]; then
	[ -f "$KSRC/Makefile" ] && [ -d "$KSRC/mm" ] ||
		die "KSRC=$KSRC does not look like a Linux source tree"
	cd "$KSRC" && pwd
	exit 0
fi

case $BASE in
6.12)
	tarball=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n 1) || true
	[ -n "$tarball" ] || die "no /usr/src/linux-source-6.12.tar.*: run 'make deps BASE=6.12'"
	;;
7.3)
	deb=$(ls "$TOP_BUILD"/apt/debs/linux-source-7.3_*.deb 2>/dev/null | head -n 1) || true
	if [ -z "$deb" ]; then
		say "base: apt-get download linux-source-7.3 (trixie-backports)" >&2
		mkdir -p "$TOP_BUILD/apt/debs"
		(cd "$TOP_BUILD/apt/debs" &&
			apt_private deb trixie-backports download linux-source-7.3) \
			>"$TOP_BUILD/apt/download.log" 2>&1 ||
			die "apt-get download linux-source-7.3 failed, see $TOP_BUILD/apt/download.log"
		deb=$(ls "$TOP_BUILD"/apt/debs/linux-source-7.3_*.deb)
	fi
	pkgdir=$TOP_BUILD/apt/linux-source-7.3
	if [ ! -f "$pkgdir/.from" ] || [ "$(cat "$pkgdir/.from")" != "$deb" ]; then
		rm -rf "$pkgdir"
		dpkg-deb -x "$deb" "$pkgdir"
		echo "$deb" >"$pkgdir/.from"
	fi
	tarball=$(ls "$pkgdir"/usr/src/linux-source-7.3.tar.* | head -n 1)
	;;
esac

dest=$BUILD/base
stamp=$dest/.unpacked-from
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(stat -c '%n %s %Y' "$tarball")" ]; then
	say "base: unpacking $tarball into $dest" >&2
	rm -rf "$dest"
	mkdir -p "$dest"
	tar -C "$dest" -xaf "$tarball"
	stat -c '%n %s %Y' "$tarball" >"$stamp"
fi
echo "$dest/linux-source-$BASE"
