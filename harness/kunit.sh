#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build UML kernels with the project's kunitconfigs and run the KUnit suites
# with the base tree's own kunit.py, one build folder per config. Fails on a
# failed or crashed case, a build error, and on any kernel report in the log
# (kunit.py counts those runs as passed).
#
# Usage: harness/kunit.sh [CONFIG...]   (default: default debug)
set -euo pipefail
. "$(dirname "$0")/common.sh"

# name:kunitconfig files, relative to the repository.
declare -A CONFIGS=(
	[default]="mm/tests/.kunitconfig"
	[debug]="mm/tests/.kunitconfig harness/kunit/debug.config"
)
# The one known report of an unmodified UML KUnit boot, from virt-pci.
UML_KNOWN='arch/um/drivers/virt-pci\.c'

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(default debug)
mkdir -p "$BUILD/results"
rc=0
tp=0 tf=0 ts=0
for name in "${names[@]}"; do
	[ -n "${CONFIGS[$name]:-}" ] || die "unknown kunit config $name"
	args=()
	for c in ${CONFIGS[$name]}; do
		args+=("--kunitconfig=$REPO/$c")
	done
	out=$BUILD/kunit-$name.out
	bdir=$BUILD/kunit-$name
	say "kunit[$name]: kunit.py run in $bdir (${CONFIGS[$name]}), output in $out"
	t0=$(date +%s)
	set +e
	(cd "$SRC" && python3 tools/testing/kunit/kunit.py run \
		--build_dir="$bdir" "${args[@]}" --jobs="$JOBS" --timeout=300 \
		--make_options="CC=$(kcc)") 2>&1 | tee "$out"
	krc=${PIPESTATUS[0]}
	set -e
	summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -o 'Testing complete\. Ran [0-9]* tests:.*' | tail -n 1 || true)
	passed=$(grep -o 'passed: [0-9]*' <<<"$summary" | grep -o '[0-9]*' || echo 0)
	failed=$(grep -o 'failed: [0-9]*' <<<"$summary" | grep -o '[0-9]*' || echo 0)
	crashed=$(grep -o 'crashed: [0-9]*' <<<"$summary" | grep -o '[0-9]*' || echo 0)
	skipped=$(grep -o 'skipped: [0-9]*' <<<"$summary" | grep -o '[0-9]*' || echo 0)
	failed=$((failed + crashed))
	if [ "$krc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		echo "kunit[$name]: kunit.py failed (exit $krc) with no failed case: build or boot error, see $out" >&2
		failed=1
	elif [ -z "$summary" ]; then
		echo "kunit[$name]: no test result in $out" >&2
		failed=1
	fi
	if ! "$REPO/harness/scan-log.sh" "$bdir/test.log" "$UML_KNOWN"; then
		echo "kunit[$name]: kernel report in the log: counted as a failure" >&2
		failed=$((failed + 1))
	fi
	echo "$passed $failed $skipped" >"$BUILD/results/kunit-$name"
	say "kunit[$name]: $passed passed, $failed failed, $skipped skipped in $(($(date +%s) - t0)) s"
	[ "$failed" -eq 0 ] || rc=1
	tp=$((tp + passed)) tf=$((tf + failed)) ts=$((ts + skipped))
done
line="$tp passed, $tf failed"
[ "$ts" -eq 0 ] || line="$line, $ts skipped"
echo "$line"
exit "$rc"
