#!/usr/bin/env bash
# Brings up a local control plane on 127.0.0.1 from the cached binaries:
# etcd, kube-apiserver, kube-controller-manager and the kwok controller (fake
# nodes and pods), installs the hwameistor.io CRDs, and writes an admin
# kubeconfig to _output/cluster/kubeconfig. hack/cluster-down.sh stops it.
# If bring-up fails or is interrupted, everything started so far is stopped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ETCD_PORT="${ETCD_PORT:-12379}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
KCM_PORT="${KCM_PORT:-10257}"
KWOK_PORT="${KWOK_PORT:-10247}"
SERVICE_CIDR="${SERVICE_CIDR:-10.96.0.0/16}"
# Fake nodes renew their lease every NODE_LEASE_SECONDS/4 (kubelet's default
# 40s); thousands of nodes lengthen it so the renewals do not crowd out the
# load a run measures. The node lifecycle controller's grace follows.
NODE_LEASE_SECONDS="${NODE_LEASE_SECONDS:-40}"

bin="$("${HACK_DIR}/build-control-plane.sh")"

if [[ -f "${CLUSTER_DIR}/pids" ]]; then
  log "a cluster seems to be running (${CLUSTER_DIR}/pids); stopping it first"
  "${HACK_DIR}/cluster-down.sh"
fi
mkdir -p "${CLUSTER_DIR}"/{pki,logs,etcd}
: > "${CLUSTER_DIR}/pids"

bringup_ok=""
cleanup() { [[ -n "${bringup_ok}" ]] || { log "bring-up did not finish; tearing down"; "${HACK_DIR}/cluster-down.sh"; }; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in its own session, logs to logs/NAME.log.
start() {
  local name="$1"; shift
  setsid "$@" >"${CLUSTER_DIR}/logs/${name}.log" 2>&1 < /dev/null &
  echo "$! ${name}" >> "${CLUSTER_DIR}/pids"
}

# wait_for NAME URL: polls URL until it answers 200 "ok".
wait_for() {
  local name="$1" url="$2" i
  for i in $(seq 1 120); do
    if curl -fsk --max-time 2 -H "Authorization: Bearer ${token}" "${url}" >/dev/null 2>&1; then
      log "${name} is ready"; return 0
    fi
    if ! kill -0 "$(awk -v n="${name}" '$2==n {print $1}' "${CLUSTER_DIR}/pids")" 2>/dev/null; then
      tail -n 30 "${CLUSTER_DIR}/logs/${name}.log" >&2
      die "${name} exited; log: ${CLUSTER_DIR}/logs/${name}.log"
    fi
    sleep 0.5
  done
  tail -n 30 "${CLUSTER_DIR}/logs/${name}.log" >&2
  die "${name} did not become ready at ${url}"
}

pki="${CLUSTER_DIR}/pki"
if [[ ! -f "${pki}/sa.key" ]]; then
  openssl genrsa -out "${pki}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=hwameistor-local-ca" \
    -keyout "${pki}/ca.key" -out "${pki}/ca.crt" 2>/dev/null
fi
token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "${token},admin,admin,system:masters" > "${pki}/tokens.csv"

start etcd "${bin}/etcd" \
  --data-dir "${CLUSTER_DIR}/etcd" --name local \
  --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster "local=http://127.0.0.1:${ETCD_PEER_PORT}" \
  --unsafe-no-fsync --quota-backend-bytes=8589934592
wait_for etcd "http://127.0.0.1:${ETCD_PORT}/health"

start kube-apiserver "${bin}/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:${ETCD_PORT}" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${APISERVER_PORT}" \
  --cert-dir "${pki}/apiserver" \
  --token-auth-file "${pki}/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "${pki}/sa.pub" \
  --service-account-signing-key-file "${pki}/sa.key" \
  --service-cluster-ip-range "${SERVICE_CIDR}" \
  --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
  --enable-priority-and-fairness=false
wait_for kube-apiserver "https://127.0.0.1:${APISERVER_PORT}/readyz"

cat > "${KUBECONFIG_FILE}" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: ${token}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KCFG

start kube-controller-manager "${bin}/kube-controller-manager" \
  --kubeconfig "${KUBECONFIG_FILE}" \
  --authentication-kubeconfig "${KUBECONFIG_FILE}" --authorization-kubeconfig "${KUBECONFIG_FILE}" \
  --bind-address 127.0.0.1 --secure-port "${KCM_PORT}" --cert-dir "${pki}/kcm" \
  --leader-elect=false \
  --service-account-private-key-file "${pki}/sa.key" --root-ca-file "${pki}/ca.crt" \
  --use-service-account-credentials=false \
  --node-monitor-grace-period "$((NODE_LEASE_SECONDS + 20))s" \
  --controllers '*,-node-ipam-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller' \
  --kube-api-qps 500 --kube-api-burst 1000
wait_for kube-controller-manager "https://127.0.0.1:${KCM_PORT}/healthz"

stages="$(cd "${HACK_DIR}/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
start kwok "${bin}/kwok" \
  --kubeconfig "${KUBECONFIG_FILE}" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds "${NODE_LEASE_SECONDS}" \
  --server-address "127.0.0.1:${KWOK_PORT}" \
  --config "${stages}/node/fast/node-initialize.yaml" \
  --config "${stages}/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
  --config "${stages}/pod/fast/pod-ready.yaml" \
  --config "${stages}/pod/fast/pod-complete.yaml" \
  --config "${stages}/pod/fast/pod-delete.yaml"
wait_for kwok "http://127.0.0.1:${KWOK_PORT}/healthz"

kubectl=("${bin}/kubectl" --kubeconfig "${KUBECONFIG_FILE}")
"${kubectl[@]}" apply --server-side -k "${ROOT_DIR}/manifests/crds" >/dev/null
"${kubectl[@]}" wait --for condition=established --timeout=60s crd -l app.kubernetes.io/part-of=hwameistor-local >/dev/null

bringup_ok=1
log "cluster is up; kubeconfig: ${KUBECONFIG_FILE}"
log "try: export KUBECONFIG=${KUBECONFIG_FILE} PATH=${bin}:\$PATH; kubectl get lsn,lv,lvr,lvg,lvmigrate,lvconvert,lvexpand"
