#!/usr/bin/env bash
# Records the lvm2 outputs the lvm backend's table tests replay. Run as root on
# a machine with lvm2 and loop devices and no volume groups of these names:
#   sudo csidriver/backend/lvm/testdata/record.sh
# It builds, on sparse files attached as loop devices:
#   LocalStorage_PoolHDD  two PVs of 1 GiB: pvc-aaa (ours, 12 MiB, tag
#                         hwameistor.io/volume=pvc-aaa), pvc-bbb (ours, 8 MiB,
#                         striped over both PVs), other (not ours, 8 MiB)
#   LocalStorage_PoolSSD  one PV of 512 MiB, no LVs
#   a PV of 64 MiB in no volume group
# and records the reports and the failure messages, then removes everything.
# LVs are created with activation disabled (metadata only), because
# device-mapper is missing on the build machines; the reports are the same
# as with active LVs, and stderr has extra "Activation disabled" warnings.
# lvcreate_no_device_mapper.stderr is not written here: it is what plain
# lvcreate (activation on) prints on a machine without device-mapper:
#   lvm lvcreate -y -Wy -Zy -L 8388608b -n x VG 2>lvcreate_no_device_mapper.stderr
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export LC_ALL=C LVM_SUPPRESS_FD_WARNINGS=1
META='global { activation=0 }'
REPORT=(--reportformat json --units b --nosuffix)
VG_FIELDS=vg_name,vg_size,vg_free,vg_extent_size,pv_count
PV_FIELDS=pv_name,vg_name,pv_size,pv_free
LV_FIELDS=lv_name,vg_name,lv_size,lv_tags,lv_path
OWNER=hwameistor.io/owner=lvm.hwameistor.io
HDD=LocalStorage_PoolHDD
SSD=LocalStorage_PoolSSD

for vg in "$HDD" "$SSD"; do
  if lvm vgs "$vg" >/dev/null 2>&1; then echo "volume group $vg exists; refusing to touch it" >&2; exit 1; fi
done

work=$(mktemp -d)
loops=()
cleanup() {
  lvm vgremove --config "$META" -f "$HDD" "$SSD" >/dev/null 2>&1 || true
  for l in "${loops[@]}"; do lvm pvremove -y "$l" >/dev/null 2>&1 || true; losetup -d "$l" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for f in hdd1:1G hdd2:1G ssd1:512M orphan:64M; do
  truncate -s "${f#*:}" "$work/${f%:*}.img"
  loops+=("$(losetup --find --show "$work/${f%:*}.img")")
done
lvm pvcreate -q "${loops[@]}" # loops[3] stays in no VG
lvm vgcreate -q "$HDD" "${loops[0]}" "${loops[1]}"
lvm vgcreate -q "$SSD" "${loops[2]}"

lvm lvcreate --config "$META" -q -y -Wy -Zy -L 12582912b -n pvc-aaa --addtag "$OWNER" --addtag hwameistor.io/volume=pvc-aaa "$HDD"
lvm lvcreate --config "$META" -q -y -Wy -Zy -L 8388608b -n pvc-bbb -i 2 --addtag "$OWNER" "$HDD"
lvm lvcreate --config "$META" -q -y -Wy -Zy -L 8388608b -n other "$HDD"

# Pools: one fullreport of every VG, and of the PVs in none (loops[3]).
lvm fullreport "${REPORT[@]}" --configreport vg -o "$VG_FIELDS" --configreport pv -o "$PV_FIELDS" \
  --configreport lv -o "$LV_FIELDS" --configreport pvseg -o pvseg_start --configreport seg -o seg_start >fullreport.json
lvm vgs "${REPORT[@]}" -o "$VG_FIELDS" "$HDD" >vgs_hdd.json
lvm vgs "${REPORT[@]}" -o "$VG_FIELDS" "$SSD" >vgs_ssd_empty.json
lvm lvs "${REPORT[@]}" -o "$LV_FIELDS" "$HDD" >lvs_hdd.json
lvm lvs "${REPORT[@]}" -o "$LV_FIELDS" "$SSD" >lvs_ssd_empty.json
# A segment field (stripes) makes lvs print one row per segment.
lvm lvextend --config "$META" -q -L 16777216b "$HDD/pvc-aaa"
lvm lvs "${REPORT[@]}" -o "$LV_FIELDS" "$HDD" >lvs_hdd_extended.json
lvm lvs "${REPORT[@]}" -o "$LV_FIELDS,stripes" "$HDD" >lvs_hdd_segments.json

lvm vgs "${REPORT[@]}" -o "$VG_FIELDS" NoSuchVG >vgs_missing.json 2>vgs_missing.stderr && exit 1
lvm lvs "${REPORT[@]}" -o "$LV_FIELDS" NoSuchVG >/dev/null 2>lvs_missing.stderr && exit 1
lvm lvcreate --config "$META" -y -Wy -Zy -L 8388608b -n pvc-bbb "$HDD" 2>lvcreate_exists.stderr && exit 1
lvm lvcreate --config "$META" -y -Wy -Zy -L 4294967296b -n big "$HDD" 2>lvcreate_insufficient.stderr && exit 1
lvm lvextend --config "$META" -L 4294967296b "$HDD/pvc-aaa" 2>lvextend_insufficient.stderr && exit 1
lvm lvremove --config "$META" -y "$HDD/nosuch" 2>lvremove_missing.stderr && exit 1
# Fill the first PV so that a striped LV cannot find extents on both PVs
# although the VG as a whole has them.
read -r pe alloc < <(lvm pvs --noheadings -o pv_pe_count,pv_pe_alloc_count "${loops[0]}")
free0=$((pe - alloc))
lvm lvcreate --config "$META" -q -y -Wy -Zy -l "$free0" -n fill "$HDD" "${loops[0]}"
lvm lvcreate --config "$META" -y -Wy -Zy -L 8388608b -n pvc-ccc -i 2 "$HDD" 2>lvcreate_no_suitable_extents.stderr && exit 1
# The loop device names differ per run; keep the recorded files stable.
for i in "${!loops[@]}"; do sed -i "s#${loops[$i]}\"#@LOOP$i@\"#" fullreport.json; done
sed -i 's#@LOOP\([0-9]\)@#/dev/loop\1#' fullreport.json
echo "recorded into $(pwd)"
