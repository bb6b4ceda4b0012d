# shellcheck shell=bash
# Shared settings for the hack/ scripts: the version pins and where built
# control-plane binaries and cluster state live. Source it; do not run it.

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "${HACK_DIR}/.." && pwd)"

# Pins. They must agree with go.mod, hack/etcd/go.mod, hack/kwok/go.mod and
# hack/sidecars/go.mod;
# hack/verify-pins.sh checks that they do.
KUBE_VERSION="v1.34.10"
ETCD_VERSION="v3.6.11"
KWOK_VERSION="v0.8.0"
PROVISIONER_VERSION="v5.3.0"
RESIZER_VERSION="v1.14.0"

GO_VERSION="$(go env GOVERSION)"
# Binaries are cached outside the checkout so that a fresh clone (CI) reuses
# them; the folder name carries every pin, so a changed pin builds anew.
CACHE_ROOT="${HWAMEISTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hwameistor-local}"
BIN_DIR="${CACHE_ROOT}/bin/k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_prov-${PROVISIONER_VERSION}_rsz-${RESIZER_VERSION}_${GO_VERSION}"

# Cluster state (data, logs, kubeconfig) stays in an ignored folder of the checkout.
CLUSTER_DIR="${HWAMEISTOR_CLUSTER_DIR:-${ROOT_DIR}/_output/cluster}"
KUBECONFIG_FILE="${CLUSTER_DIR}/kubeconfig"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
