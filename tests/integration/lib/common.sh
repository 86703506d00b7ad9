# shellcheck shell=bash
# Shared helpers for the integration-test libraries: logging, timers, and an
# ordered list of exit hooks (so docker.sh and harness.sh can both register
# cleanups without overwriting each other's `trap ... EXIT`).
#
# Source it; it is idempotent.
[[ -n "${_ITEST_COMMON_LOADED:-}" ]] && return 0
_ITEST_COMMON_LOADED=1

ITEST_DIR="${ITEST_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

itest_log()  { printf '[itest %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
itest_die()  { itest_log "FATAL: $*"; exit 1; }

# itest_now: seconds since the epoch (integer). Used for the printed timings.
itest_now() { date +%s; }

# Exit hooks run in reverse registration order (last registered, first run),
# so harness cleanup (containers, network) runs before docker.sh stops a
# dockerd that it started itself.
_ITEST_EXIT_HOOKS=()
itest_on_exit() { _ITEST_EXIT_HOOKS+=("$1"); }
_itest_run_exit_hooks() {
  local rc=$? i
  trap - EXIT INT TERM
  for (( i=${#_ITEST_EXIT_HOOKS[@]}-1; i>=0; i-- )); do
    # a failed hook (e.g. cleanup left something behind) fails a run that had passed
    "${_ITEST_EXIT_HOOKS[$i]}" || { itest_log "exit hook ${_ITEST_EXIT_HOOKS[$i]} failed"; (( rc == 0 )) && rc=1; }
  done
  exit "$rc"
}
trap _itest_run_exit_hooks EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# itest_wait_until TIMEOUT_S INTERVAL_S CMD...: run CMD until it succeeds or
# TIMEOUT_S elapse. Bounded in time and (therefore) in count.
itest_wait_until() {
  local timeout=$1 interval=$2 deadline; shift 2
  deadline=$(( $(itest_now) + timeout ))
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    (( $(itest_now) >= deadline )) && return 1
    sleep "$interval"
  done
}

# apt-get install, non-interactive, used only for host prerequisites.
_ITEST_APT_UPDATED=
itest_apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "$_ITEST_APT_UPDATED" ]]; then
    itest_log "apt-get update"
    timeout 300 apt-get update -q >&2 || itest_die "apt-get update failed"
    _ITEST_APT_UPDATED=1
  fi
  itest_log "apt-get install -y $*"
  timeout 600 apt-get install -y -q --no-install-recommends "$@" >&2 || itest_die "apt-get install $* failed"
}
