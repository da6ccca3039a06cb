#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build gate of the nouveau conversion (no GPU here runs nouveau): build the
# nouveau directory in an x86_64 config with DRM_NOUVEAU=m and
# DRM_NOUVEAU_SVM=y (harness/nouveau/x86_64.config on allnoconfig), then
# rebuild the objects the series changes with W=1 and sparse; any warning in
# the files the series changes fails.
set -euo pipefail
. "$(dirname "$0")/common.sh"

bdir=$BUILD/nouveau-x86_64
frag=$REPO/harness/nouveau/x86_64.config
log=$BUILD/nouveau-build.log
# Objects of the files patches/ changes, and those files.
OBJS="drivers/gpu/drm/nouveau/nouveau_svm.o"
FILES='drivers/gpu/drm/nouveau/nouveau_svm\.[ch]'
mkdir -p "$bdir" "$BUILD/results"

kmake() {
	make -s -C "$SRC" O="$bdir" ARCH=x86_64 CC="$(kcc)" -j"$JOBS" "$@"
}

x86_64_config nouveau "$bdir" "$frag"

passed=0 failed=0
t0=$(date +%s)
say "nouveau: building drivers/gpu/drm/nouveau/ in $bdir (log: $log)"
kmake modules_prepare >"$log" 2>&1 || die "nouveau: modules_prepare failed, see $log"

# W=1 and sparse on the changed objects first, forced; the directory build
# below then rebuilds them with the normal flags and links nouveau.o.
(cd "$bdir" && rm -f $OBJS)
out=$(kmake W=1 C=2 $OBJS 2>&1 | grep -E "$FILES" | grep -E 'warning|error' || true)
(cd "$bdir" && rm -f $OBJS)
if [ -z "$out" ]; then
	echo "nouveau: W=1 + sparse on $OBJS: clean"
	passed=$((passed + 1))
else
	printf '%s\n' "$out" >&2
	echo "nouveau: W=1 + sparse on $OBJS: FAILED" >&2
	failed=$((failed + 1))
fi

if kmake drivers/gpu/drm/nouveau/ >>"$log" 2>&1; then
	echo "nouveau: build of drivers/gpu/drm/nouveau/: ok"
	passed=$((passed + 1))
else
	tail -n 30 "$log" >&2
	echo "nouveau: build: FAILED, see $log" >&2
	failed=$((failed + 1))
fi
say "nouveau: done in $(($(date +%s) - t0)) s"
echo "$passed $failed 0" >"$BUILD/results/nouveau"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
