#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The patch series, as maintainers receive it, built from the repository:
# patches/$BASE/series names the patches in order, each with the new files
# it adds; a patch file is a commit message (From:, Subject:, body) and the
# diff of the upstream files it changes.
#
# Usage: harness/series.sh repo|commits|format|check
#   repo     a pristine git repository of the base (build/$BASE/git, one
#            commit of the unpacked source, branch 'base')
#   commits  and a branch 'series' with one commit per patch
#   format   git format-patch of that branch with a cover letter
#            (patches/$BASE/cover-letter) and To/Cc from get_maintainer.pl,
#            into build/$BASE/series/
#   check    the proof: git am of build/$BASE/series/ onto the pristine
#            base, the result identical to the tree the tests ran on
#            (build/$BASE/src), checkpatch --strict on every patch, and a
#            build of every patch in turn (UML KUnit configuration with the
#            test driver)
set -euo pipefail
. "$(dirname "$0")/common.sh"

GIT=$BUILD/git
OUT=$BUILD/series
AUTHOR_DATE="2026-11-25T00:00:00+00:00"
git_() { git -C "$GIT" -c "user.name=mmu_range_tracker developers" -c user.email=dev@mmu-range-tracker.invalid "$@"; }

# The pristine base as a git repository, made once per unpacked base.
base_repo() {
	local base
	base=$("$REPO/harness/base.sh")
	if [ -f "$GIT/.git/mrt-base" ] && [ "$(cat "$GIT/.git/mrt-base")" = "$base" ] &&
		git_ rev-parse -q --verify refs/heads/base >/dev/null; then
		return 0
	fi
	say "series: committing the pristine base $base into $GIT"
	rm -rf "$GIT"
	mkdir -p "$GIT"
	# A copy, not hard links: editors write into files in place.
	rsync -a --exclude=/.git "$base/" "$GIT/"
	git_ init -q -b base
	# Debian's top-level .gitignore ignores the whole tree: add it all.
	git_ add -f -A .
	git_ commit -q -m "Linux $(make -s -C "$base" kernelversion) ($(basename "$base"), unpacked)"
	echo "$base" >"$GIT/.git/mrt-base"
}

# The header of a patch file: FIELD is From or Subject.
header() { sed -n "/^\$/q; s/^$1: //p" "$2" | head -n 1; }
# The commit message body: from the first blank line to the '---' line.
body() { sed -n '/^$/,/^---$/p' "$1" | sed '1d;$d'; }
# The diff part: after the '---' line.
diffpart() { sed '1,/^---$/d' "$1"; }

# One commit per line of the series on branch 'series', made with a private
# index: the repository's work tree (and whatever is checked out there) is
# not touched.
commits() {
	local p files f subject from parent tree commit n=0
	base_repo
	export GIT_INDEX_FILE=$GIT/.git/mrt-series-index
	git_ read-tree base
	parent=$(git_ rev-parse base)
	while read -r p files; do
		[ -f "$PATCHES/$p" ] || die "patches/$BASE/series names missing $p"
		if diffpart "$PATCHES/$p" | grep '^diff ' >/dev/null; then
			diffpart "$PATCHES/$p" | git_ apply --cached --whitespace=error-all - ||
				die "patches/$BASE/$p does not apply with git apply"
		fi
		for f in $files; do
			[ -f "$REPO/$f" ] || die "patches/$BASE/series: $p adds $f, which is not in the repository"
			git_ update-index --add --cacheinfo \
				"100644,$(git_ hash-object -w "$REPO/$f"),$f"
		done
		tree=$(git_ write-tree)
		subject=$(header Subject "$PATCHES/$p" | sed 's/^\[PATCH[^]]*\] *//')
		from=$(header From "$PATCHES/$p")
		commit=$({
			echo "$subject"
			echo
			body "$PATCHES/$p"
		} | GIT_AUTHOR_NAME=${from% <*} GIT_AUTHOR_EMAIL=$(sed -n 's/.*<\(.*\)>.*/\1/p' <<<"$from") \
			GIT_AUTHOR_DATE=$AUTHOR_DATE GIT_COMMITTER_DATE=$AUTHOR_DATE \
			git_ commit-tree "$tree" -p "$parent" -F -)
		parent=$commit
		n=$((n + 1))
	done < <(series_lines)
	unset GIT_INDEX_FILE
	git_ update-ref refs/heads/series "$parent"
	say "series: $n commits on branch series of $GIT"
}

# get_maintainer ARGS... PATCH: one line of addresses, from MAINTAINERS only.
get_maintainer() {
	(cd "$GIT" && perl scripts/get_maintainer.pl --no-git --no-git-fallback \
		--no-rolestats --no-multiline --separator , --nos "$@") 2>/dev/null || true
}

