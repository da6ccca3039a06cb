#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run in the QEMU guest by /init (hmi.run=rdma, harness/qemu.sh rdma), under
# busybox sh: load rdma_rxe, add rxe0 on a dummy netdev, show its ODP
# capabilities, run Debian's ibv_rc_pingpong between two processes in four
# modes (plain, ODP, implicit ODP, implicit ODP + prefetch) with data
# validation, run the project's own implicit ODP test, remove rxe0 and
# unload rdma_rxe. With hmi.run=rdma-bench on the kernel command line
# (harness/qemu.sh rdma-bench, make bench) it runs rxe_implicit_odp -b
# instead of the tests. Lines starting with "RDMA:" are read by
# harness/qemu.sh.
set -u
export PATH=/bin:/usr/bin:/usr/sbin

say() { echo "RDMA: $*"; }

for m in ip_tunnel udp_tunnel rdma_rxe; do
	if ! insmod "/modules/$m.ko"; then
		say "insmod $m failed"
		exit 1
	fi
done
say "insmod ok"

ip link set lo up
# CONFIG_DUMMY=y makes dummy0 at boot.
ip link show dummy0 >/dev/null 2>&1 || ip link add dummy0 type dummy
ip addr add 192.168.77.1/24 dev dummy0
ip link set dummy0 up
if ! rdma link add rxe0 type rxe netdev dummy0; then
	say "rdma link add failed"
	exit 1
fi

# The IPv4 GID appears once the address reaches the GID table.
gid=
for i in 1 2 3 4 5 6 7 8 9 10; do
	ibv_devinfo -v -d rxe0 >/tmp/devinfo 2>&1
	gid=$(sed -n 's/.*GID\[ *\([0-9]*\)\]:.*::ffff:192\.168\.77\.1.*/\1/p' /tmp/devinfo | head -n 1)
	[ -n "$gid" ] && break
	sleep 1
done
sed -n '/general_odp_caps/,/rc_odp_caps/p' /tmp/devinfo
grep 'GID\[' /tmp/devinfo
if grep -q 'ODP_SUPPORT_IMPLICIT' /tmp/devinfo; then
	say "devinfo: ODP_SUPPORT_IMPLICIT"
else
	say "devinfo: no ODP_SUPPORT_IMPLICIT"
fi
if [ -z "$gid" ]; then
	say "no IPv4 GID on rxe0"
	cat /tmp/devinfo
	exit 1
fi

if grep -q 'hmi.run=rdma-bench' /proc/cmdline; then
	/rxe_implicit_odp -d rxe0 -g "$gid" -b
	say "bench exit $?"
	rdma link delete rxe0
	rmmod rdma_rxe && say "rmmod ok"
	exit 0
fi

# ibv_rc_pingpong NAME [OPTIONS]: a server and a client on rxe0, 50
# round trips of 4 KiB (4 packets at the default MTU of 1024), buffers
# validated (-c); ibv_rc_pingpong has no timeout of its own.
port=18515
pingpong() {
	name=$1
	shift
	port=$((port + 1))
	timeout 300 ibv_rc_pingpong -d rxe0 -g "$gid" -p "$port" -s 4096 -n 50 -c "$@" \
		>"/tmp/pp-server-$name" 2>&1 &
	spid=$!
	sleep 1
	timeout 300 ibv_rc_pingpong -d rxe0 -g "$gid" -p "$port" -s 4096 -n 50 -c "$@" \
		127.0.0.1 >"/tmp/pp-client-$name" 2>&1
	crc=$?
	wait "$spid"
	src=$?
	sed "s/^/pingpong $name server: /" "/tmp/pp-server-$name"
	sed "s/^/pingpong $name client: /" "/tmp/pp-client-$name"
	say "pingpong $name: server exit $src, client exit $crc"
}
pingpong plain
pingpong odp -o
pingpong implicit -O
pingpong implicit-prefetch -O -P

# wait_running FILE: until the test writing FILE has begun its transfers
# and changes (at most 20 s), then 2 s more.
wait_running() {
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		grep -q '^rxe_implicit_odp: running' "$1" && break
		sleep 1
	done
	sleep 2
}

# Teardown with traffic and invalidations in flight. SIGKILL while the
# test runs: the process's mm goes first (exit_mm() before exit_files()),
# its invalidations reaching a live implicit MR, then the device file
# closes and deregisters the MR. "running" shows the kill hit the
# transfers, no summary line that they had not ended.
killed_mid_run() {
	/rxe_implicit_odp -d rxe0 -g "$gid" -n 100000000 -t 60 >/tmp/kill.out 2>&1 &
	pid=$!
	wait_running /tmp/kill.out
	kill -9 "$pid"
	wait "$pid"
	rc=$?
	cat /tmp/kill.out
	if [ "$rc" -eq 137 ] && grep -q '^rxe_implicit_odp: running' /tmp/kill.out &&
		! grep -q 'operations (' /tmp/kill.out; then
		say "killed mid-run ok"
	else
		say "killed mid-run: exit $rc, not killed while transferring"
	fi
}

# A memory cgroup for the main run of rxe_implicit_odp (-m).
cg=/sys/fs/cgroup/rxe
if mount -t cgroup2 none /sys/fs/cgroup && echo +memory >/sys/fs/cgroup/cgroup.subtree_control &&
	mkdir -p "$cg"; then
	say "memcg: the test runs in a memory cgroup"
else
	cg=
fi

if [ -x /rxe_implicit_odp ]; then
	killed_mid_run
	if [ -n "$cg" ]; then
		# shellcheck disable=SC2016 # $$ is the inner shell's
		timeout 600 sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
			/rxe_implicit_odp -d rxe0 -g "$gid" -m "$cg"
	else
		timeout 600 /rxe_implicit_odp -d rxe0 -g "$gid"
	fi
	say "rxe_implicit_odp exit $?"
	# Removing the device while a test runs on it: uverbs fails the
	# process's calls from then on (-EIO), and the removal completes once
	# the process, having failed cleanly, closes the device.
	timeout 600 /rxe_implicit_odp -d rxe0 -g "$gid" -n 100000000 -t 30 >/tmp/del.out 2>&1 &
	pid=$!
	wait_running /tmp/del.out
	running=no
	if kill -0 "$pid" && grep -q '^rxe_implicit_odp: running' /tmp/del.out; then
		running=yes
	fi
	rdma link delete rxe0
	drc=$?
	wait "$pid"
	rc=$?
	cat /tmp/del.out
	# Cleanly: -EIO from uverbs, or a work request posted just before
	# that never completes (the device stopped), and no wrong data.
	how=uncleanly
	if grep -qE 'Input/output error|no completion in' /tmp/del.out &&
		! grep -qE 'no content of|not in the page|, want ' /tmp/del.out; then
		how=cleanly
	fi
	say "device deleted while running ($running): link delete exit $drc, test exit $rc, $how"
else
	rdma link delete rxe0
fi

if rmmod rdma_rxe; then
	say "rmmod ok"
else
	say "rmmod failed"
fi
say "done"
