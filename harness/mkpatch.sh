#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Write patches/$BASE/ from the commits of a git tree of the base: the way to
# change an upstream file or the order of the series.
#
# Usage: harness/mkpatch.sh [GIT_TREE [REV_RANGE]]
#   (default: build/$BASE/git and base..work)
#
# Make the commits there (harness/series.sh commits gives a branch 'series'
# to start from: git checkout -b work series), then run this. Per commit it
# writes one patch file: the commit message and the diff of the upstream
# files the commit changes. Files the commit adds are new files of this
# repository: they are named on the commit's line of patches/$BASE/series,
# and must be identical to the repository's copy (edit them here, at their
# kernel paths). When a patch file with the commit's subject exists, its header (the
# message, maintained in the repository) is kept and only the diff is
# rewritten; a new patch gets the commit's message.
set -euo pipefail
. "$(dirname "$0")/common.sh"

tree=${1:-$BUILD/git}
range=${2:-base..work}
g() { git -C "$tree" "$@"; }

mkdir -p "$PATCHES"
series_new=$(mktemp)
trap 'rm -f "$series_new"' EXIT
{
	echo "# The series for Linux $BASE, in order: a patch of patches/$BASE/, then the"
	echo "# new files it adds (repository paths). Written by harness/mkpatch.sh."
} >"$series_new"
n=0
for c in $(g rev-list --reverse "$range"); do
	n=$((n + 1))
	subject=$(g log -1 --format=%s "$c")
	name=$(printf '%04d-%s.patch' "$n" "$(sed 's/[^A-Za-z0-9_.]\+/-/g; s/^-//; s/-$//' <<<"$subject" | cut -c1-60 | sed 's/-$//')")
	old=$(grep -lxF "Subject: [PATCH] $subject" "$PATCHES"/*.patch 2>/dev/null | head -n 1 || true)
	added=$(g diff --name-only --diff-filter=A "$c^" "$c")
	for f in $added; do
		cmp -s <(g show "$c:$f") "$REPO/$f" ||
			die "$c adds $f, which differs from the repository's $f: edit the repository's copy"
	done
	out=$PATCHES/$name
	{
		if [ -n "$old" ]; then
			sed '/^---$/q' "$old"
		else
			printf 'From: %s <%s>\nSubject: [PATCH] %s\n\n' \
				"$(g log -1 --format=%an "$c")" "$(g log -1 --format=%ae "$c")" "$subject"
			g log -1 --format=%b "$c" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
			echo
			echo ---
		fi
		g diff --no-renames --diff-filter=MD "$c^" "$c" | { grep -v "^index " || true; }
	} >"$out.new"
	[ -z "$old" ] || [ "$old" = "$out" ] || rm -f "$old"
	mv "$out.new" "$out"
	echo "$name $(echo $added)" | sed 's/ *$//' >>"$series_new"
	echo "mkpatch: $name${added:+ (adds $(echo $added))}"
done
mv "$series_new" "$PATCHES/series"
trap - EXIT
