#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Print the path of a sparse that the base tree accepts. Linux 7.3's
# scripts/checker-valid.sh wants __typeof_unqual__, which Debian 12's sparse
# 0.6.4 lacks: then sparse 0.6.5~rc1 is built once, from Debian sid's source
# package (fetched with a private apt configuration, see apt_private), into
# build/tools/. Without a valid sparse, kbuild's C=2 silently checks nothing.
set -euo pipefail
. "$(dirname "$0")/common.sh"

# Bases before scripts/checker-valid.sh (6.12) take any sparse.
valid() {
	[ ! -f "$SRC/scripts/checker-valid.sh" ] ||
		[ "$(sh "$SRC/scripts/checker-valid.sh" "$1" -m64 2>/dev/null)" = 1 ]
}

if command -v sparse >/dev/null 2>&1 && valid "$(command -v sparse)"; then
	command -v sparse
	exit 0
fi
tool=$TOP_BUILD/tools/bin/sparse
if [ ! -x "$tool" ] || ! valid "$tool"; then
	work=$TOP_BUILD/tools/sparse-src
	say "sparse: building sparse from Debian sid's source package in $work" >&2
	rm -rf "$work"
	mkdir -p "$work" "$(dirname "$tool")"
	(cd "$work" && apt_private deb-src sid source --download-only sparse &&
		dpkg-source -x sparse_*.dsc src &&
		make -C src -j"$JOBS" CC=gcc HAVE_LLVM=no HAVE_SQLITE=no \
			HAVE_GTK=no HAVE_LIBXML=no sparse) >"$TOP_BUILD/tools/sparse-build.log" 2>&1 ||
		die "building sparse failed, see $TOP_BUILD/tools/sparse-build.log"
	cp "$work/src/sparse" "$tool"
	valid "$tool" || die "the sparse built in $work is not accepted by $SRC/scripts/checker-valid.sh"
fi
echo "$tool"
