#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Provide the pristine base tree and print its path on stdout.
#
# KSRC=/path/to/linux uses the user's own 6.12.y tree (git or plain) as is;
# otherwise Debian's linux-source-6.12 is unpacked once into build/base.
set -euo pipefail
. "$(dirname "$0")/common.sh"

if [ -n "${KSRC:-}" ]; then
	[ -f "$KSRC/Makefile" ] && [ -d "$KSRC/mm" ] ||
		die "KSRC=$KSRC does not look like a Linux source tree"
	cd "$KSRC" && pwd
	exit 0
fi

tarball=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n 1) ||
	true
[ -n "$tarball" ] || die "no /usr/src/linux-source-6.12.tar.*: run 'make deps'"
dest=$BUILD/base
stamp=$dest/.unpacked-from
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(stat -c '%n %s %Y' "$tarball")" ]; then
	say "base: unpacking $tarball into $dest" >&2
	rm -rf "$dest"
	mkdir -p "$dest"
	tar -C "$dest" -xf "$tarball"
	stat -c '%n %s %Y' "$tarball" >"$stamp"
fi
echo "$dest/linux-source-6.12"
