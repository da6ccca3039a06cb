#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make bench: the KUnit benchmark cases (mrt_bench_*) at full size
# (mmu_range_tracker_kunit.bench=1), on UML with the base tree's kunit.py,
# and at boot of an x86_64 kernel without debug options in QEMU with two
# vCPUs (harness/qemu.sh bench). Per run, tables of what
# was measured in that boot: ns per operation with each cost's ratio to the
# xa_load() + reference baseline and the slab bytes of a live range
# (mrt_bench_scale), lookups on two CPUs against one (mrt_bench_smp), and
# what each policy costs when the device touched 1 of 100 mappings
# (mrt_bench_workload); in the same x86_64 boot, the CPU side: munmap,
# mprotect and MADV_DONTNEED from user space (harness/qemu/
# hmm_intervals_bench.c) with no device, with a tracker elsewhere, with a
# whole-mm notifier, and over tracked memory. The targets are checked, and
# gnuplot draws the charts into build/bench/. Not part of make test, which
# runs one short round of the KUnit cases. On 7.3, rdma: RDMA WRITE and
# READ of 4 KiB and 1 MiB through a pinned, an explicit ODP and an implicit
# ODP MR of rxe (rxe_implicit_odp -b, harness/qemu.sh rdma-bench, the same
# kernel without debug options), first touch and steady state, and the
# ratio of implicit to explicit ODP (target 1.1x).
#
# Usage: harness/bench.sh [uml] [x86] [rdma]   (default: all; rdma on 7.3)
set -euo pipefail
. "$(dirname "$0")/common.sh"

out=$TOP_BUILD/bench
mkdir -p "$out"
# gnuplot draws the charts; the rest of what it needs is make test's.
"$REPO/harness/deps.sh" gnuplot-nox

# uml: the benchmark cases with kunit.py in the default KUnit build (nothing
# to rebuild after make test), their lines kept.
uml() {
	local bdir=$BUILD/kunit-default
	say "bench[uml]: kunit.py run in $bdir with mmu_range_tracker_kunit.bench=1"
	(cd "$SRC" && python3 tools/testing/kunit/kunit.py run --build_dir="$bdir" \
		--kunitconfig="$REPO/mm/tests/.kunitconfig" --jobs="$JOBS" \
		--make_options="CC=$(kcc)" --timeout=2400 \
		--kernel_args=mmu_range_tracker_kunit.bench=1 \
		'mmu_range_tracker.mrt_bench_*') >"$out/uml.out" 2>&1 ||
		die "bench[uml]: the benchmark failed, see $out/uml.out"
	grep -oE '(BENCH|SMP|WORKLOAD) policy=.*|BUSY cpus=.*' "$bdir/test.log" >"$out/uml.txt" || true
	grep -q '^BENCH ' "$out/uml.txt" || die "bench[uml]: no BENCH line in $bdir/test.log"
}

# x86: kunit.py would start QEMU with KVM first, which this kind of machine
# offers but cannot run a kernel with; harness/qemu.sh bench boots with
# software emulation, runs the cases at boot, then the CPU side.
x86() {
	local log=$BUILD/qemu-bench.log
	say "bench[x86]: harness/qemu.sh bench (KUnit cases at boot, then the CPU side)"
	"$REPO/harness/qemu.sh" bench >"$out/x86.out" 2>&1 ||
		die "bench[x86]: failed, see $out/x86.out"
	grep -oE '(^|[^A-Z])((BENCH|SMP|WORKLOAD) policy=|BUSY cpus=).*' "$log" |
		sed 's/^[^A-Z]//' >"$out/x86.txt" || true
	grep -q '^BENCH ' "$out/x86.txt" || die "bench[x86]: no BENCH line in $log"
	grep -oE 'CPUBENCH .*' "$log" >"$out/cpu.txt" || true
}

