#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the small x86_64 kernel (harness/qemu/x86_64.config on allnoconfig,
# with harness/qemu/debug.config: KASAN, lockdep, DEBUG_VM, slab poisoning,
# the KUnit suites built in) with test_hmm_intervals as a module, the static
# selftest, demo and CPU-side benchmark and /init, pack them into an
# initramfs with the tree's own usr/gen_init_cpio, boot QEMU (software
# emulation, 2 vCPUs), and collect the result: the KUnit suites run at boot
# (not for the demo and the benchmark), then /init runs the selftest. The
# run fails on a failed or missing test, a module that does not load or
# unload, a timeout, or any kernel report in the log. The benchmark (bench)
# runs on a second kernel, without the debug options (harness/qemu/
# bench.config instead), in its own folder: the KUnit benchmark cases at
# boot at full size, then the CPU-side benchmark from /init. On the 7.3 base
# the kernel also has soft-RoCE (harness/qemu/rdma.config: rdma_rxe as a
# module, user verbs, ODP), and rdma boots it with Debian's rdma-core
# userspace and busybox to run harness/qemu/rdma-test.sh.
#
# Usage: harness/qemu.sh build|selftest|demo|bench|rdma   (build: the kernel only)
set -euo pipefail
. "$(dirname "$0")/common.sh"

mode=${1:-selftest}
bdir=$BUILD/qemu-x86_64
frags=("$REPO/harness/qemu/x86_64.config" "$REPO/harness/qemu/debug.config")
# KASAN on the base the series is for; the 6.12 backport builds without it
# (half the build time, and the backport runs the same code).
[ ! -f "$REPO/harness/qemu/$BASE.config" ] || frags+=("$REPO/harness/qemu/$BASE.config")
# rxe has ODP from 6.15 on: RDMA only in the 7.3 kernel.
[ "$BASE" != 7.3 ] || frags+=("$REPO/harness/qemu/rdma.config")
rdma=false
case $mode in rdma | rdma-bench) rdma=true ;; esac
! $rdma || [ "$BASE" = 7.3 ] || die "qemu: $mode needs BASE=7.3 (6.12's rxe has no ODP)"
out=$BUILD/qemu-$mode.log
timeout_s=${QEMU_TIMEOUT:-900}
if [ "$mode" = bench ] || [ "$mode" = rdma-bench ]; then
	bdir=$BUILD/qemu-x86_64-bench
	frags=("$REPO/harness/qemu/x86_64.config" "$REPO/harness/qemu/bench.config")
	[ "$BASE" != 7.3 ] || frags+=("$REPO/harness/qemu/rdma.config")
	timeout_s=${QEMU_TIMEOUT:-3600}
fi
mkdir -p "$bdir" "$BUILD/results"

kmake() {
	make -s -C "$SRC" O="$bdir" ARCH=x86_64 CC="$(kcc)" -j"$JOBS" "$@"
}

x86_64_config qemu "$bdir" "${frags[@]}"

say "qemu: building bzImage and modules in $bdir"
t0=$(date +%s)
progress_start "$bdir" "qemu kernel build"
if ! kmake bzImage modules >"$BUILD/qemu-build.log" 2>&1; then
	progress_stop
	tail -n 30 "$BUILD/qemu-build.log" >&2
	die "qemu: kernel build failed, see $BUILD/qemu-build.log"
fi
progress_stop
say "qemu: kernel built in $(($(date +%s) - t0)) s"
[ "$mode" != build ] || exit 0

# User space: static, built against the assembled tree's uapi header.
ramfs=$BUILD/qemu-initramfs
mkdir -p "$ramfs"
cflags=(-static -O2 -Wall -Werror -pthread -I "$SRC")
gcc "${cflags[@]}" -o "$ramfs/init" "$REPO/harness/qemu/init.c"
gcc "${cflags[@]}" -o "$ramfs/hmm_intervals_tests" \
	"$SRC/tools/testing/selftests/mm/hmm_intervals_tests.c"
gcc "${cflags[@]}" -o "$ramfs/hmm_intervals_demo" \
	"$REPO/harness/qemu/hmm_intervals_demo.c"
gcc "${cflags[@]}" -o "$ramfs/hmm_intervals_bench" \
	"$REPO/harness/qemu/hmm_intervals_bench.c"
