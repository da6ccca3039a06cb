# SPDX-License-Identifier: GPL-2.0
# Shared settings for the harness scripts. Sourced, not executed.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
# The assembled tree: pristine base + the repository's new files + its patches.
SRC=$BUILD/src
# Folders of the repository that hold new kernel files at their kernel paths.
KERNEL_DIRS="Documentation drivers include lib mm tools"
JOBS=${JOBS:-$(nproc)}

say() { printf '==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# stage NAME CMD...: run CMD, then print how long it took.
stage() {
	local name=$1 t0 rc=0
	shift
	t0=$(date +%s)
	say "$name: start"
	"$@" || rc=$?
	say "$name: $( ((rc == 0)) && echo done || echo "FAILED (exit $rc)") in $(($(date +%s) - t0)) s"
	return "$rc"
}

# The compiler, through ccache when it is installed. CCACHE_BASEDIR makes
# hits possible across clones of the repository in different folders.
kcc() {
	if command -v ccache >/dev/null 2>&1; then
		export CCACHE_BASEDIR=$REPO
		echo "ccache gcc"
	else
		echo gcc
	fi
}

# x86_64_config NAME BUILD_DIR FRAGMENT: configure BUILD_DIR as allnoconfig +
# FRAGMENT (only when the fragment changed or there is no .config, so that
# rebuilds stay incremental), take in Kconfig changes of the patches, and
# fail naming every line of FRAGMENT that did not make it into .config.
x86_64_config() {
	local name=$1 dir=$2 frag=$3 missing
	local mk=(make -s -C "$SRC" O="$dir" ARCH=x86_64 CC="$(kcc)")

	mkdir -p "$dir"
	if [ ! -f "$dir/.config" ] || ! cmp -s "$frag" "$dir/.mrt-fragment"; then
		say "$name: configuring $dir (allnoconfig + $(basename "$frag"))"
		"${mk[@]}" KCONFIG_ALLCONFIG="$frag" allnoconfig
		cp "$frag" "$dir/.mrt-fragment"
	fi
	"${mk[@]}" olddefconfig >/dev/null
	missing=$(grep -v '^#' "$frag" | while read -r opt; do
		[ -z "$opt" ] || grep -qx "$opt" "$dir/.config" || echo "$opt"
	done)
	[ -z "$missing" ] || die "$name: options missing from $dir/.config: $missing"
}
