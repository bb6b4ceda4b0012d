#!/usr/bin/env bash
# Builds the test guests' kernel, initramfs and root disk (internal/vm boots
# them under qemu) from Debian packages only, into the cache folder
# ${CACHE_ROOT}/vm/<key> and prints that folder. The key hashes the package
# list, the kernel package apt resolves, and this script with its guest files
# (hack/vm/), so a change builds anew and a fresh clone reuses the cache.
#
#   vmlinuz     Debian's kernel (linux-image-amd64's current dependency)
#   initrd.gz   busybox-static, the modules the root disk needs, hack/vm/initramfs-init
#   root.img    ext4: a minbase Debian root (mmdebstrap) with lvm2, xfsprogs,
#               e2fsprogs, drbd-utils, ... the kernel's modules, hack/vm/hwvm-init
#
# Needs root (mmdebstrap --mode=root, chroot) and the Debian packages
# mmdebstrap, cpio, e2fsprogs (installed when missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# What the guests run: storage (lvm2, device-mapper tools, file systems,
# DRBD's userland, cryptsetup) and the basics to drive them.
GUEST_PACKAGES=(lvm2 dmsetup thin-provisioning-tools xfsprogs e2fsprogs util-linux mount kmod
                drbd-utils cryptsetup-bin iproute2 procps busybox ca-certificates)
# Modules the initramfs loads to reach the root disk; the root loads the rest.
INITRD_MODULES=(virtio_pci virtio_blk ext4)

[[ "$(id -u)" -eq 0 ]] || die "building the guest image needs root (mmdebstrap --mode=root, chroot)"
need=()
for c in mmdebstrap cpio mke2fs; do command -v "$c" >/dev/null 2>&1 || need+=("$c"); done
if [[ ${#need[@]} -gt 0 ]]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^mke2fs$/e2fsprogs/' | sort -u | tr '\n' ' ')
  log "installing Debian packages: ${pkgs}"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${pkgs} >/dev/null
fi

resolve_kernel() {
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1
}
kernel_pkg=$(resolve_kernel)
if [[ -z "${kernel_pkg}" ]]; then
  log "apt has no package lists yet: apt-get update"
  apt-get update -qq
  kernel_pkg=$(resolve_kernel)
fi
[[ -n "${kernel_pkg}" ]] || die "apt cannot resolve linux-image-amd64 to a kernel package"
kver=${kernel_pkg#linux-image-}

key=$( { echo "${kernel_pkg}"; printf '%s\n' "${GUEST_PACKAGES[@]}" "${INITRD_MODULES[@]}";
         cat "${BASH_SOURCE[0]}" "${HACK_DIR}"/vm/*; } | sha256sum | cut -c1-12)
out="${CACHE_ROOT}/vm/${kver}_${key}"
if [[ -f "${out}/root.img" && -f "${out}/initrd.gz" && -f "${out}/vmlinuz" && -z "${FORCE:-}" ]]; then
  log "guest image is cached in ${out}"
  echo "${out}"
  exit 0
fi

start=$(date +%s)
mkdir -p "${CACHE_ROOT}/vm"
tmp=$(mktemp -d "${CACHE_ROOT}/vm/.build.XXXX")
trap 'rm -rf "${tmp}"' EXIT
log "building the guest image (${kernel_pkg}, ${#GUEST_PACKAGES[@]} packages) into ${out}"

# Debian packages only, fetched with the host's apt configuration.
chmod 0777 "${tmp}"
(cd "${tmp}" && apt-get download -q "${kernel_pkg}" busybox-static >/dev/null 2>&1) ||
  die "apt-get download ${kernel_pkg} busybox-static failed"
mkdir "${tmp}/kernel" "${tmp}/busybox"
dpkg -x "${tmp}/${kernel_pkg}"_*.deb "${tmp}/kernel"
dpkg -x "${tmp}"/busybox-static_*.deb "${tmp}/busybox"

root="${tmp}/root"
include=$(IFS=,; echo "${GUEST_PACKAGES[*]}")
mmdebstrap --mode=root --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
  --include="${include}" bookworm "${root}" > "${tmp}/mmdebstrap.log" 2>&1 ||
  { tail -20 "${tmp}/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
mkdir -p "${root}/lib/modules"
cp -a "${tmp}/kernel/lib/modules/${kver}" "${root}/lib/modules/"
chroot "${root}" depmod "${kver}"
install -m 0755 "${HACK_DIR}/vm/hwvm-init" "${root}/sbin/hwvm-init"
# No udevd runs in a guest (as in the node plugin's container): lvm creates
# the device nodes itself and does not wait for udev.
cat > "${root}/etc/lvm/lvmlocal.conf" <<'CONF'
devices {
	obtain_device_list_from_udev = 0
}
activation {
	udev_sync = 0
	udev_rules = 0
}
CONF
rm -rf "${root}/var/cache/apt/archives"/*.deb "${root}/usr/share/doc" "${root}/usr/share/man"

# initramfs: busybox, the modules for the root disk in load order, /init.
ird="${tmp}/initrd"
mkdir -p "${ird}"/{bin,dev,proc,sys,newroot,lib/modules}
cp "${tmp}/busybox/bin/busybox" "${ird}/bin/busybox"
: > "${ird}/modules.load"
for m in "${INITRD_MODULES[@]}"; do
  chroot "${root}" modprobe --show-depends -S "${kver}" "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "${root}${ko}" "${ird}/lib/modules/"
  echo "/lib/modules/$(basename "${ko}")" >> "${ird}/modules.load"
done
install -m 0755 "${HACK_DIR}/vm/initramfs-init" "${ird}/init"
(cd "${ird}" && find . | cpio -o -H newc --quiet | gzip -1) > "${tmp}/initrd.gz"

size_mb=$(( $(du -sm "${root}" | cut -f1) + 512 ))
mke2fs -q -t ext4 -d "${root}" -L hwvm-root "${tmp}/root.img" "${size_mb}M" >&2
cp "${tmp}/kernel/boot/vmlinuz-${kver}" "${tmp}/vmlinuz"

mkdir -p "${out}"
mv "${tmp}/vmlinuz" "${tmp}/initrd.gz" "${out}/"
mv "${tmp}/root.img" "${out}/root.img"   # last: its presence marks a complete image
log "guest image built in $(( $(date +%s) - start ))s"
echo "${out}"
