# SPDX-License-Identifier: GPL-2.0
# Shared settings for the harness scripts. Sourced, not executed.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The base tree the series applies to: 7.3 (current stable, the default) or
# 6.12 (the LTS backport). Each base has its patch set, patches/$BASE/, and
# its build folders, build/$BASE/.
BASE=${BASE:-7.3}
case $BASE in
7.3 | 6.12) ;;
*) printf 'ERROR: BASE=%s: the bases are 7.3 and 6.12\n' "$BASE" >&2; exit 1 ;;
esac
export BASE
TOP_BUILD=$REPO/build
BUILD=$TOP_BUILD/$BASE
PATCHES=$REPO/patches/$BASE
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
# hits possible across build folders of one tree and across clones of the
# repository in different folders (exported here: kcc runs in a subshell).
export CCACHE_BASEDIR=$REPO
kcc() {
	if command -v ccache >/dev/null 2>&1; then
		echo "ccache gcc"
	else
		echo gcc
	fi
}

# The URI of the machine's Debian archive: the entry that carries the
# machine's own release, deb822 (sources.list.d/*.sources) or one-line style.
debian_uri() {
	local codename f
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v c="$codename" '
			/^[[:space:]]*$/ { uri = ""; suites = "" }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c) suites = c }
			uri != "" && suites != "" { print uri; exit }' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v c="$codename" '$1 == "deb" && $0 ~ " " c " " {
			for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }'
}

# apt_private TYPE SUITE APT-GET-ARGS...: apt-get with a private
# configuration in build/apt/ whose one source is SUITE of the Debian archive
# this machine uses (TYPE deb or deb-src): packages of another suite can be
# downloaded without touching the machine's apt state.
apt_private() {
	local type=$1 suite=$2 uri apt=$TOP_BUILD/apt/$1-$2
	shift 2
	uri=$(debian_uri | head -n 1)
	[ -n "$uri" ] || die "no Debian archive in this machine's apt sources"
	mkdir -p "$apt/lists/partial" "$apt/parts"
	echo "$type [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" \
		>"$apt/sources.list"
	local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list"
		-o "Dir::Etc::sourceparts=$apt/parts"
		-o "Dir::Etc::preferencesparts=$apt/parts"
		-o "Dir::State::lists=$apt/lists"
		-o "Dir::Cache::archives=$apt"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
		-o "APT::Sandbox::User=root" -q)
	apt-get "${opts[@]}" update && apt-get "${opts[@]}" "$@"
}

# series_lines: the lines of patches/$BASE/series, comments and blank lines
# dropped. Each line is a patch file of patches/$BASE/, then the new files
# (repository paths) that the patch adds to the tree, if any.
series_lines() {
	[ -f "$PATCHES/series" ] || die "no $PATCHES/series"
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$PATCHES/series"
}

# progress_start DIR NAME: while the caller runs a long build in DIR, print a
# line a minute with the number of objects built so far, so that a cold
# build is not minutes of silence. progress_stop ends it.
progress_start() {
	local dir=$1 name=$2
	mkdir -p "$dir"
	touch "$dir/.mrt-progress"
	(
		t0=$(date +%s)
		while sleep 60; do
			echo "  $name: $((($(date +%s) - t0) / 60)) min, $(find "$dir" -name '*.o' -newer "$dir/.mrt-progress" | wc -l) objects built"
		done
	) &
	PROGRESS_PID=$!
}
progress_stop() {
	[ -n "${PROGRESS_PID:-}" ] || return 0
	kill "$PROGRESS_PID" 2>/dev/null || true
	wait "$PROGRESS_PID" 2>/dev/null || true
	PROGRESS_PID=
}

# x86_64_config NAME BUILD_DIR FRAGMENT...: configure BUILD_DIR as
# allnoconfig + the FRAGMENTs (only when they changed or there is no
# .config, so that rebuilds stay incremental), take in Kconfig changes of the
# patches, and fail naming every line of a FRAGMENT that did not make it
# into .config.
x86_64_config() {
	local name=$1 dir=$2 missing
	shift 2
	local mk=(make -s -C "$SRC" O="$dir" ARCH=x86_64 CC="$(kcc)")

	mkdir -p "$dir"
	cat "$@" >"$dir/.mrt-fragment.new"
	if [ ! -f "$dir/.config" ] || ! cmp -s "$dir/.mrt-fragment.new" "$dir/.mrt-fragment"; then
		say "$name: configuring $dir (allnoconfig + $(for f in "$@"; do basename "$f"; done | xargs))"
		"${mk[@]}" KCONFIG_ALLCONFIG="$dir/.mrt-fragment.new" allnoconfig
		mv "$dir/.mrt-fragment.new" "$dir/.mrt-fragment"
	fi
	rm -f "$dir/.mrt-fragment.new"
	"${mk[@]}" olddefconfig >/dev/null
	missing=$(grep -hv '^#' "$@" | while read -r opt; do
		[ -z "$opt" ] || grep -qx "$opt" "$dir/.config" || echo "$opt"
	done)
	[ -z "$missing" ] || die "$name: options missing from $dir/.config: $missing"
}
