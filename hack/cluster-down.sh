#!/usr/bin/env bash
# Stops every process hack/cluster-up.sh started (TERM, then KILL after a
# grace period) and removes the cluster's state. Safe to run twice.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pids=()
if [[ -f "${CLUSTER_DIR}/pids" ]]; then
  while read -r pid _; do pids+=("${pid}"); done < "${CLUSTER_DIR}/pids"
fi
# Also catch processes whose pid file entry was lost: every component is
# started with a path inside CLUSTER_DIR on its command line.
while read -r pid; do pids+=("${pid}"); done < <(pgrep -f -- "${CLUSTER_DIR}/" || true)

alive() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
if [[ ${#pids[@]} -gt 0 ]]; then
  # Each component runs in its own session: signal the whole group.
  for p in "${pids[@]}"; do kill -TERM -- "-${p}" 2>/dev/null || kill -TERM "${p}" 2>/dev/null || true; done
  for _ in $(seq 1 40); do alive || break; sleep 0.25; done
  for p in "${pids[@]}"; do kill -KILL -- "-${p}" 2>/dev/null || kill -KILL "${p}" 2>/dev/null || true; done
fi
rm -rf "${CLUSTER_DIR}"
log "cluster is down"
