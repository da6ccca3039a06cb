#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make test: every gate and suite, each timed; all run even when one fails.
# Ends with the line 'N passed, N failed[, N skipped]' summed over them.
set -euo pipefail
. "$(dirname "$0")/common.sh"

t0=$(date +%s)
rm -rf "$BUILD/results"
mkdir -p "$BUILD/results"
rc=0
if ! stage deps "$REPO/harness/deps.sh" ||
   ! stage assemble "$REPO/harness/assemble.sh"; then
	echo "0 passed, 1 failed"
	exit 1
fi
# check compiles its objects in the default KUnit build and the x86_64
# build of the selftest: run it after those.
stage "kunit (default)" "$REPO/harness/kunit.sh" default || rc=1
stage "selftest (x86_64 kernel in QEMU)" "$REPO/harness/qemu.sh" selftest || rc=1
stage "nouveau (x86_64 build, W=1, sparse)" "$REPO/harness/nouveau.sh" || rc=1
stage check "$REPO/harness/check.sh" || rc=1
stage "kunit (debug: lockdep, DEBUG_VM, slub_debug)" "$REPO/harness/kunit.sh" debug || rc=1

passed=0 failed=0 skipped=0
for f in "$BUILD"/results/*; do
	read -r p f_ s <"$f"
	printf '  %-16s %s passed, %s failed, %s skipped\n' "$(basename "$f")" "$p" "$f_" "$s"
	passed=$((passed + p)) failed=$((failed + f_)) skipped=$((skipped + s))
done
say "test: done in $(($(date +%s) - t0)) s"
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
line="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
