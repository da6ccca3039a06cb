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

# The URI of the machine's Debian archive: the entry that carries the
# machine's own release, deb822 (sources.list.d/*.sources) or one-line style.
debian_uri() {
	local codename f
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v c="$codename" '
			/^[[:space:]]*$/ { uri = ""; suites = "" }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c) suites = c }
			uri != "" && suites != "" { print uri; exit }' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v c="$codename" '$1 == "deb" && $0 ~ " " c " " {
			for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }'
}

# fetch_deb PACKAGE SUITE: download PACKAGE from SUITE of the machine's
# Debian archive into build/apt/ with a private apt configuration; prints the
# path of the .deb.
fetch_deb() {
	local pkg=$1 suite=$2 uri apt=$TOP_BUILD/apt deb
	uri=$(debian_uri | head -n 1)
	[ -n "$uri" ] || die "no Debian archive in this machine's apt sources"
	mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/parts" "$apt/debs"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" \
		>"$apt/sources.list"
	local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list"
		-o "Dir::Etc::sourceparts=$apt/parts"
		-o "Dir::Etc::preferencesparts=$apt/parts"
		-o "Dir::State::lists=$apt/lists"
		-o "Dir::Cache::archives=$apt/archives"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
		-o "APT::Sandbox::User=root" -q)
	say "base: apt-get download $pkg from $uri $suite (private config in $apt)" >&2
	apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 ||
		die "apt-get update of $suite failed, see $apt/update.log"
	(cd "$apt/debs" && rm -f "${pkg}"_*.deb &&
		apt-get "${opts[@]}" download "$pkg") >"$apt/download.log" 2>&1 ||
		die "apt-get download $pkg failed, see $apt/download.log"
	deb=$(ls "$apt/debs/${pkg}"_*.deb)
	echo "$deb"
}

case $BASE in
6.12)
	tarball=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n 1) || true
	[ -n "$tarball" ] || die "no /usr/src/linux-source-6.12.tar.*: run 'make deps BASE=6.12'"
	;;
7.3)
	deb=$(ls "$TOP_BUILD"/apt/debs/linux-source-7.3_*.deb 2>/dev/null | head -n 1) || true
	[ -n "$deb" ] || deb=$(fetch_deb linux-source-7.3 trixie-backports)
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