# uniq_addresses: comma-separated address lists on stdin, one list out.
uniq_addresses() {
	tr ',' '\n' | sed 's/^ *//' | { grep . || true; } | sort -u | paste -sd, | sed 's/,/, /g'
}

format() {
	local cover=$PATCHES/cover-letter f to cc all_to=() all_cc=()
	commits
	rm -rf "$OUT"
	mkdir -p "$OUT"
	[ -f "$cover" ] || die "no $cover"
	git_ format-patch -q --cover-letter --base=base -o "$OUT" base..series
	# Per patch: To the maintainers, Cc the reviewers and the lists; the
	# cover letter goes to everyone a patch goes to.
	for f in "$OUT"/0*.patch; do
		case $f in */0000-cover-letter.patch) continue ;; esac
		to=$(get_maintainer --m --nor --nol "$f")
		cc=$(get_maintainer --nom --r --l "$f")
		insert_recipients "$f" "$to" "$cc"
		all_to+=("$to")
		all_cc+=("$cc")
	done
	to=$(printf '%s,' "${all_to[@]}" | uniq_addresses)
	cc=$(printf '%s,' "${all_cc[@]}" | uniq_addresses)
	insert_recipients "$OUT/0000-cover-letter.patch" "$to" "$cc"
	fill_cover "$OUT/0000-cover-letter.patch" "$cover"
	say "series: $(find "$OUT" -name '0*.patch' | wc -l) files in $OUT"
	grep -h '^Subject:' "$OUT"/0*.patch | sed 's/^Subject: /  /'
}

# insert_recipients FILE TO CC: To:/Cc: header lines after the Subject.
insert_recipients() {
	local f=$1 to=${2:-} cc=${3:-}
	to=$(sed 's/ *, */, /g; s/^ *//' <<<"$to")
	cc=$(sed 's/ *, */, /g; s/^ *//' <<<"$cc")
	awk -v to="$to" -v cc="$cc" '
		!done && /^Subject:/ { print; insub = 1; next }
		insub && /^[ \t]/ { print; next }
		insub && !done {
			if (to != "") print "To: " to
			if (cc != "") print "Cc: " cc
			done = 1; insub = 0
		}
		{ print }' "$f" >"$f.tmp"
	mv "$f.tmp" "$f"
}

# fill_cover FILE COVER: the cover letter's subject (first line of COVER)
# and blurb (the rest) in place of git's placeholders.
fill_cover() {
	local f=$1 cover=$2 title
	title=$(head -n 1 "$cover")
	sed '1,/^$/d' "$cover" >"$OUT/.blurb"
	awk -v title="$title" -v blurbfile="$OUT/.blurb" '
		/\*\*\* SUBJECT HERE \*\*\*/ { sub(/\*\*\* SUBJECT HERE \*\*\*/, title); print; next }
		/\*\*\* BLURB HERE \*\*\*/ {
			while ((getline l < blurbfile) > 0) print l
			next
		}
		{ print }' "$f" >"$f.tmp"
	mv "$f.tmp" "$f"
	rm -f "$OUT/.blurb"
}

# Build the series patch by patch: assemble the tree of the first N patches
# in build/$BASE/src (the folder the other stages build from, so ccache
# knows nearly every object), check that it is the tree git am made of the
# first N patches, and build it in a folder of its own with the UML KUnit
# configuration plus the core and the test driver. The full tree is
# assembled again at the end.
per_patch_builds() {
	local bdir=$BUILD/series-um cfg c n=0 log diffs f
	cfg=$BUILD/kunit-default/.config
	[ -f "$cfg" ] || die "no $cfg: run the KUnit stage first"
	mkdir -p "$bdir"
	log=$BUILD/series-build.log
	: >"$log"
	# Last patch first: the tree of the whole series is the one the KUnit
	# stage built, so ccache has its objects and each step back rebuilds
	# what one patch changed. Patch 1 comes last: without the tracker
	# nothing selects MMU_NOTIFIER on UML, so it rebuilds what depends on it.
	n=$(git_ rev-list --count base..am)
	for c in $(git_ rev-list base..am); do
		"$REPO/harness/assemble.sh" "$n" >>"$log" 2>&1 ||
			die "assembly of the first $n patches failed, see $log"
		diffs=$(git_ diff --name-only base "$c" | while read -r f; do
			cmp -s <(git_ show "$c:$f" 2>/dev/null) "$SRC/$f" 2>/dev/null || echo "$f"
		done)
		if [ -n "$diffs" ]; then
			echo "series: patch $n: the assembled tree is not git am's: $diffs" >&2
			failed=$((failed + 1))
			n=$((n - 1))
			continue
		fi
		# The core is a promptless helper but for COMPILE_TEST: build it
		# from the patch that adds it, before its first user.
		{
			cat "$cfg"
			echo CONFIG_COMPILE_TEST=y
			echo CONFIG_MMU_RANGE_TRACKER=y
			echo CONFIG_TEST_HMM_INTERVALS=y
		} >"$bdir/.config"
		make -s -C "$SRC" ARCH=um O="$bdir" CC="$(kcc)" olddefconfig >>"$log" 2>&1
		progress_start "$bdir" "build of patch $n"
		if make -s -C "$SRC" ARCH=um O="$bdir" CC="$(kcc)" -j"$JOBS" >>"$log" 2>&1; then
			progress_stop
			echo "series: patch $n builds (UML): $(git_ log -1 --format=%s "$c")"
			passed=$((passed + 1))
		else
			progress_stop
			echo "series: patch $n does NOT build (UML): $(git_ log -1 --format=%s "$c"), see $log" >&2
			failed=$((failed + 1))
		fi
		# UML has no nouveau: a patch to it also builds, on x86_64, the
		# nouveau objects that the first n patches change, W=1 + sparse.
		if git_ diff --name-only "$c^" "$c" | grep -q '^drivers/gpu/drm/nouveau/'; then
			if NOUVEAU_PATCHES=$n "$REPO/harness/nouveau.sh" >>"$log" 2>&1; then
				echo "series: patch $n builds (nouveau, x86_64, W=1 + sparse clean)"
				passed=$((passed + 1))
			else
				echo "series: patch $n: nouveau build or W=1/sparse FAILED, see $log" >&2
				failed=$((failed + 1))
			fi
		fi
		n=$((n - 1))
	done
	"$REPO/harness/assemble.sh" >>"$log" 2>&1 || die "assembly failed, see $log"
}

