#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make test: every gate and suite, each timed; all run even when one fails.
# Linux 7.3, the base the series is for, runs everything; the 6.12 backport
# runs its KUnit suite in both configurations and the kselftest.
# Ends with the line 'N passed, N failed[, N skipped]' summed over both.
set -euo pipefail
. "$(dirname "$0")/common.sh"

H=$REPO/harness
t0=$(date +%s)
rc=0

# run_base BASE STAGE...: the stages of one base, after its deps and assembly.
run_base() {
	local base=$1 s
	shift
	export BASE=$base
	rm -rf "$TOP_BUILD/$base/results"
	mkdir -p "$TOP_BUILD/$base/results"
	if ! stage "[$base] deps" "$H/deps.sh" || ! stage "[$base] assemble" "$H/assemble.sh"; then
		echo "0 1 0" >"$TOP_BUILD/$base/results/assemble"
		rc=1
		return 0
	fi
	for s in "$@"; do
		case $s in
		kunit-default) stage "[$base] kunit (default)" "$H/kunit.sh" default || rc=1 ;;
		kunit-debug) stage "[$base] kunit (debug: lockdep, DEBUG_VM, slub_debug)" "$H/kunit.sh" debug || rc=1 ;;
		selftest) stage "[$base] selftest (x86_64 kernel in QEMU)" "$H/qemu.sh" selftest || rc=1 ;;
		rdma) stage "[$base] rdma (rxe, implicit ODP, rdma-core in QEMU)" "$H/qemu.sh" rdma || rc=1 ;;
		nouveau) stage "[$base] nouveau (x86_64 build, W=1, sparse)" "$H/nouveau.sh" || rc=1 ;;
		# check compiles its objects in the default KUnit build and the
		# x86_64 build of the selftest: it runs after those.
		check) stage "[$base] check" "$H/check.sh" || rc=1 ;;
		# After kunit-default: the per-patch builds start from its config.
		series) stage "[$base] series (format-patch, git am, checkpatch, per-patch builds)" \
			"$H/series.sh" check || rc=1 ;;
		spin) stage "[$base] spin (the protocol, model-checked)" "$H/spin.sh" || rc=1 ;;
		esac
	done
}

run_base 7.3 kunit-default selftest rdma nouveau check spin series kunit-debug
run_base 6.12 kunit-default selftest kunit-debug

# Every stage's count is pinned in harness/expected: a dropped case, variant
# or gate fails the run, and so does a skip that is not named there with its
# reason. Tests and lint gates are counted apart.
expected=$REPO/harness/expected
passed=0 failed=0 skipped=0
tests_p=0 tests_f=0 gates_p=0 gates_f=0
for base in 7.3 6.12; do
	for f in "$TOP_BUILD/$base"/results/*; do
		[ -f "$f" ] || continue
		name=$(basename "$f")
		read -r p f_ s <"$f"
		note=""
		line=$(awk -v b="$base" -v n="$name" '$1 == b && $2 == n' "$expected")
		if [ -z "$line" ]; then
			note="not in harness/expected"
			f_=$((f_ + 1))
		else
			read -r _ _ kind want skips _ <<<"$line"
			if [ "$((p + f_ + s))" -ne "$want" ]; then
				note="expected $want, got $((p + f_ + s))"
				f_=$((f_ + 1))
			fi
			if [ "$s" -ne "${skips:-0}" ]; then
				note="${note:+$note; }$s skipped, ${skips:-0} allowed"
				f_=$((f_ + 1))
			fi
			if [ "$kind" = gates ]; then
				gates_p=$((gates_p + p)) gates_f=$((gates_f + f_))
			else
				tests_p=$((tests_p + p)) tests_f=$((tests_f + f_))
			fi
		fi
		printf '  %-5s %-16s %s passed, %s failed, %s skipped%s\n' "$base" "$name" \
			"$p" "$f_" "$s" "${note:+  <- $note}"
		passed=$((passed + p)) failed=$((failed + f_)) skipped=$((skipped + s))
	done
done
# Stages that should have reported and did not.
while read -r base name _; do
	[ -f "$TOP_BUILD/$base/results/$name" ] || {
		printf '  %-5s %-16s no result  <- stage missing\n' "$base" "$name"
		failed=$((failed + 1))
	}
done < <(grep -v '^#' "$expected" | grep .)
say "test: done in $(($(date +%s) - t0)) s"
echo "test cases: $tests_p passed, $tests_f failed; lint and build gates: $gates_p passed, $gates_f failed"
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
line="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
