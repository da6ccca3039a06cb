#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make bench: the KUnit benchmark mrt_bench_scale at full size on UML
# (mmu_range_tracker_kunit.bench=1: 16, 1024 and 65536 granules or 60000
# one-page VMAs, 64k lookups a round, median of 7 rounds), as a table of
# ns per operation with each cost's ratio to the xa_load() + reference
# baseline of the same boot, the targets checked, and with gnuplot a chart
# of the costs against the number of ranges in build/bench/. Not part of
# make test, which runs one short round of the same case (4096 ranges).
set -euo pipefail
. "$(dirname "$0")/common.sh"

out=$TOP_BUILD/bench
bdir=$BUILD/kunit-default
mkdir -p "$out"
# gnuplot draws the chart; the rest of what it needs is make test's.
"$REPO/harness/deps.sh" gnuplot-nox

say "bench: kunit.py run in $bdir with mmu_range_tracker_kunit.bench=1"
# The build of the default KUnit config: nothing to rebuild after make test.
(cd "$SRC" && python3 tools/testing/kunit/kunit.py run --build_dir="$bdir" \
	--kunitconfig="$REPO/mm/tests/.kunitconfig" --jobs="$JOBS" \
	--make_options="CC=$(kcc)" --timeout=1200 \
	--kernel_args=mmu_range_tracker_kunit.bench=1 \
	'mmu_range_tracker.mrt_bench_scale') >"$out/kunit.out" 2>&1 ||
	die "bench: the benchmark failed, see $out/kunit.out"
grep -o 'BENCH .*' "$bdir/test.log" | sed 's/^BENCH //' >"$out/bench.txt"
[ -s "$out/bench.txt" ] || die "bench: no BENCH line in $bdir/test.log"

# policy=P ranges=N key=ns ... -> a table, and the data of the chart.
awk '
function v(k,   i, kv) {
	for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
	return 0
}
function cell(k) { return sprintf("%6d %5.2fx", v(k), v(k) / (v("xa_ref") ? v("xa_ref") : 1)) }
BEGIN {
	printf "%-16s %7s %14s %14s %14s %14s %14s %9s\n", "policy", "ranges",
	       "xa_load+ref", "lookup", "fault hit", "mutex+itree", "notifier/fault", "miss"
}
{
	p = v("policy"); n = v("ranges")
	printf "%-16s %7d %14s %14s %14s %14s %14s %9d\n", p, n, cell("xa_ref"),
	       cell("lookup"), cell("fault_hit"), cell("mutex_itree"),
	       cell("notifier_per_fault"), v("miss")
	print n, v("xa_ref"), v("lookup"), v("fault_hit"), v("mutex_itree"),
	      v("notifier_per_fault") > (OUT "/" p ".dat")
	r = v("lookup") / (v("xa_ref") ? v("xa_ref") : 1)
	if (r > 1.5) missed = missed sprintf("  lookup %s at %d ranges: %.2fx the xa_load() baseline (target 1.5x)\n", p, n, r)
	if (v("lookup") > v("notifier_per_fault"))
		missed = missed sprintf("  lookup %s at %d ranges: slower than a notifier per fault\n", p, n)
	if (!(p in first)) first[p] = v("lookup")
	last[p] = v("lookup"); lastn[p] = n
}
END {
	print "ns per operation, and the ratio to xa_load() + reference in the same boot;"
	print "miss: ns to create a range on fault (the first fault of each range)"
	for (p in first)
		if (last[p] > 2 * first[p])
			missed = missed sprintf("  lookup %s at %d ranges: %.2fx its cost at 16 (target 2x)\n", p, lastn[p], last[p] / first[p])
	if (missed) printf "targets missed:\n%s", missed
	else print "targets met: lookup within 1.5x of xa_load() + reference at every size, within 2x of 16 ranges at the largest, never slower than a notifier per fault"
}' OUT="$out" "$out/bench.txt" | tee "$out/table.txt"

if command -v gnuplot >/dev/null 2>&1; then
	gnuplot <<GNUPLOT
set terminal pngcairo size 900,540 noenhanced
set output "$out/lookup.png"
set title "mmu_range_tracker: cost per operation against live ranges (UML, one boot)"
set xlabel "live ranges"
set ylabel "ns per operation"
set logscale x 2
set key left top
plot "$out/granule_4_pages.dat" using 1:3 with linespoints title "lookup, granule", \
     "$out/vma.dat" using 1:3 with linespoints title "lookup, VMA", \
     "$out/granule_4_pages.dat" using 1:2 with linespoints dashtype 2 title "xa_load + ref (baseline)", \
     "$out/vma.dat" using 1:5 with linespoints title "driver mutex + interval tree", \
     "$out/vma.dat" using 1:6 with linespoints title "notifier per fault (nouveau before)"
GNUPLOT
	echo "bench: chart in $out/lookup.png"
else
	echo "bench: no gnuplot: no chart"
fi
