#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fail on any kernel report in a kernel log: a WARN, BUG, lockdep, KASAN,
# UBSAN, slab-debug, RCU stall, soft lockup or hung task report, a panic or
# an oops, and the tracker's own "fini waits" warning. Test runners count
# such a run as passed; this does not.
#
# Usage: harness/scan-log.sh LOG [IGNORE_REGEX]
# IGNORE_REGEX names one known, unrelated report to let through: its first
# line and its dump, up to the report's own "---[ end trace" line (60 lines
# at most), not any later report.
set -euo pipefail

log=$1
ignore=${2:-}
pattern='WARNING:|BUG:|BUG [a-z0-9_-]+ \(|kernel BUG at|Kernel panic|Oops|general protection fault|KASAN:|UBSAN:|KFENCE:|possible recursive locking|possible circular locking|inconsistent lock state|suspicious RCU usage|trying to register non-static key|INFO: task .* blocked|blocked for more than|rcu: INFO:|detected stalls? on CPUs|self-detected stall|soft lockup|hard LOCKUP|DEBUG_LOCKS_WARN_ON|ODEBUG:|Poison overwritten|Redzone|Object already free|Freepointer corrupt|Unable to handle kernel|mmu_range_tracker: fini waits|enqueued on deprecated workqueue|Call Trace:|Stack:'

[ -f "$log" ] || { echo "scan-log: no log $log" >&2; exit 1; }
hits=$(awk -v ign="$ignore" -v pat="$pattern" '
	ign != "" && $0 ~ ign { left = 60; next }
	left > 0 { left--; if ($0 ~ /---\[ end trace/) left = 0; next }
	$0 ~ pat { printf "%d:%s\n", NR, $0 }' "$log")
if [ -n "$hits" ]; then
	echo "scan-log: kernel reports in $log:" >&2
	head -n 20 <<<"$hits" >&2
	exit 1
fi