# rdma: rxe_implicit_odp -b in the bench kernel, with rxe.
rdma() {
	local log=$BUILD/qemu-rdma-bench.log
	say "bench[rdma]: harness/qemu.sh rdma-bench (rxe, pinned / explicit / implicit ODP)"
	"$REPO/harness/qemu.sh" rdma-bench >"$out/rdma.out" 2>&1 ||
		die "bench[rdma]: failed, see $out/rdma.out"
	# rxe_implicit_odp pads its columns: "size=   4096" is "size=4096".
	grep -oE 'RXEBENCH .*' "$log" | sed 's/= */=/g' >"$out/rdma.txt" || true
	grep -q '^RXEBENCH ratio' "$out/rdma.txt" || die "bench[rdma]: no RXEBENCH ratio line in $log"
}

rdma_table() {
	echo "== rxe in QEMU (TCG), 2 vCPUs, $BASE: RDMA through a loopback RC QP"
	awk '
function v(k,   i, kv) {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
	return 0
}
BEGIN { printf "%-9s %-6s %8s %10s %10s %10s %9s\n", "MR", "op", "bytes", "reg us", "first us", "steady us", "MB/s" }
$2 != "ratio" {
	printf "%-9s %-6s %8d %10.1f %10.1f %10.1f %9.1f\n", v("mr"), v("op"), v("size"),
	       v("reg_us"), v("first_us"), v("steady_us"), v("MBps")
}
$2 == "ratio" {
	r[++n] = sprintf("%-6s %8d %18.2fx %16.2fx   %.2f-%.2fx", v("op"), v("size"), v("implicit/explicit"), v("implicit/pinned"), v("min"), v("max"))
	if (v("implicit/explicit") > 1.1)
		missed = missed sprintf("  %s %d: implicit %.2fx explicit ODP (target 1.1x)\n", v("op"), v("size"), v("implicit/explicit"))
}
END {
	print "first: the first transfer on fresh memory (faults it in; after the"
	print "registration for pinned and explicit MRs), a median over the rounds;"
	print "steady: the median latency of the rest, MB/s from their mean. The kinds"
	print "of MR take turns op by op; per round: the range of the ratio over rounds."
	printf "\n%-6s %8s %19s %17s %s\n", "op", "bytes", "implicit/explicit", "implicit/pinned", "   per round"
	for (i = 1; i <= n; i++) print r[i]
	if (missed) printf "targets missed:\n%s", missed
	else print "targets met"
	print ""
}' "$out/rdma.txt"
}

