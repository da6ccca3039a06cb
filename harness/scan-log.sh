#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fail on any kernel report in a kernel log: a WARN, BUG, lockdep, KASAN,
# UBSAN, slab-debug or RCU report, a panic or an oops. Test runners count
# such a run as passed; this does not.
#
# Usage: harness/scan-log.sh LOG [IGNORE_REGEX]
# IGNORE_REGEX names one known, unrelated report to let through (matched on
# the report's first line only).
set -euo pipefail

log=$1
ignore=${2:-}
pattern='WARNING:|BUG:|BUG [a-z0-9_-]+ \(|kernel BUG at|Kernel panic|Oops|general protection fault|KASAN:|UBSAN:|KFENCE:|possible recursive locking|possible circular locking|inconsistent lock state|suspicious RCU usage|INFO: task .* blocked|DEBUG_LOCKS_WARN_ON|ODEBUG:|Poison overwritten|Redzone|Object already free|Freepointer corrupt|Unable to handle kernel|Call Trace:|Stack:'

[ -f "$log" ] || { echo "scan-log: no log $log" >&2; exit 1; }
hits=$(grep -naE "$pattern" "$log" || true)
if [ -n "$ignore" ] && [ -n "$hits" ]; then
	# Drop an ignored report and the stack-trace lines that follow it.
	hits=$(awk -v ign="$ignore" -v pat="$pattern" '
		{ line = $0; sub(/^[0-9]+:/, "", line) }
		line ~ ign { skip = 1; next }
		skip && line ~ /(Call Trace:|Stack:)/ { next }
		{ skip = 0; print }' <<<"$hits")
fi
if [ -n "$hits" ]; then
	echo "scan-log: kernel reports in $log:" >&2
	head -n 20 <<<"$hits" >&2
	exit 1
fi