cp "$bdir/lib/test_hmm_intervals.ko" "$ramfs/"
cat >"$ramfs/list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /tmp 1777 0 0
file /init $ramfs/init 0755 0 0
file /hmm_intervals_tests $ramfs/hmm_intervals_tests 0755 0 0
file /hmm_intervals_demo $ramfs/hmm_intervals_demo 0755 0 0
file /hmm_intervals_bench $ramfs/hmm_intervals_bench 0755 0 0
file /test_hmm_intervals.ko $ramfs/test_hmm_intervals.ko 0644 0 0
LIST
# rdma: Debian's rdma-core tools and iproute2 with the shared libraries
# they load (the rxe provider's too), busybox for the script, rdma_rxe and
# the modules it needs.
if $rdma; then
	bins=(/usr/bin/ibv_devinfo /usr/bin/ibv_rc_pingpong /usr/sbin/ip /usr/bin/rdma)
	prov=/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
	for f in "${bins[@]}" "$prov" /etc/libibverbs.d/rxe.driver /bin/busybox; do
		[ -e "$f" ] || die "qemu: $f missing (harness/deps.sh installs it)"
	done
	gcc -O2 -Wall -Werror -pthread -o "$ramfs/rxe_implicit_odp" \
		"$SRC/tools/testing/selftests/rdma/rxe_implicit_odp.c" -libverbs
	bins+=("$ramfs/rxe_implicit_odp")
	{
		for d in /bin /usr /usr/bin /usr/sbin /usr/lib /usr/lib/x86_64-linux-gnu \
			 /usr/lib/x86_64-linux-gnu/libibverbs /lib /lib/x86_64-linux-gnu \
			 /lib64 /etc /etc/libibverbs.d /modules; do
			echo "dir $d 0755 0 0"
		done
		echo "file /bin/busybox /bin/busybox 0755 0 0"
		for a in sh sed grep head sleep cat insmod rmmod timeout; do
			echo "slink /bin/$a /bin/busybox 0777 0 0"
		done
		for f in "${bins[@]}" "$prov" /etc/libibverbs.d/rxe.driver; do
			case $f in
			"$ramfs"/*) echo "file /$(basename "$f") $f 0755 0 0" ;;
			*) echo "file $f $f 0755 0 0" ;;
			esac
		done
		ldd "${bins[@]}" "$prov" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' |
			sort -u | while read -r lib; do
			echo "file $lib $lib 0755 0 0"
		done
		for m in net/ipv4/ip_tunnel net/ipv4/udp_tunnel drivers/infiniband/sw/rxe/rdma_rxe; do
			echo "file /modules/$(basename "$m").ko $bdir/$m.ko 0644 0 0"
		done
		echo "file /rdma-test.sh $REPO/harness/qemu/rdma-test.sh 0755 0 0"
	} >>"$ramfs/list"
fi
"$bdir/usr/gen_init_cpio" "$ramfs/list" >"$ramfs.cpio"

bios=()
[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
append="console=ttyS0 panic=-1 hmi.run=$mode"
# The demo is for people: no KUnit run before it. The benchmark runs only
# the KUnit benchmark cases, at full size (kunit.autorun is 7.3's switch;
# 6.12 always runs built-in suites).
case $mode in
demo) append="$append kunit.enable=0" ;;
# rdma: the selftest boot of the same kernel ran the KUnit suites.
rdma | rdma-bench) append="$append kunit.enable=0" ;;
bench) append="$append kunit.autorun=1 kunit.filter_glob=mmu_range_tracker.mrt_bench_* mmu_range_tracker_kunit.bench=1" ;;
esac
say "qemu: booting ($mode), log in $out"
t0=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 "${bios[@]}" -nographic -no-reboot \
	-m 2048 -smp 2 -kernel "$bdir/arch/x86/boot/bzImage" \
	-initrd "$ramfs.cpio" -append "$append" </dev/null >"$out" 2>&1
qrc=$?
set -e
tr -d '\r' <"$out" >"$out.tmp" && mv "$out.tmp" "$out"
say "qemu: finished in $(($(date +%s) - t0)) s (exit $qrc)"

fail=0
problem() { echo "qemu[$mode]: $*" >&2; fail=1; }
[ "$qrc" -ne 124 ] || problem "timed out after $timeout_s s"
if ! $rdma; then
	grep -q '^HMI-INIT: insmod ok' "$out" || problem "module did not load"
	grep -q '^HMI-INIT: rmmod ok' "$out" ||
		problem "rmmod right after the last close failed: $(grep '^HMI-INIT: rmmod' "$out" || echo 'not reached')"
fi
grep -q "^HMI-INIT: ${mode%-bench} exit 0" "$out" || problem "$mode did not exit 0"
"$REPO/harness/scan-log.sh" "$out" || problem "kernel report in the log"

if [ "$mode" = rdma-bench ]; then
	grep -qx 'RDMA: bench exit 0' "$out" || problem "rxe_implicit_odp -b did not exit 0"
	grep -oE 'RXEBENCH .*' "$out" || true
elif [ "$mode" = rdma ]; then
	# One test per line that must be there: rdma_rxe loads, reports implicit
	# ODP, each ibv_rc_pingpong mode exits 0 on both sides, rdma_rxe unloads.
	p=0 f=0
	for want in 'insmod ok' 'devinfo: ODP_SUPPORT_IMPLICIT' \
		'pingpong plain: server exit 0, client exit 0' \
		'pingpong odp: server exit 0, client exit 0' \
		'pingpong implicit: server exit 0, client exit 0' \
		'pingpong implicit-prefetch: server exit 0, client exit 0' \
		'killed mid-run ok' 'memcg: the test runs in a memory cgroup' \
		'rxe_implicit_odp exit 0' \
		'device deleted while running (yes): link delete exit 0, test exit 1, cleanly' \
		'rmmod ok'; do
		if grep -qx "RDMA: $want" "$out"; then
			p=$((p + 1))
		else
			echo "qemu[rdma]: missing: RDMA: $want" >&2
			f=$((f + 1))
		fi
	done
	grep -E '^RDMA: |^pingpong .*(bytes in|iters in)|^rxe_implicit_odp: ' "$out" || true
	[ "$fail" -eq 0 ] || f=$((f + 1))
	echo "$p $f 0" >"$BUILD/results/rdma"
	echo "$p passed, $f failed, 0 skipped"
elif [ "$mode" = selftest ]; then
	# The KUnit suites of the boot (the log up to /init's first line),
	# parsed by the tree's own kunit.py.
	kout=$BUILD/qemu-kunit.out
	sed '/HMI-INIT:/q' "$out" >"$out.kunit"
	(cd "$SRC" && python3 tools/testing/kunit/kunit.py parse "$out.kunit") >"$kout" 2>&1 || true
	ksum=$(sed 's/\x1b\[[0-9;]*m//g' "$kout" | grep -o 'Ran [0-9]* tests:.*' | tail -n 1 || true)
	kp=$(grep -o 'passed: [0-9]*' <<<"$ksum" | grep -o '[0-9]*' || echo 0)
	kf=$(( $(grep -o 'failed: [0-9]*' <<<"$ksum" | grep -o '[0-9]*' || echo 0) +
	       $(grep -o 'crashed: [0-9]*' <<<"$ksum" | grep -o '[0-9]*' || echo 0) ))
	ks=$(grep -o 'skipped: [0-9]*' <<<"$ksum" | grep -o '[0-9]*' || echo 0)
	if [ -z "$ksum" ]; then
		echo "qemu[kunit]: no KUnit results in $out (see $kout)" >&2
		kf=$((kf + 1))
	fi
	sed 's/\x1b\[[0-9;]*m//g' "$kout" | grep -E '\[(FAILED|CRASHED|SKIPPED)\]' >&2 || true
	echo "$kp $kf $ks" >"$BUILD/results/kunit-x86"
	echo "kunit (x86_64, 2 vCPUs, $([ "$BASE" = 7.3 ] && echo "KASAN + ")lockdep): $kp passed, $kf failed, $ks skipped"

	# kselftest_harness: '# Totals: pass:N fail:N xfail:N xpass:N skip:N error:N'
	totals=$(grep -o 'Totals: pass:[0-9]* fail:[0-9]* xfail:[0-9]* xpass:[0-9]* skip:[0-9]* error:[0-9]*' "$out" | tail -n 1 || true)
	[ -n "$totals" ] || problem "no kselftest totals in the log"
	passed=$(sed -n 's/.*Totals: pass:\([0-9]*\) .*/\1/p' <<<"$totals")
	failed=$(sed -n 's/.* fail:\([0-9]*\) .*/\1/p' <<<"$totals")
	skipped=$(sed -n 's/.* skip:\([0-9]*\) .*/\1/p' <<<"$totals")
	grep -E '^(not )?ok [0-9]+ |^# (PASSED|FAILED)' "$out" || true
	passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}
	[ "$skipped" -eq 0 ] || problem "$skipped selftests skipped (no device?)"
	[ "$fail" -eq 0 ] || failed=$((failed + 1))
	echo "$passed $failed $skipped" >"$BUILD/results/selftest"
	echo "$passed passed, $failed failed, $skipped skipped"
elif [ "$mode" = bench ]; then
	grep -q '# mmu_range_tracker: pass:[0-9]* fail:0 ' "$out" ||
		problem "the KUnit benchmark cases did not all pass"
	grep -q '^CPUBENCH done' "$out" || problem "the CPU-side benchmark did not finish"
	grep -oE '(BENCH|SMP|WORKLOAD) policy=.*|(BUSY|CPUBENCH) .*' "$out" || true
else
	sed -n '/^== /,/^demo: /p' "$out"
	echo "$((1 - fail)) $fail 0" >"$BUILD/results/demo"
fi
exit "$fail"
