#!/usr/bin/env bash
# Runs the VM suite (test/vm): builds (or reuses) the test guests' image and
# the pinned control plane, then boots two guests under qemu and runs the
# storage path on a real kernel in them. Output goes to stdout and is
# appended to the log given as $1 (default _output/test-vm.log).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${ROOT_DIR}"

log_file="${1:-_output/test-vm.log}"
mkdir -p "$(dirname "${log_file}")"
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$("${HACK_DIR}/build-control-plane.sh")}"
start=$(date +%s)
export HWAMEISTOR_VM_IMAGE="$("${HACK_DIR}/build-guest-image.sh" | tail -n 1)"
log "guest image ready in $(( $(date +%s) - start ))s: ${HWAMEISTOR_VM_IMAGE}"
log "go test ./test/vm (two guests under qemu)"
rc=0
go test -count=1 -timeout 40m -v ./test/vm/ > >(tee -a "${log_file}" | grep --line-buffered -E '^(\s*--- |FAIL|ok|panic|vm: |\s+\S+_test\.go:)') 2>&1 || rc=1
sleep 0.2 # let the output filter drain
log "VM suite finished in $(( $(date +%s) - start ))s"
exit "${rc}"
