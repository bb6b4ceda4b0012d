#!/usr/bin/env bash
# Checks that the pins in hack/lib.sh agree with the go.mod files, so the
# cached control plane is the one the code is built against.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fail=0
check() { # FILE REGEX WANT
  local got; got=$(grep -E "$2" "$1" | head -n1 | awk '{print $NF}')
  if [[ "${got}" != "$3" ]]; then echo "pin mismatch in $1: ${2} is ${got:-missing}, hack/lib.sh says $3"; fail=1; fi
}
check "${ROOT_DIR}/go.mod" '^\s+k8s.io/kubernetes v' "${KUBE_VERSION}"
check "${ROOT_DIR}/go.mod" '^\s+k8s.io/api => ' "v0.${KUBE_VERSION#v1.}"
check "${HACK_DIR}/etcd/go.mod" 'go.etcd.io/etcd/server/v3 v' "${ETCD_VERSION}"
check "${HACK_DIR}/kwok/go.mod" 'sigs.k8s.io/kwok v' "${KWOK_VERSION}"
check "${HACK_DIR}/sidecars/go.mod" 'external-provisioner/v5 v' "${PROVISIONER_VERSION}"
check "${HACK_DIR}/sidecars/go.mod" 'external-resizer v' "${RESIZER_VERSION}"
# Every staging module must be replaced to the same version.
bad=$(grep -E '^\s+k8s.io/[a-z-]+ => k8s.io/' "${ROOT_DIR}/go.mod" | grep -v "v0.${KUBE_VERSION#v1.}" | grep -v sample-apiserver || true)
[[ -z "${bad}" ]] || { echo "staging modules not at v0.${KUBE_VERSION#v1.}: ${bad}"; fail=1; }
exit "${fail}"
