#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, only when missing:
# xfsprogs/e2fsprogs (mkfs), lvm2 (vgs/pvs), util-linux (losetup, mount),
# openssl and curl (control-plane certificates and readiness checks), qemu,
# mmdebstrap and cpio (the test guests of internal/vm, whose image
# hack/build-guest-image.sh builds), iproute2 (their bridge and taps).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

declare -A need=([mkfs.xfs]=xfsprogs [mkfs.ext4]=e2fsprogs [vgs]=lvm2 [losetup]=util-linux
                 [openssl]=openssl [curl]=curl [setsid]=util-linux [pgrep]=procps
                 [qemu-system-x86_64]=qemu-system-x86 [mmdebstrap]=mmdebstrap [cpio]=cpio [ip]=iproute2)
missing=()
for cmd in "${!need[@]}"; do
  command -v "${cmd}" >/dev/null 2>&1 || PATH="${PATH}:/sbin:/usr/sbin" command -v "${cmd}" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
log "installing Debian packages: ${pkgs}"
sudo_cmd=()
[[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# shellcheck disable=SC2086
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends ${pkgs} >/dev/null