# table NAME TITLE: the tables and target checks of one run.
table() {
	awk -v OUT="$out" -v NAME="$1" -v TITLE="$2" '
function v(k,   i, kv) {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
	return 0
}
function cell(k) { return sprintf("%6d %5.2fx", v(k), v(k) / (v("xa_ref") ? v("xa_ref") : 1)) }
BEGIN {
	print "== " TITLE
	printf "%-16s %7s %14s %14s %14s %14s %14s %6s %6s\n", "policy", "ranges",
	       "xa_load+ref", "lookup", "fault hit", "mutex+itree", "notifier/fault", "miss", "bytes"
}
$1 == "BENCH" {
	p = v("policy"); n = v("ranges")
	# Slab counters drift by some hundred kilobytes: bytes only over many.
	printf "%-16s %7d %14s %14s %14s %14s %14s %6d %6s\n", p, n, cell("xa_ref"),
	       cell("lookup"), cell("fault_hit"), cell("mutex_itree"),
	       cell("notifier_per_fault"), v("miss"), (n >= 4096 ? v("bytes") : "-")
	print n, v("xa_ref"), v("lookup"), v("fault_hit"), v("mutex_itree"),
	      v("notifier_per_fault") > (OUT "/" NAME "-" p ".dat")
	r = v("lookup") / (v("xa_ref") ? v("xa_ref") : 1)
	if (r > 1.5) missed = missed sprintf("  lookup %s at %d ranges: %.2fx the xa_load() baseline (target 1.5x)\n", p, n, r)
	if (v("lookup") > v("notifier_per_fault"))
		missed = missed sprintf("  lookup %s at %d ranges: slower than a notifier per fault\n", p, n)
	if (!(p in first)) first[p] = v("lookup")
	last[p] = v("lookup"); lastn[p] = n
}
$1 == "SMP" { smp[++nsmp] = $0 }
$1 == "BUSY" { busy = $0 }
$1 == "WORKLOAD" { wl[++nwl] = $0 }
END {
	print "ns per operation, the ratio to xa_load() + reference in the same boot;"
	print "miss: ns to create a range on fault; bytes: slab memory per live range"
	for (p in first)
		if (last[p] > 2 * first[p])
			missed = missed sprintf("  lookup %s at %d ranges: %.2fx its cost at 16 (target 2x)\n", p, lastn[p], last[p] / first[p])
	print ""
	printf "%-16s %7s %5s %12s %20s %20s\n", "policy", "ranges", "cpus", "1 CPU ns/op",
	       "2 CPUs, other ranges", "2 CPUs, same range"
	for (i = 1; i <= nsmp; i++) {
		$0 = smp[i]
		if (v("cpus") < 2) {
			printf "%-16s %7d %5d %12d %20s %20s\n", v("policy"), v("ranges"), 1, v("one"), "-", "-"
			continue
		}
		printf "%-16s %7d %5d %12d %19.2fx %19.2fx\n", v("policy"), v("ranges"), 2, v("one"),
		       v("diff_ratio") / 100, v("same_ratio") / 100
		if (v("diff_ratio") < 160)
			missed = missed sprintf("  two CPUs on other ranges, %s: %.2fx one CPU (target 1.6x)\n", v("policy"), v("diff_ratio") / 100)
	}
	print "aggregate lookups per second on two CPUs at once, against one CPU"
	if (busy != "") {
		$0 = busy
		printf "\nnotifier per fault (nouveau before), one page: idle %d ns/op", v("notifier_idle")
		if (v("cpus") == 2)
			printf "; while another CPU unmaps and maps a page of the same VMA %d ns/op (%.2fx, %d unmaps meanwhile)",
			       v("notifier_busy"), v("notifier_busy") / (v("notifier_idle") ? v("notifier_idle") : 1), v("unmaps")
		printf "\n"
	}
	print ""
	printf "%-16s %9s %9s %9s %9s %9s %9s %12s\n", "policy", "callbacks", "retried",
	       "created", "split", "shrunk", "removed", "work ns/run"
	for (i = 1; i <= nwl; i++) {
		$0 = wl[i]
		printf "%-16s %9d %9d %9d %9d %9d %9d %12d\n", v("policy"), v("callbacks"),
		       v("retried"), v("created"), v("split"), v("shrunk"), v("removed"),
		       v("work_ns")
	}
	print "the device mapped 1 of 100 adjacent 16-page mappings, the CPU unmapped all"
	print "100 in order, with a device fault in flight on the touched one while it lived;"
	print "work ns/run: the deferred rework, per unmap that queued it"
	if (missed) printf "targets missed:\n%s", missed
	else print "targets met"
	print ""
}' "$out/$1.txt"
}

