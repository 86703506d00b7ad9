# shellcheck shell=bash
# Test harness: a private Docker network, an SSH key pair, "host" containers
# reachable over SSH, PASS/FAIL bookkeeping and cleanup on exit.
#
#   source tests/integration/lib/harness.sh
#   itest_harness_init                      # network + key + EXIT cleanup
#   itest_ip N                              # address .N in ITEST_SUBNET (a /24)
#   itest_start_host NAME IMAGE IP [docker-run args...]   # container gcitest-NAME
#   itest_wait_ssh IP [TIMEOUT_S]           # until sshd accepts our key
#   ssh_run IP 'command'                    # as root, with the test key
#   ssh_put IP LOCAL_FILE REMOTE_PATH       # copy a file (cat over ssh)
#   check "description" cmd args...         # PASS/FAIL line, counted
#   itest_summary                           # prints "N passed, M failed"; rc 1 if M>0
#
# Variables after init: ITEST_NET ITEST_SUBNET ITEST_RUN_ID ITEST_TMP
# ITEST_SSH_KEY (private key path) ITEST_SSH_PUB (public key path).
# Every container gets labels gitlab-cluster-itest=1 and
# gitlab-cluster-itest.run=$ITEST_RUN_ID; cleanup removes them (with their
# anonymous volumes) and the network, also when a check or the script fails.
# Containers left over by an earlier, killed run are removed at init (the
# network name is fixed, so two runs cannot share one machine anyway).
# ITEST_KEEP=1 keeps containers and network for debugging.

_ITEST_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_ITEST_LIB_DIR/common.sh"

ITEST_NET="${ITEST_NET:-gitlab-cluster-itest}"
ITEST_SUBNET="${ITEST_SUBNET:-172.29.77.0/24}"
ITEST_GATEWAY="${ITEST_GATEWAY:-${ITEST_SUBNET%.*}.1}"
ITEST_LABEL=gitlab-cluster-itest
ITEST_RUN_ID="${ITEST_RUN_ID:-$$-$(date +%s)}"
ITEST_PASSED=0
ITEST_FAILED=0
ITEST_FAILED_NAMES=()

itest_ip() { echo "${ITEST_SUBNET%.*}.$1"; }   # assumes a /24

itest_remove_by_label() {   # $1: label filter, e.g. gitlab-cluster-itest=1
  local ids
  ids=$(docker ps -aq --filter "label=$1" 2>/dev/null) || return 0
  [[ -n "$ids" ]] || return 0
  # shellcheck disable=SC2086
  timeout 120 docker rm -f -v $ids >/dev/null 2>&1 || itest_log "warning: could not remove some containers ($1)"
}

_ITEST_CHECK_PID=
_itest_kill_tree() {   # our own check job and its descendants, by pid
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do _itest_kill_tree "$c"; done
  kill -TERM "$1" 2>/dev/null || true
}
_itest_stop_running_check() {
  [[ -n "$_ITEST_CHECK_PID" ]] || return 0
  itest_log "interrupted: stopping the running check (pid $_ITEST_CHECK_PID)"
  _itest_kill_tree "$_ITEST_CHECK_PID"
}

itest_cleanup() {
  if [[ -n "${ITEST_KEEP:-}" ]]; then
    itest_log "ITEST_KEEP set: leaving containers and network $ITEST_NET"; return 0
  fi
  itest_log "cleanup: removing containers of run $ITEST_RUN_ID and network $ITEST_NET"
  itest_remove_by_label "$ITEST_LABEL.run=$ITEST_RUN_ID"
  if docker network inspect "$ITEST_NET" >/dev/null 2>&1; then
    timeout 60 docker network rm "$ITEST_NET" >/dev/null 2>&1 || itest_log "warning: could not remove network $ITEST_NET"
  fi
  [[ -n "${ITEST_TMP:-}" && -d "$ITEST_TMP" ]] && rm -rf "$ITEST_TMP"
  return 0
}

itest_harness_init() {
  command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || itest_apt_install openssh-client
  # leftovers of an earlier run that was killed before its cleanup
  itest_remove_by_label "$ITEST_LABEL=1"
  if docker network inspect "$ITEST_NET" >/dev/null 2>&1; then
    docker network rm "$ITEST_NET" >/dev/null 2>&1 || itest_die "network $ITEST_NET exists and is in use"
  fi
  ITEST_TMP=$(mktemp -d /tmp/gitlab-cluster-itest.XXXXXX)
  itest_on_exit itest_cleanup
  itest_on_exit _itest_stop_running_check   # runs before itest_cleanup
  docker network create --driver bridge --subnet "$ITEST_SUBNET" --gateway "$ITEST_GATEWAY" \
      --label "$ITEST_LABEL=1" --label "$ITEST_LABEL.run=$ITEST_RUN_ID" "$ITEST_NET" >/dev/null \
    || itest_die "could not create network $ITEST_NET ($ITEST_SUBNET)"
  ITEST_SSH_KEY="$ITEST_TMP/id_ed25519"
  ITEST_SSH_PUB="$ITEST_SSH_KEY.pub"
  ssh-keygen -q -t ed25519 -N '' -C "gitlab-cluster-itest-$ITEST_RUN_ID" -f "$ITEST_SSH_KEY" || itest_die "ssh-keygen failed"
  chmod 644 "$ITEST_SSH_PUB"
  export ITEST_NET ITEST_SUBNET ITEST_RUN_ID ITEST_TMP ITEST_SSH_KEY ITEST_SSH_PUB
}

