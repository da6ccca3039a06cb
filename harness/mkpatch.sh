#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Write a patch of changes to upstream files, for patches/.
#
# Usage: harness/mkpatch.sh HEADER_FILE EDITED_DIR FILE... > patches/NNNN-x.patch
# EDITED_DIR holds the edited copies of FILE... at their kernel paths; they
# are diffed against the pristine base. HEADER_FILE holds the From/Subject
# lines and the commit message, ending with a '---' line.
set -euo pipefail
. "$(dirname "$0")/common.sh"

header=$1 edited=$2
shift 2
base=$("$REPO/harness/base.sh")
cat "$header"
for f in "$@"; do
	echo "diff --git a/$f b/$f"
	diff -u --label "a/$f" --label "b/$f" "$base/$f" "$edited/$f" || true
done
