#!/usr/bin/env bash
# The local demo. Today it brings up the real control plane with the
# hwameistor.io API, registers a fake node (kwok) with a LocalStorageNode and
# shows them; the simulator (kwok/) will replace it with the full flow:
# volumes scheduled and provisioned on fake nodes, then a drain that migrates
# them. The cluster stays up afterwards; `make cluster-down` stops it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"${HACK_DIR}/cluster-up.sh"
bin="$("${HACK_DIR}/build-control-plane.sh" 2>/dev/null)"
k() { "${bin}/kubectl" --kubeconfig "${KUBECONFIG_FILE}" "$@"; }

k apply -f "${ROOT_DIR}/manifests/samples/fake-node.yaml"
k patch lsn demo-node-0 --subresource=status --type=merge --patch-file "${ROOT_DIR}/manifests/samples/fake-node-status.json" >/dev/null
k wait --for=condition=Ready --timeout=60s node/demo-node-0

echo
k get nodes -o wide
echo
k get crd -l app.kubernetes.io/part-of=hwameistor-local
echo
k get lsn,lv,lvr,lvg,lvmigrate,lvconvert,lvexpand
cat <<MSG

The control plane is running. Try:
  export KUBECONFIG=${KUBECONFIG_FILE} PATH=${bin}:\$PATH
  kubectl get lsn demo-node-0 -o yaml          # pool capacity as the scheduler reads it
  kubectl explain localvolumemigrate.spec      # the migration API
  kubectl apply -f - <<<'{"apiVersion":"hwameistor.io/v1alpha1","kind":"LocalVolume","metadata":{"name":"bad"},"spec":{"poolName":"LocalStorage_PoolHDD","requiredCapacityBytes":1,"replicaNumber":3}}'
                                               # a validation error that names the field
Stop it with: make cluster-down
MSG