check() {
	local f out diffs n tree=$BUILD/series-tree patches=()
	passed=0 failed=0
	format
	for f in "$OUT"/0*.patch; do
		case $f in */0000-cover-letter.patch) ;; *) patches+=("$f") ;; esac
	done
	# git am in a worktree of the pristine repository, from the base.
	git_ worktree prune
	if [ ! -e "$tree/.git" ]; then
		rm -rf "$tree"
		git_ worktree add -q --detach "$tree" base
	fi
	git -C "$tree" am --abort >/dev/null 2>&1 || true
	git -C "$tree" checkout -q -f --detach base
	git -C "$tree" clean -q -fdx
	if git -C "$tree" -c "user.name=mmu_range_tracker developers" \
		-c user.email=dev@mmu-range-tracker.invalid \
		am -q "${patches[@]}" >"$BUILD/series-am.log" 2>&1; then
		git_ update-ref refs/heads/am "$(git -C "$tree" rev-parse HEAD)"
		echo "series: git am of ${#patches[@]} patches onto the pristine base: ok"
		passed=$((passed + 1))
	else
		cat "$BUILD/series-am.log" >&2
		echo "series: git am FAILED" >&2
		failed=$((failed + 1))
		return 0
	fi
	# The series is the tree the tests ran on: every file the assembly
	# wrote is identical in the applied series.
	diffs=$(cd "$SRC" && while read -r f; do
		cmp -s "$f" "$tree/$f" || echo "$f"
	done <"$SRC/.mrt-manifest")
	if [ -z "$diffs" ]; then
		echo "series: the applied series is the tested tree ($(wc -l <"$SRC/.mrt-manifest") files)"
		passed=$((passed + 1))
	else
		echo "series: the applied series differs from build/$BASE/src in: $diffs" >&2
		failed=$((failed + 1))
	fi
	n=0
	for f in "${patches[@]}"; do
		n=$((n + 1))
		# --no-signoff: the one exception; whoever posts adds theirs. In
		# a git tree checkpatch also runs scripts/spdxcheck.py, with the
		# python3 that has Debian's python3-ply and python3-git. It also
		# looks up the commit a Fixes: tag names, which a repository of
		# one commit (the unpacked release) cannot have: those IDs were
		# checked against mainline by hand, UNKNOWN_COMMIT_ID is off.
		out=$(cd "$tree" && PATH=/usr/bin:$PATH perl scripts/checkpatch.pl --strict \
			--no-signoff --ignore UNKNOWN_COMMIT_ID --terse --no-summary \
			"$f" 2>&1) || true
		if [ -z "$out" ]; then
			passed=$((passed + 1))
			echo "series: checkpatch --strict, patch $n: 0 errors, 0 warnings"
		else
			failed=$((failed + 1))
			echo "series: checkpatch --strict, patch $n ($(basename "$f")):" >&2
			printf '%s\n' "$out" >&2
		fi
	done
	per_patch_builds
}

case ${1:-} in
repo) base_repo ;;
commits) commits ;;
format) format ;;
check)
	mkdir -p "$BUILD/results"
	check
	echo "$passed $failed 0" >"$BUILD/results/series"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	;;
*) die "usage: $0 repo|commits|format|check" ;;
esac