# cpu_table: the CPU side, each setup against no device.
cpu_table() {
	awk -v OUT="$out" '
function v(k,   i, kv) {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
	return 0
}
function median(s, o,   n, i, j, a, x) {
	n = cnt[s, o]
	for (i = 1; i <= n; i++) a[i] = val[s, o, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
	return n ? a[int((n + 1) / 2)] : 0
}
# One line per setup, operation and repetition: the median of the repetitions.
$1 == "CPUBENCH" && v("setup") {
	s = v("setup"); o = v("op")
	if (!(s in seen)) { seen[s] = 1; order[++ns] = s }
	val[s, o, ++cnt[s, o]] = v("ns")
}
END {
	split("munmap mprotect dontneed", ops, " ")
	for (j = 1; j <= ns; j++)
		for (i = 1; i <= 3; i++) ns_[order[j], ops[i]] = median(order[j], ops[i])
	split("munmap mprotect dontneed", ops, " ")
	printf "%-24s", "setup"
	for (i = 1; i <= 3; i++) printf " %16s", ops[i]
	printf "\n"
	for (j = 1; j <= ns; j++) {
		s = order[j]
		printf "%-24s", s
		for (i = 1; i <= 3; i++) {
			o = ops[i]; base = ns_["none", o] ? ns_["none", o] : 1
			printf " %7d %7.2fx", ns_[s, o], ns_[s, o] / base
			print s, ns_[s, o] / base > (OUT "/cpu-" o ".dat")
			if (s == "elsewhere" && ns_[s, o] > 1.05 * base)
				missed = missed sprintf("  %s with a tracker elsewhere: %.2fx no device (target 1.05x)\n", o, ns_[s, o] / base)
		}
		printf "\n"
	}
	print "ns per operation from user space (16 written pages), ratio to no device;"
	print "same boot, median of 3 repetitions of the medians of 5 rounds (400"
	print "operations, 50 over tracked memory), each setup in a fresh process"
	if (missed) printf "targets missed:\n%s", missed
	else print "targets met"
	print ""
}' "$out/cpu.txt"
}

# chart NAME TITLE: lookup costs against live ranges, both policies.
chart() {
	command -v gnuplot >/dev/null 2>&1 || { echo "bench: no gnuplot: no chart"; return; }
	gnuplot <<GNUPLOT
set terminal pngcairo size 900,540 noenhanced
set output "$out/lookup-$1.png"
set title "mmu_range_tracker: cost per operation against live ranges ($2, one boot)"
set xlabel "live ranges"
set ylabel "ns per operation"
set logscale x 2
set key left top
plot "$out/$1-granule_4_pages.dat" using 1:3 with linespoints title "lookup, granule", \
     "$out/$1-vma.dat" using 1:3 with linespoints title "lookup, VMA", \
     "$out/$1-granule_4_pages.dat" using 1:2 with linespoints dashtype 2 title "xa_load + ref (baseline)", \
     "$out/$1-vma.dat" using 1:5 with linespoints title "driver mutex + interval tree", \
     "$out/$1-vma.dat" using 1:6 with linespoints title "notifier per fault (nouveau before)"
GNUPLOT
	echo "bench: chart in $out/lookup-$1.png"
}

# cpu_chart: the CPU side, ratio to no device per setup and operation.
cpu_chart() {
	command -v gnuplot >/dev/null 2>&1 || return 0
	gnuplot <<GNUPLOT
set terminal pngcairo size 900,540 noenhanced
set output "$out/cpu-side.png"
set title "mmu_range_tracker: CPU-side cost, ratio to a process with no device (x86_64 QEMU)"
set ylabel "time per operation / no device"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set xtics rotate by -30
set key left top
plot "$out/cpu-munmap.dat" using 2:xtic(1) title "munmap", \
     "$out/cpu-mprotect.dat" using 2 title "mprotect", \
     "$out/cpu-dontneed.dat" using 2 title "MADV_DONTNEED"
GNUPLOT
	echo "bench: chart in $out/cpu-side.png"
}

runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(uml x86)
[ "$#" -gt 0 ] || [ "$BASE" != 7.3 ] || runs+=(rdma)
: >"$out/table.txt"
for r in "${runs[@]}"; do
	case $r in
	uml)
		uml
		title="UML, $(uname -m) host, one CPU"
		;;
	x86)
		x86
		title="x86_64 in QEMU (TCG), 2 vCPUs"
		;;
	rdma)
		rdma
		rdma_table | tee -a "$out/table.txt"
		continue
		;;
	*) die "bench: unknown run $r (uml, x86, rdma)" ;;
	esac
	table "$r" "$title, $BASE" | tee -a "$out/table.txt"
	chart "$r" "$title"
	if [ "$r" = x86 ]; then
		{ echo "== the CPU side, $title, $BASE"; cpu_table; } | tee -a "$out/table.txt"
		cpu_chart
	fi
done
