#!/usr/bin/env bash
# `make bench`: runs the simulator's scale scenarios with hwameistor-scheduler
# and with the stock default-scheduler back to back, the Go benchmarks and
# scheduler_perf, then rewrites the generated section of docs/benchmarks.md
# (hwameistor-sim benchdoc, kwok/benchdoc/README.md).
#
#   BENCH_SCENARIOS  scenarios of kwok/scenarios to run, each with its
#                    -no-volumes twin (default "scale-1k scale-5k")
#   BENCH_SKIP_RUNS  1: run nothing, only regenerate the document from the
#                    reports and output already in _output/bench
#   BENCH_PERF       0: skip scheduler_perf (about 3 minutes)
#   BENCH_BASELINE_TIMEOUT  e.g. 600s: bounds default-scheduler's runs with
#                    volumes (it places well under a pod a second at 1,000
#                    nodes); their report covers that window
#
# A failed run keeps its log and the script goes on; it exits non-zero at
# the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${ROOT_DIR}"

scenarios="${BENCH_SCENARIOS:-scale-1k scale-5k}"
out="_output/bench"
sim="_output/bin/hwameistor-sim"
mkdir -p "${out}"

export KUBEBUILDER_ASSETS="$("${HACK_DIR}/build-control-plane.sh")"
log "building ${sim}"
go build -o "${sim}" ./kwok/cmd/hwameistor-sim

failed=()

# run_scenario NAME SIDE SCHEDULER: one simulator run into ${out}/NAME-SIDE.{json,svg,log}.
# The old report goes first, so that a failed run cannot leave a stale one.
run_scenario() {
  local name=$1 side=$2 scheduler=$3
  local base="${out}/${name}-${side}"
  rm -f "${base}.json" "${base}.svg"
  if [[ ! -f "kwok/scenarios/${name}.yaml" ]]; then
    echo "no scenario kwok/scenarios/${name}.yaml" | tee "${base}.log" >&2
    failed+=("${name} (${scheduler})")
    return
  fi
  log "run ${name} with ${scheduler} (log ${base}.log)"
  local timeout=()
  # The stock scheduler with capacity tracking is slow at scale (docs/benchmarks.md):
  # BENCH_BASELINE_TIMEOUT bounds its runs with volumes; the report covers that window.
  if [[ "${side}" == default && "${name}" != *-no-volumes && -n "${BENCH_BASELINE_TIMEOUT:-}" ]]; then
    timeout=(--timeout "${BENCH_BASELINE_TIMEOUT}")
  fi
  if ! "${sim}" run --scenario "kwok/scenarios/${name}.yaml" --scheduler "${scheduler}" "${timeout[@]}" \
      --report "${base}.json" 2>&1 | tee "${base}.log"; then
    log "run ${name} with ${scheduler} failed (log ${base}.log)"
    failed+=("${name} (${scheduler})")
  fi
}

# go_bench FILE ARGS...: a go test -bench run into FILE; the result lines are
# echoed.
go_bench() {
  local file=$1; shift
  log "go test $* (output ${file})"
  if ! go test "$@" > "${file}" 2>&1; then
    failed+=("go test $*")
  fi
  grep -E '^(Benchmark|ok|FAIL|--- FAIL)' "${file}" || true
}

if [[ "${BENCH_SKIP_RUNS:-0}" != 1 ]]; then
  for s in ${scenarios}; do
    for name in "${s}" "${s}-no-volumes"; do
      run_scenario "${name}" hwameistor hwameistor-scheduler
      run_scenario "${name}" default default-scheduler
    done
  done
  go_bench "${out}/go-bench.txt" -run x -bench . -benchmem -count 3 -timeout 60m \
    ./plugins/localstorage/ ./internal/placement/
  if [[ "${BENCH_PERF:-1}" != 0 ]]; then
    # -data-items-dir keeps the harness's data files out of the package folder.
    go_bench "${out}/perf.txt" -run x -bench BenchmarkPerfScheduling -benchtime 1x -timeout 60m ./test/perf/ \
      -args -perf-scheduling-label-filter=performance,-short -data-items-dir "${ROOT_DIR}/${out}/perf-data"
  else
    rm -f "${out}/perf.txt"
  fi
else
  log "BENCH_SKIP_RUNS=1: regenerating docs/benchmarks.md from ${out} only"
fi

log "writing docs/benchmarks.md"
if ! "${sim}" benchdoc --dir "${out}" --doc docs/benchmarks.md --charts docs/bench \
    --scenarios "${scenarios}" --pins "$(basename "${KUBEBUILDER_ASSETS}")"; then
  failed+=("benchdoc")
fi

log "reports, charts and logs: ${out}/<scenario>-{hwameistor,default}.{json,svg,log}"
log "Go benchmarks: ${out}/go-bench.txt, scheduler_perf: ${out}/perf.txt"
log "document: docs/benchmarks.md (charts in docs/bench/)"
if [[ ${#failed[@]} -gt 0 ]]; then
  log "failed: ${failed[*]}"
  exit 1
fi