# itest_start_host NAME IMAGE IP [extra docker run args...]
# Container gcitest-NAME, hostname and network alias NAME, env NODE_NAME=NAME,
# the test public key mounted at /run/itest/authorized_keys, run with --init.
itest_start_host() {
  local name=$1 image=$2 ip=$3; shift 3
  timeout 120 docker run -d --init \
    --name "gcitest-$name" --hostname "$name" \
    --network "$ITEST_NET" --ip "$ip" --network-alias "$name" \
    --label "$ITEST_LABEL=1" --label "$ITEST_LABEL.run=$ITEST_RUN_ID" \
    -e "NODE_NAME=$name" \
    -v "$ITEST_SSH_PUB:/run/itest/authorized_keys:ro" \
    "$@" "$image" >/dev/null
}

_ITEST_SSH_OPTS=()
_itest_ssh_opts() {
  _ITEST_SSH_OPTS=(-i "$ITEST_SSH_KEY" -o BatchMode=yes -o IdentitiesOnly=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout="${ITEST_SSH_CONNECT_TIMEOUT:-5}"
    -o ServerAliveInterval=5 -o ServerAliveCountMax=6)
}

# ssh_run IP 'command': runs as root on the container; bounded by
# ITEST_SSH_TIMEOUT seconds (default 180). stdin is passed through.
# A daemon started this way must not keep the session's stdout/stderr open
# (redirect them: `nginx </dev/null >/dev/null 2>&1`), or ssh_run waits until
# the timeout.
ssh_run() {
  local ip=$1; shift
  _itest_ssh_opts
  timeout "${ITEST_SSH_TIMEOUT:-180}" ssh "${_ITEST_SSH_OPTS[@]}" "root@$ip" "$@"
}

# ssh_put IP LOCAL REMOTE: copy one file (no scp/sftp dependency)
ssh_put() {
  local ip=$1 src=$2 dst=$3
  ssh_run "$ip" "mkdir -p \"\$(dirname '$dst')\" && cat > '$dst'" < "$src"
}

itest_wait_ssh() {
  local ip=$1 timeout=${2:-60}
  ITEST_SSH_TIMEOUT=10 itest_wait_until "$timeout" 1 ssh_run "$ip" true </dev/null
}

# check "description" cmd...: runs cmd, prints PASS/FAIL with its duration;
# on failure (or with ITEST_VERBOSE=1) prints the command's output indented.
# The command runs as a background job and we `wait` for it: bash defers
# traps until a *foreground* child ends, so this lets SIGTERM/SIGINT (CI
# cancellation) run the cleanup at once instead of after the command's timeout.
check() {
  local desc=$1 t0 out rc=0 outf pid; shift
  t0=$(itest_now)
  outf=$(mktemp "${ITEST_TMP:-/tmp}/check.XXXXXX")
  "$@" >"$outf" 2>&1 </dev/null &
  pid=$!
  _ITEST_CHECK_PID=$pid
  wait "$pid" || rc=$?
  _ITEST_CHECK_PID=
  out=$(cat "$outf"); rm -f "$outf"
  if (( rc == 0 )); then
    ITEST_PASSED=$((ITEST_PASSED + 1))
    printf 'PASS  %-62s (%ss)\n' "$desc" "$(( $(itest_now) - t0 ))"
    [[ -n "${ITEST_VERBOSE:-}" && -n "$out" ]] && printf '%s\n' "$out" | tail -n 40 | sed 's/^/      | /'
  else
    ITEST_FAILED=$((ITEST_FAILED + 1)); ITEST_FAILED_NAMES+=("$desc")
    printf 'FAIL  %-62s (%ss, rc=%s)\n' "$desc" "$(( $(itest_now) - t0 ))" "$rc"
    printf '%s\n' "$out" | tail -n 40 | sed 's/^/      | /'
  fi
  return 0
}

itest_summary() {
  local n
  if (( ITEST_FAILED > 0 )); then
    echo "failed checks:"; for n in "${ITEST_FAILED_NAMES[@]}"; do echo "  - $n"; done
  fi
  echo "$ITEST_PASSED passed, $ITEST_FAILED failed"
  (( ITEST_FAILED == 0 ))
}
