#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Model-check models/mmu_range_tracker.pml with spin (see models/README.md).
# Six checks, each one gate of the result line:
#   fixed-safety  the protocol of mm/mmu_range_tracker.c, the device doing
#                 two operations: no assertion fails (properties a, b, c,
#                 fini's end state), no invalid end state (deadlock);
#   fixed-erase   the same with one device operation and one failed
#                 mrt_erase() (-ENOMEM, the range kept and retried);
#   fixed-cycles  one device operation, pan -l (built -DNP): no cycle at
#                 all, so no livelock under any scheduler (property d);
#   broken        the old order of mrt_work_batch() (-DREMOVE_THEN_ZAP:
#                 remove the notifier, then zap) must fail property (c),
#                 shortest trail first (BFS);
#   broken-a      the same with property (c) left out (-DNO_PROP_C): the
#                 device must be found mapping a freed page, property (a);
#   broken-erase  the old erase (-DERASE_IGNORED: a failed mrt_erase()
#                 taken for done, as 6.12's mas_erase() did) must fail
#                 property (b), a freed range left in the tree.
# A fixed check passes only when the search was complete (no memory or
# depth bound hit, no timeout) and found no error, and its scenario reached
# the statements that make it worth running (a survivor, a stale read, an
# erase retry: see unreached below). A broken check passes only with an
# error of the property it breaks, and its trail.
#
# Bounded. The scenarios are sized for about two minutes on two free cores
# (121 s measured; about three and a half minutes one pan at a time) and
# 2 GB per pan at most. fixed-safety is the large one: 24 M states, 1.6 GB
# with -DCOLLAPSE and a 2^25 hash table. Two device operations *and* an
# erase failure would be about twice that, so the erase failure is checked
# with one operation (fixed-erase) and left out of the cycle check (the
# model's retry loop is bounded by ERASE_FAILS anyway). Each pan stops at
# SPIN_MEMLIM MB and after SPIN_TIMEOUT seconds, which fails its check.
# With two CPUs (JOBS, or SPIN_JOBS) fixed-safety runs beside the others.
#
# Outputs in build/spin/<check>/ (pan.out, and the .trail and its replay
# of the broken ones), the result line 'passed failed 0' in
# build/$BASE/results/spin. Needs spin and gcc; installs nothing.
set -euo pipefail
. "$(dirname "$0")/common.sh"

MODEL=$REPO/models/mmu_range_tracker.pml
OUT=$TOP_BUILD/spin
MEMLIM=${SPIN_MEMLIM:-2048}
TIMEOUT=${SPIN_TIMEOUT:-600}
LANES=${SPIN_JOBS:-$JOBS}

command -v spin >/dev/null 2>&1 ||
	die "spin: spin is not installed (Debian package spin; harness/deps.sh)"
command -v gcc >/dev/null 2>&1 ||
	die "spin: gcc is not installed (Debian package gcc)"
[ -f "$MODEL" ] || die "spin: no $MODEL"

# Every check: name, spin options (the model's scenario), gcc options
# (pan's search), pan's run options. The fixed checks turn spin's statement
# merging off (-o3): it costs 3 % more states, and without it pan leaves
# merged statements out of its "unreached" report, which unreached() reads.
declare -A SPIN_D CC_D PAN_F
SPIN_D[fixed-safety]="-o3 -DDEV_OPS=2 -DERASE_FAILS=0"
CC_D[fixed-safety]="-O2 -DSAFETY -DCOLLAPSE"
PAN_F[fixed-safety]="-m100000 -w25"
SPIN_D[fixed-erase]="-o3 -DDEV_OPS=1 -DERASE_FAILS=1"
CC_D[fixed-erase]="-O2 -DSAFETY -DCOLLAPSE"
PAN_F[fixed-erase]="-m100000 -w24"
SPIN_D[fixed-cycles]="-o3 -DDEV_OPS=1 -DERASE_FAILS=0"
CC_D[fixed-cycles]="-O2 -DNP -DNOFAIR -DCOLLAPSE"
PAN_F[fixed-cycles]="-l -m100000 -w24"
# Small searches: -O0 compiles in 2 s instead of 14 and runs them in seconds.
SPIN_D[broken]="-DREMOVE_THEN_ZAP"
CC_D[broken]="-O0 -DSAFETY -DBFS"
PAN_F[broken]="-m100000 -w22"
SPIN_D[broken-a]="-DREMOVE_THEN_ZAP -DNO_PROP_C"
CC_D[broken-a]="-O0 -DSAFETY -DBFS"
PAN_F[broken-a]="-m100000 -w22"
SPIN_D[broken-erase]="-DDEV_OPS=1 -DERASE_FAILS=1 -DERASE_IGNORED"
CC_D[broken-erase]="-O0 -DSAFETY -DBFS"
PAN_F[broken-erase]="-m100000 -w22"

