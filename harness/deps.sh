#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install the Debian packages the harness needs, only those missing.
set -euo pipefail
. "$(dirname "$0")/common.sh"

PKGS=(build-essential bc bison flex libelf-dev libssl-dev cpio rsync
      python3 xz-utils ccache sparse coccinelle patch perl
      python3-sphinx python3-sphinx-rtd-theme qemu-system-x86 git
      python3-ply python3-git dpkg-dev spin
      ibverbs-utils ibverbs-providers libibverbs-dev iproute2 busybox-static)
# 7.3 is downloaded by harness/base.sh, not installed (another suite).
[ -n "${KSRC:-}" ] || [ "$BASE" != 6.12 ] || PKGS+=(linux-source-6.12)
PKGS+=("$@")

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	say "deps: all ${#PKGS[@]} packages present"
	exit 0
fi
say "deps: installing ${missing[*]}"
[ "$(id -u)" -eq 0 ] || die "need root to apt-get install: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$TOP_BUILD"
apt-get update -q >"$TOP_BUILD/apt-update.log" 2>&1 ||
	die "apt-get update failed, see $TOP_BUILD/apt-update.log"
apt-get install -y -q --no-install-recommends "${missing[@]}" \
	>"$TOP_BUILD/apt-install.log" 2>&1 ||
	die "apt-get install failed, see $TOP_BUILD/apt-install.log"
