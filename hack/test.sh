#!/usr/bin/env bash
# Runs every Go test: all packages once, then the packages with shared state
# again under the race detector, then the VM suite (hack/test-vm.sh: test
# guests under qemu, alone so that the emulated guests get the CPUs). Integration tests get the pinned control
# plane through KUBEBUILDER_ASSETS. Prints a summary of tests run and the
# skipped tests, and fails on a skip not on hack/test-skips.allow.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "${HACK_DIR}/skips.sh"
cd "${ROOT_DIR}"

export KUBEBUILDER_ASSETS="$("${HACK_DIR}/build-control-plane.sh")"
mkdir -p _output
log="_output/test.log"
: > "${log}"

flags=(-count=1 -timeout 30m)
rc=0
pkgs=$(go list ./... | grep -v '/test/vm$')
log "go test ./... but test/vm (KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS})"
# shellcheck disable=SC2086
go test "${flags[@]}" -v ${pkgs} > >(tee -a "${log}" | grep --line-buffered -E '^(--- |FAIL|ok|panic|\s+\S+_test\.go:)') 2>&1 || rc=1

race_pkgs=$(go list ./internal/placement/... ./internal/vm/... ./plugins/... ./controllers/... ./csidriver/... 2>/dev/null || true)
if [[ -n "${race_pkgs}" ]]; then
  log "go test -race on: $(echo ${race_pkgs} | wc -w) packages"
  # shellcheck disable=SC2086
  go test "${flags[@]}" -race -v ${race_pkgs} > >(tee -a "${log}" | grep --line-buffered -E '^(--- |FAIL|ok|panic|WARNING: DATA RACE|\s+\S+_test\.go:)') 2>&1 || rc=1
fi

"${HACK_DIR}/test-vm.sh" "${log}" || rc=1

sleep 0.2 # let the output filters drain
passed=$(grep -cE '^\s*--- PASS' "${log}" || true)
failed=$(grep -cE '^\s*--- FAIL' "${log}" || true)
skipped=$(grep -cE '^\s*--- SKIP' "${log}" || true)
log "tests: ${passed} passed, ${failed} failed, ${skipped} skipped (full log: ${log})"
check_skips "${log}" "${HACK_DIR}/test-skips.allow" || rc=1
exit "${rc}"
