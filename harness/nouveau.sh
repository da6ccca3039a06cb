#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build gate of the nouveau patches (no GPU here runs nouveau), in an x86_64
# config with DRM_NOUVEAU=m and DRM_NOUVEAU_SVM=y
# (harness/nouveau/x86_64.config on allnoconfig): the objects of the nouveau
# files the series changes, and of every nouveau file that includes a header
# it changes, built with W=1 and sparse; any warning in a changed file, and
# any build error, fails. NOUVEAU_FULL=1 builds and links the whole nouveau
# directory too (about 800 objects: 8 minutes cold on 2 cores).
# NOUVEAU_PATCHES=N: the files of the first N patches only, and no result
# file (harness/series.sh, building the series patch by patch).
set -euo pipefail
. "$(dirname "$0")/common.sh"

bdir=$BUILD/nouveau-x86_64
frag=$REPO/harness/nouveau/x86_64.config
log=$BUILD/nouveau-build.log
ndir=drivers/gpu/drm/nouveau
mkdir -p "$bdir" "$BUILD/results"

kmake() {
	make -s -C "$SRC" O="$bdir" ARCH=x86_64 CC="$(kcc)" -j"$JOBS" "$@"
}

# The nouveau files the patches change, and the objects to build.
changed=$(while read -r p _; do
	sed -n "s|^+++ b/\\($ndir/[^[:space:]]*\\).*|\\1|p" "$PATCHES/$p"
done < <(series_lines | head -n "${NOUVEAU_PATCHES:-1000}") | sort -u)
[ -n "$changed" ] || { echo "nouveau: no nouveau file in patches/$BASE: nothing to build"; exit 0; }
objs=$( {
	grep '\.c$' <<<"$changed" || true
	for hdr in $(grep '\.h$' <<<"$changed" || true); do
		grep -rl --include='*.c' "[\"/]$(basename "$hdr")\"" "$SRC/$(dirname "$hdr")" |
			sed "s|^$SRC/||"
	done
} | sort -u | sed 's/\.c$/.o/')
files_re=$(sed 's/[.]/\\./g' <<<"$changed" | paste -sd'|')

x86_64_config nouveau "$bdir" "$frag"

passed=0 failed=0
t0=$(date +%s)
say "nouveau: $(wc -w <<<"$objs") objects of the changed files and their includers in $bdir (log: $log)"
kmake modules_prepare >"$log" 2>&1 || die "nouveau: modules_prepare failed, see $log"

(cd "$bdir" && rm -f $objs)
# shellcheck disable=SC2086
if out=$(kmake W=1 C=2 CHECK="$("$REPO/harness/sparse.sh")" $objs 2>&1); then
	bad=$(grep -E "($files_re).*(warning|error)|is not available or not up to date" <<<"$out" || true)
else
	bad=$out
fi
printf '%s\n' "$out" >>"$log"
if [ -z "$bad" ]; then
	echo "nouveau: $(wc -w <<<"$objs") objects build, W=1 + sparse clean on the changed files"
	passed=$((passed + 1))
else
	printf '%s\n' "$bad" | head -n 40 >&2
	echo "nouveau: W=1 + sparse build: FAILED" >&2
	failed=$((failed + 1))
fi

if [ "${NOUVEAU_FULL:-0}" = 1 ]; then
	progress_start "$bdir" "nouveau directory build"
	if kmake "$ndir/" >>"$log" 2>&1; then
		echo "nouveau: build of $ndir/: ok"
		passed=$((passed + 1))
	else
		tail -n 30 "$log" >&2
		echo "nouveau: build of $ndir/: FAILED, see $log" >&2
		failed=$((failed + 1))
	fi
	progress_stop
fi
say "nouveau: done in $(($(date +%s) - t0)) s"
[ -n "${NOUVEAU_PATCHES:-}" ] || echo "$passed $failed 0" >"$BUILD/results/nouveau"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
