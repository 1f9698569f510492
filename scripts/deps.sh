#!/usr/bin/env bash
# Install everything Holdfast needs to build and test on Debian 12 (bookworm).
# Runs as root, or through sudo otherwise. Skips apt entirely when all packages are present.
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config git ca-certificates
	clang clang-format libclang-rt-14-dev
	libaio-dev libconfig-dev libmbedtls-dev libcmocka-dev libjansson-dev libsqlite3-dev
	libblkid-dev e2fsprogs xfsprogs
	libiscsi-dev libiscsi-bin tgt iperf3
	python3 iproute2 procps util-linux coreutils
)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "deps.sh: run as root or install sudo" >&2; exit 1; }
	SUDO=(sudo)
fi

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	"${missing[@]}"
