#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl, kwok,
# kwokctl and the CSI sidecars (csi-provisioner, csi-resizer) from the pinned
# Go modules into the cache folder (hack/lib.sh
# BIN_DIR) and prints that folder. Nothing is rebuilt when every binary for the
# current pins is already there. Set FORCE=1 to rebuild.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=(etcd kube-apiserver kube-controller-manager kubectl kwok kwokctl csi-provisioner csi-resizer)
missing=()
check() {
  missing=()
  for b in "${want[@]}"; do
    [[ -x "${BIN_DIR}/${b}" && -z "${FORCE:-}" ]] || missing+=("$b")
  done
  [[ ${#missing[@]} -eq 0 ]]
}
if check; then
  log "control-plane binaries are cached in ${BIN_DIR}"
  echo "${BIN_DIR}"
  exit 0
fi

# One build at a time: callers that start together (test packages, a demo)
# wait for the first and then find its binaries.
mkdir -p "${BIN_DIR}"
exec 9>"${BIN_DIR}.lock"
if ! flock -n 9; then
  log "another build of the control plane is running; waiting for it"
  flock 9
  if check; then
    echo "${BIN_DIR}"
    exit 0
  fi
fi
tmp="$(mktemp -d "${BIN_DIR}.tmp.XXXX")"
trap 'rm -rf "${tmp}"' EXIT
start=$(date +%s)

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

log "building control-plane binaries (${missing[*]}) into ${BIN_DIR}; this takes several minutes the first time"
(
  cd "${ROOT_DIR}"
  CGO_ENABLED=0 go build -trimpath -ldflags "${kube_ldflags}" -o "${tmp}/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
)
(
  cd "${HACK_DIR}/etcd"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${tmp}/etcd" .
)
(
  cd "${HACK_DIR}/kwok"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" -o "${tmp}/" \
    sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
)
(
  cd "${HACK_DIR}/sidecars"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${PROVISIONER_VERSION}" -o "${tmp}/" \
    github.com/kubernetes-csi/external-provisioner/v5/cmd/csi-provisioner
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${RESIZER_VERSION}" -o "${tmp}/" \
    github.com/kubernetes-csi/external-resizer/cmd/csi-resizer
)
mv -f "${tmp}"/* "${BIN_DIR}/"
log "built in $(( $(date +%s) - start ))s"
echo "${BIN_DIR}"
