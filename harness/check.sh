#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The static gates on the project's own files, run in the assembled tree:
# checkpatch --strict on the new files and on every patch, W=1 and sparse
# (C=2) on the objects the project adds or patches, Coccinelle on the new
# sources, and kernel-doc -Wall on new headers and sources. Any warning fails.
set -euo pipefail
. "$(dirname "$0")/common.sh"

# Objects built and checked, in the UML KUnit build of mm/tests/.kunitconfig
# and in the x86_64 build that QEMU boots.
OBJS="mm/mmu_range_tracker.o mm/tests/mmu_range_tracker_kunit.o mm/mmu_notifier.o"
X86_OBJS="mm/mmu_range_tracker.o mm/mmu_notifier.o lib/test_hmm_intervals.o"
# On 7.3 that kernel has rxe (harness/qemu/rdma.config), which the series
# patches for implicit ODP.
[ "$BASE" != 7.3 ] || X86_OBJS="$X86_OBJS $(for f in odp mr verbs; do
	printf ' drivers/infiniband/sw/rxe/rxe_%s.o' "$f"; done)"
# Sources that are entirely ours (checkpatch -f, Coccinelle, kernel-doc).
cd "$REPO"
NEW_SRC=$(for d in $KERNEL_DIRS; do if [ -d "$d" ]; then find "$d" -type f -name '*.[ch]'; fi; done | sort)
NEW_FILES=$(for d in $KERNEL_DIRS; do if [ -d "$d" ]; then find "$d" -type f ! -name '.*'; fi; done | sort)
bdir=$BUILD/kunit-default
fail=0
passed=0
failed=0
log=$BUILD/check.log
: >"$log"

gate() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1) && [ -z "$out" ]; then
		echo "check: $name: clean"
		passed=$((passed + 1))
	else
		echo "check: $name: FAILED" >&2
		printf '%s\n' "$out" | tee -a "$log" | head -n 40 >&2
		fail=1
		failed=$((failed + 1))
	fi
}

checkpatch() {
	cd "$SRC"
	local out rc=0
	# No Signed-off-by yet: the submitter adds theirs when posting (b4).
	# Inside this repository checkpatch would look the ID of a Fixes: tag
	# up in its history, which has no kernel commits: harness/series.sh
	# says why UNKNOWN_COMMIT_ID is off.
	out=$(perl scripts/checkpatch.pl --strict --no-signoff --ignore UNKNOWN_COMMIT_ID \
		--terse --no-summary "$@") || rc=$?
	printf '%s' "$out"
	return "$rc"
}

for f in $NEW_FILES; do
	gate "checkpatch -f $f" checkpatch -f "$f"
done
while read -r p _; do
	gate "checkpatch patches/$BASE/$p" checkpatch "$PATCHES/$p"
done < <(series_lines)

# A configured, built UML tree to compile single objects in.
if [ ! -f "$bdir/vmlinux" ]; then
	say "check: no $bdir yet, building it (harness/kunit.sh would too)"
	(cd "$SRC" && python3 tools/testing/kunit/kunit.py build \
		--build_dir="$bdir" --kunitconfig="$REPO/mm/tests/.kunitconfig" \
		--jobs="$JOBS" --make_options="CC=$(kcc)") >"$BUILD/check-build.log" 2>&1 ||
		die "UML build failed, see $BUILD/check-build.log"
fi

xdir=$BUILD/qemu-x86_64
if [ ! -f "$xdir/vmlinux" ]; then
	"$REPO/harness/qemu.sh" build >"$BUILD/check-build-x86_64.log" 2>&1 ||
		die "x86_64 build failed, see $BUILD/check-build-x86_64.log"
fi

SPARSE=$("$REPO/harness/sparse.sh")

w1_sparse() {
	local dir=$1 arch=$2
	shift 2
	# Pick up Kconfig changes of the patches without prompting.
	make -s -C "$SRC" ARCH="$arch" O="$dir" CC="$(kcc)" olddefconfig >/dev/null
	# Force a rebuild so that W=1 and sparse see every object.
	(cd "$dir" && rm -f "$@")
	# kbuild drops C=2 with a message (no "warning") when it finds no
	# usable sparse: that is a failure too, not a clean result.
	make -s -C "$SRC" ARCH="$arch" O="$dir" CC="$(kcc)" -j"$JOBS" \
		W=1 C=2 CHECK="$SPARSE" "$@" 2>&1 |
		grep -E 'warning|error|is not available or not up to date' || true
	# Rebuilt with normal flags by the next build.
	(cd "$dir" && rm -f "$@")
}
gate "W=1 + sparse (um): $OBJS" w1_sparse "$bdir" um $OBJS
gate "W=1 + sparse (x86_64): $X86_OBJS" w1_sparse "$xdir" x86_64 $X86_OBJS

# Coccinelle: every semantic patch of the base tree, in report mode, the way
# scripts/coccicheck runs one (its Options: line included). The scripts that
# need OCaml scripting are skipped: Debian's spatch has no OCaml compiler.
cocci() {
	local cocci opt srcs=() src
	for src in $NEW_SRC; do
		case $src in *.c) srcs+=("$src") ;; esac
	done
	cd "$SRC"
	for cocci in $(find scripts/coccinelle -name '*.cocci' | sort); do
		grep -q 'script:ocaml\|initialize:ocaml' "$cocci" && continue
		opt=$(grep "Options:" "$cocci" | cut -d: -f2 || true)
		# shellcheck disable=SC2086
		spatch -D report --no-show-diff --very-quiet --cocci-file "$cocci" \
			$opt -I ./arch/um/include -I ./include -I ./arch/x86/include \
			--include ./include/linux/compiler-version.h \
			--include ./include/linux/kconfig.h "${srcs[@]}" 2>&1 |
			grep -F "${srcs[@]/#/-e}" || true
	done
}
if command -v spatch >/dev/null 2>&1; then
	gate "coccicheck (report) on new sources" cocci
else
	echo "check: coccicheck: FAILED: spatch missing (make deps installs coccinelle)" >&2
	fail=1
	failed=$((failed + 1))
fi

kdoc() {
	cd "$SRC"
	perl scripts/kernel-doc -none -Wall $NEW_SRC 2>&1
}
gate "kernel-doc -Wall on new sources" kdoc

# The documentation of mm/, built with Sphinx as 'make htmldocs' does; only
# warnings about the project's files count (a partial build of mm/ warns
# about references into the rest of Documentation/).
docs() {
	make -s -C "$SRC" O="$BUILD/docs" SPHINXDIRS=mm htmldocs 2>&1 |
		grep -i 'warning\|error' | grep 'mmu_range_tracker' || true
}
gate "htmldocs (SPHINXDIRS=mm)" docs

mkdir -p "$BUILD/results"
echo "$passed $failed 0" >"$BUILD/results/check"
if [ "$fail" -eq 0 ]; then
	say "check: all $passed gates clean"
else
	echo "check: $failed of $((passed + failed)) gates FAILED, details in $log" >&2
fi
exit "$fail"
