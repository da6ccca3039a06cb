#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Assemble build/$BASE/src = pristine base + the repository's new kernel files +
# patches/$BASE/series applied strictly (no fuzz). Incremental: only files whose
# content changed are rewritten, so kbuild rebuilds only what depends on them.
#
# Usage: harness/assemble.sh [N]   (only the first N patches of the series;
# harness/series.sh builds the series patch by patch this way)
set -euo pipefail
. "$(dirname "$0")/common.sh"

base=$("$REPO/harness/base.sh")
mkdir -p "$BUILD"

# A new base (or none yet) means a new tree. The tree is made of hard links to
# the pristine files: cheap, and safe because rsync below replaces a file by
# renaming a new one over it, never by writing into the shared inode.
if [ ! -f "$SRC/.mrt-base" ] || [ "$(cat "$SRC/.mrt-base")" != "$base" ]; then
	say "assemble: new tree $SRC from $base"
	rm -rf "$SRC"
	rsync -a --exclude=/.git --link-dest="$base" "$base/" "$SRC/"
	echo "$base" >"$SRC/.mrt-base"
	: >"$SRC/.mrt-manifest"
fi

stage_dir=$BUILD/stage
rm -rf "$stage_dir"
mkdir -p "$stage_dir"

# 1. The repository's new files, each added by the patch whose line in
#    patches/$BASE/series names it. None may shadow an upstream file (changes
#    to upstream files are patches), and none may be left out of the series.
cd "$REPO"
series=()
claimed=()
upto=${1:-}
while read -r p files; do
	[ -z "$upto" ] || [ "${#series[@]}" -lt "$upto" ] || break
	[ -f "$PATCHES/$p" ] || die "patches/$BASE/series names missing patch $p"
	series+=("$p")
	# shellcheck disable=SC2206
	claimed+=($files)
done < <(series_lines)
new=$(printf '%s\n' "${claimed[@]}" | grep . | sort || true)
dups=$(uniq -d <<<"$new")
[ -z "$dups" ] || die "patches/$BASE/series adds these files twice: $dups"
if [ -z "$upto" ]; then
	present=$(for d in $KERNEL_DIRS; do if [ -d "$d" ]; then find "$d" -type f; fi; done | sort)
	# patches/$BASE/not-backported: new files this base does not take.
	skip=$(grep -v '^#' "$PATCHES/not-backported" 2>/dev/null | awk '{ print $1 }' | sort || true)
	orphans=$(comm -23 <(printf '%s\n' "$present") <(printf '%s\n' "$new" $skip | sort) | grep . || true)
	[ -z "$orphans" ] || die "not added by any patch of patches/$BASE/series: $orphans"
fi
for f in $new; do
	[ -f "$f" ] || die "patches/$BASE/series adds $f, which is not in the repository"
	[ -e "$base/$f" ] &&
		die "$f exists in the base tree: keep changes to it as a patch in patches/$BASE/"
	mkdir -p "$stage_dir/$(dirname "$f")"
	cp -p "$f" "$stage_dir/$f"
done

# 2. The pristine version of every upstream file a patch touches, then the
#    patches, in order.
touched=$(for p in "${series[@]}"; do
	sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p; s|^--- a/\([^[:space:]]*\).*|\1|p' \
		"$PATCHES/$p"
done | sort -u)
for f in $touched; do
	if [ -e "$base/$f" ] && [ ! -e "$stage_dir/$f" ]; then
		mkdir -p "$stage_dir/$(dirname "$f")"
		cp -p "$base/$f" "$stage_dir/$f"
	fi
done
for p in "${series[@]}"; do
	if ! out=$(cd "$stage_dir" && patch -p1 --fuzz=0 --batch --forward \
			--no-backup-if-mismatch -r - <"$PATCHES/$p" 2>&1); then
		printf '%s\n' "$out" >&2
		die "patch patches/$BASE/$p does not apply to $(basename "$base") (no fuzz allowed)"
	fi
done

# 3. Copy what changed into the tree; put back pristine files that a previous
#    assembly changed and this one no longer does.
rsync -rc --itemize-changes "$stage_dir/" "$SRC/" | sed -n 's/^>f[^ ]* /assemble: updated /p'
manifest=$(cd "$stage_dir" && find . -type f | sed 's|^\./||' | sort)
comm -23 "$SRC/.mrt-manifest" <(printf '%s\n' "$manifest") | while read -r f; do
	[ -n "$f" ] || continue
	if [ -e "$base/$f" ]; then
		rsync -c "$base/$f" "$SRC/$f"
		echo "assemble: restored pristine $f"
	else
		rm -f "$SRC/$f"
		echo "assemble: removed $f"
	fi
done
printf '%s\n' "$manifest" >"$SRC/.mrt-manifest"
echo "assemble: base $(make -s -C "$SRC" kernelversion) ($base), $(echo "$new" | grep -c . || true) new files, ${#series[@]} patches"