# check NAME: build pan for NAME in $OUT/NAME and run it; output in pan.out.
check() {
	local name=$1 dir=$OUT/$1 rc=0

	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$MODEL" "$dir/"
	# shellcheck disable=SC2086 # the option lists split on purpose
	if ! (cd "$dir" && spin ${SPIN_D[$name]} -a mmu_range_tracker.pml >spin.log 2>&1); then
		echo "pan: spin -a failed, see spin.log" >"$dir/pan.out"
		return 0
	fi
	# shellcheck disable=SC2086
	if ! (cd "$dir" && gcc ${CC_D[$name]} -DMEMLIM="$MEMLIM" -o pan pan.c >gcc.log 2>&1); then
		echo "pan: gcc failed, see gcc.log" >"$dir/pan.out"
		return 0
	fi
	# shellcheck disable=SC2086
	(cd "$dir" && timeout "$TIMEOUT" ./pan ${PAN_F[$name]} >pan.out 2>&1) || rc=$?
	[ "$rc" -ne 124 ] || echo "pan: killed after $TIMEOUT s (SPIN_TIMEOUT)" >>"$dir/pan.out"
}

# stats NAME: one line of figures from pan.out.
stats() {
	grep -q 'states, stored' "$OUT/$1/pan.out" || { echo "no statistics"; return 0; }
	awk '/states, stored/ { s = $1; if ($4 != "") v = $4 " " $5 }
	     /transitions \(/ { t = $1 }
	     /total actual memory usage/ { m = $1 }
	     /elapsed time/ { e = $4 }
	     END { printf "%s states%s, %s transitions, %.0f MB, %s s",
		   s, v != "" ? " " v : "", t, m, e }' "$OUT/$1/pan.out"
}

# errors NAME: pan's error count, or "incomplete" if the search was cut
# (memory, depth, timeout) or pan did not finish.
errors() {
	local f=$OUT/$1/pan.out

	if grep -qE 'max search depth too small|reached -DMEMLIM|out of memory|^pan: (killed|spin -a|gcc)' "$f" ||
	   ! grep -q 'errors: [0-9]' "$f"; then
		echo incomplete
	else
		sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$f" | tail -n 1
	fi
}

# unreached NAME TEXT...: the TEXTs (printf texts of the model, each on one
# line of it) whose statement pan reports unreached. A fixed check whose
# scenario never gets there proves nothing about it.
unreached() {
	local name=$1 text line
	shift
	for text in "$@"; do
		line=$(grep -nF "$text" "$OUT/$name/mmu_range_tracker.pml" | head -n 1 | cut -d: -f1)
		if [ -z "$line" ] ||
		   grep -q "mmu_range_tracker.pml:$line, state" "$OUT/$name/pan.out"; then
			echo "'$text'"
		fi
	done
}

# replay NAME: the trail of NAME replayed, as the model's event lines
# (printf "MRT ...") and the source line of the failed assert, which is
# also left in $OUT/NAME/violated.
replay() {
	local dir=$OUT/$1 line

	# shellcheck disable=SC2086
	(cd "$dir" && spin -T -t ${SPIN_D[$1]} mmu_range_tracker.pml >replay.out 2>&1) || true
	sed -n 's/^MRT /      /p' "$dir/replay.out"
	line=$(sed -n 's/^spin: mmu_range_tracker.pml:\([0-9]*\), Error: .*/\1/p' \
		"$dir/replay.out" | head -n 1)
	: >"$dir/violated"
	[ -z "$line" ] || sed -n "${line}p" "$dir/mmu_range_tracker.pml" |
		sed 's/^[[:space:]]*//' >"$dir/violated"
	echo "      violated: $(cat "$dir/violated")"
}

passed=0 failed=0
pass() { echo "spin: $1: ok"; passed=$((passed + 1)); }
fail() { echo "spin: $1: FAILED" >&2; failed=$((failed + 1)); }

# fixed NAME WHAT TEXT...: the verdict on a check of the fixed model.
fixed() {
	local name=$1 what=$2 e missing
	shift 2
	e=$(errors "$name")
	if [ "$e" = 0 ] && grep -q 'Search not completed' "$OUT/$name/pan.out"; then
		e=incomplete
	fi
	echo "spin: $name ($what; ${SPIN_D[$name]}): $(stats "$name"), errors: $e"
	if [ "$e" != 0 ]; then
		grep -E '^pan|error' "$OUT/$name/pan.out" | head -n 5 >&2 || true
		if [ -f "$OUT/$name/mmu_range_tracker.pml.trail" ]; then
			echo "    the trail, $OUT/$name/mmu_range_tracker.pml.trail:" >&2
			replay "$name" >&2
		fi
		fail "$name (see $OUT/$name/pan.out)"
		return 0
	fi
	missing=$(unreached "$name" "$@")
	if [ -n "$missing" ]; then
		echo "spin: $name: the scenario never reaches $missing" >&2
		fail "$name: vacuous"
		return 0
	fi
	pass "$name"
}

# broken NAME PROPERTY: the verdict on a check of the old code, which must
# break PROPERTY.
broken() {
	local name=$1 prop=$2 e
	e=$(errors "$name")
	echo "spin: $name (${SPIN_D[$name]}): $(stats "$name"), errors: $e"
	if [ "$e" = incomplete ] || [ "${e:-0}" -eq 0 ] ||
	   [ ! -f "$OUT/$name/mmu_range_tracker.pml.trail" ]; then
		fail "$name: no counterexample for the old code"
		return 0
	fi
	echo "    counterexample, $OUT/$name/mmu_range_tracker.pml.trail:"
	replay "$name"
	if grep -qF "($prop)" "$OUT/$name/violated"; then
		pass "$name: the old code breaks property ($prop)"
	else
		fail "$name: the trail breaks another property than ($prop)"
	fi
}

t0=$(date +%s)
say "spin: $(spin -V | head -n 1), model $MODEL, $LANES lane(s), ${MEMLIM} MB per pan"
rm -rf "$OUT"
mkdir -p "$OUT"
if [ "$LANES" -gt 1 ]; then
	# The big one on one core, the rest on the other (about 100 s each);
	# the -O2 compiles of one lane overlap the search of the other.
	{ check fixed-safety; check broken-a; } &
	lane=$!
	check broken
	check broken-erase
	check fixed-cycles
	check fixed-erase
	wait "$lane"
else
	for name in broken broken-a broken-erase fixed-erase fixed-cycles fixed-safety; do
		check "$name"
	done
fi

fixed fixed-safety "2 device operations" \
	"MRT work: survivor range" "MRT device: read through range" \
	"MRT device: remove_deferred" "MRT fini: done"
fixed fixed-erase "1 device operation, 1 failed erase" \
	"MRT work: erase retry" "MRT fini: done"
fixed fixed-cycles "1 device operation, no cycle" \
	"MRT work: survivor range" "MRT fini: done"
broken broken c
broken broken-a a
broken broken-erase b

mkdir -p "$BUILD/results"
echo "$passed $failed 0" >"$BUILD/results/spin"
say "spin: done in $(($(date +%s) - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
