# shellcheck shell=bash
# check_skips LOG ALLOW: reports the tests that `go test -v` output LOG
# shows as skipped ("--- SKIP: <name>", also TestMain/<pkg> from
# testenv.RequireOrExit) and returns 1 when one is not on the allow list
# ALLOW, or when ALLOW has an entry without a reason. Source it; hack/test.sh
# does, and test/hack tests it.
#
# ALLOW has one entry a line, "<name> # <reason>": name is a test as go test
# prints it (TestX/sub_test, spaces as _), exactly or as a bash glob pattern.
# Lines starting with # and blank lines are ignored.

declare -F log >/dev/null || log() { printf '%s\n' "$*" >&2; }

check_skips() {
  local logfile="$1" allow="$2" line pattern reason name n ok rc=0
  local -a patterns=()
  while IFS= read -r line || [[ -n "${line}" ]]; do
    [[ "${line}" =~ ^[[:space:]]*(#|$) ]] && continue
    pattern="${line%% # *}"
    reason="${line#* # }"
    pattern="${pattern//[[:space:]]/}"
    if [[ "${line}" != *" # "* || -z "${pattern}" || -z "${reason//[[:space:]]/}" ]]; then
      log "error: ${allow}: want \"<test name> # <reason>\", got: ${line}"
      rc=1
      continue
    fi
    patterns+=("${pattern}")
  done < "${allow}"

  local total
  total=$(grep -cE '^[[:space:]]*--- SKIP: ' "${logfile}" || true)
  log "skipped tests: ${total}"
  # Each name once, with how often it was skipped (the -race pass repeats).
  while read -r n name; do
    [[ -n "${name}" ]] || continue
    ok=""
    for pattern in "${patterns[@]}"; do
      # shellcheck disable=SC2053 # the pattern is a glob on purpose
      if [[ "${name}" == "${pattern}" || "${name}" == ${pattern} ]]; then
        ok=1
        break
      fi
    done
    if [[ -n "${ok}" ]]; then
      log "  SKIP ${name} (x${n}): allowed by ${allow}"
    else
      log "  SKIP ${name} (x${n}): NOT ALLOWED: make it run (CI=true fails a missing requirement), or add it to ${allow} with the reason"
      rc=1
    fi
  done < <(sed -nE 's/^[[:space:]]*--- SKIP: ([^[:space:]]+).*/\1/p' "${logfile}" | sort | uniq -c)
  return "${rc}"
}
