#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Assemble build/src = pristine base + the repository's new kernel files +
# patches/series applied strictly (no fuzz). Incremental: only files whose
# content changed are rewritten, so kbuild rebuilds only what depends on them.
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

# 1. The repository's new files. None may shadow an upstream file: changes to
#    upstream files are patches.
cd "$REPO"
new=$(for d in $KERNEL_DIRS; do if [ -d "$d" ]; then find "$d" -type f; fi; done | sort)
for f in $new; do
	[ -e "$base/$f" ] &&
		die "$f exists in the base tree: keep changes to it as a patch in patches/"
	mkdir -p "$stage_dir/$(dirname "$f")"
	cp -p "$f" "$stage_dir/$f"
done

# 2. The pristine version of every file a patch touches, then the patches.
series=()
if [ -f patches/series ]; then
	while read -r p; do
		[ -z "$p" ] || [ "${p:0:1}" = "#" ] || series+=("$p")
	done <patches/series
fi
touched=$(for p in "${series[@]}"; do
	[ -f "patches/$p" ] || die "patches/series names missing patch $p"
	sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p; s|^--- a/\([^[:space:]]*\).*|\1|p' \
		"patches/$p"
done | sort -u)
for f in $touched; do
	if [ -e "$base/$f" ] && [ ! -e "$stage_dir/$f" ]; then
		mkdir -p "$stage_dir/$(dirname "$f")"
		cp -p "$base/$f" "$stage_dir/$f"
	fi
done
for p in "${series[@]}"; do
	if ! out=$(cd "$stage_dir" && patch -p1 --fuzz=0 --batch --forward \
			--no-backup-if-mismatch -r - <"$REPO/patches/$p" 2>&1); then
		printf '%s\n' "$out" >&2
		die "patch patches/$p does not apply to $(basename "$base") (no fuzz allowed)"
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
