# shellcheck shell=bash
# ensure_docker: make `docker` usable (install Debian's docker.io, start a
# dockerd if none answers) and register an exit hook that stops a dockerd
# *this process* started. A daemon that was already running is left alone.
#
#   source tests/integration/lib/docker.sh
#   ensure_docker            # dies on failure
#   echo "$ITEST_STARTED_DOCKERD"   # 1 if we started it, else empty
#
# Environment knobs:
#   ITEST_DOCKERD_LOG   log file for a dockerd we start (default /tmp/gitlab-cluster-itest-dockerd.log)
#   ITEST_DOCKERD_ARGS  extra dockerd arguments (word-split)
#   ITEST_KEEP_DOCKERD=1  do not stop a dockerd we started (debugging; implied
#                         by ITEST_KEEP=1, which keeps the test containers)
#
# Findings in the development sandbox (Debian bookworm, kernel 6.18,
# 2 cores, root, no systemd, 2026-11):
#   * /usr/local/bin/docker was a Docker 28.2 *client only*; no daemon. Debian's
#     docker.io (20.10.24) installs /usr/sbin/dockerd, containerd, runc,
#     docker-init (tini, so `docker run --init` works) and iptables. The 28.x
#     client talks to the 20.10 daemon fine (API version negotiation). It has
#     no buildx plugin, so `docker build` uses the legacy builder and prints a
#     deprecation notice; we set DOCKER_BUILDKIT=0 to make that explicit.
#   * No systemd: the package's postinst cannot start the service. We install
#     with a temporary /usr/sbin/policy-rc.d (exit 101) so invoke-rc.d does not
#     start a daemon behind our back (we would then not know who owns it), and
#     remove it again if we created it.
#   * Storage driver: overlay2 works (overlay is in /proc/filesystems, / is
#     ext4). If dockerd does not come up we retry once with --storage-driver=vfs.
#   * iptables 1.8.9 (nf_tables backend) works; dockerd's NAT lets containers
#     reach deb.debian.org (apt inside containers works). /etc/resolv.conf's
#     nameserver is not loopback, so dockerd copies it into containers.
#   * cgroups: v1 hierarchy (cgroupfs driver) with a cgroup2 'unified' mount;
#     dockerd only warns about missing blkio weight support.
#   * dockerd log has to go to a file: it is very chatty on stderr.

_ITEST_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_ITEST_LIB_DIR/common.sh"

ITEST_STARTED_DOCKERD=
ITEST_DOCKERD_PID=
ITEST_DOCKERD_LOG="${ITEST_DOCKERD_LOG:-/tmp/gitlab-cluster-itest-dockerd.log}"
export DOCKER_BUILDKIT=0

_docker_answers() { timeout 10 docker info >/dev/null 2>&1; }
# procps (pgrep) may be missing on a minimal machine: scan /proc instead.
_dockerd_process_exists() {
  local c
  for c in /proc/[0-9]*/comm; do
    [[ "$(cat "$c" 2>/dev/null)" == dockerd ]] && return 0
  done
  return 1
}

_ITEST_MADE_POLICY_RC=
_remove_our_policy_rc() {
  [[ -n "$_ITEST_MADE_POLICY_RC" ]] && rm -f /usr/sbin/policy-rc.d
  _ITEST_MADE_POLICY_RC=
  return 0
}
_install_docker_io() {
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    itest_on_exit _remove_our_policy_rc     # also if apt-get fails
    printf '#!/bin/sh\n# temporary, gitlab-cluster integration tests\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    _ITEST_MADE_POLICY_RC=1
  fi
  itest_apt_install docker.io
  _remove_our_policy_rc
}

_start_dockerd() {   # $@: extra args; returns 0 when the daemon answers
  itest_log "starting dockerd $* (log: $ITEST_DOCKERD_LOG)"
  # shellcheck disable=SC2086
  dockerd ${ITEST_DOCKERD_ARGS:-} "$@" >>"$ITEST_DOCKERD_LOG" 2>&1 </dev/null &
  ITEST_DOCKERD_PID=$!
  ITEST_STARTED_DOCKERD=1
  local i
  for (( i=0; i<60; i++ )); do          # at most ~60 s
    if _docker_answers; then return 0; fi
    if ! kill -0 "$ITEST_DOCKERD_PID" 2>/dev/null; then
      itest_log "dockerd exited early; last log lines:"; tail -n 15 "$ITEST_DOCKERD_LOG" >&2
      ITEST_DOCKERD_PID=; return 1
    fi
    sleep 1
  done
  itest_log "dockerd did not answer within 60 s"
  _stop_our_dockerd
  return 1
}

_stop_our_dockerd() {
  [[ -n "$ITEST_STARTED_DOCKERD" && -n "$ITEST_DOCKERD_PID" ]] || return 0
  if [[ -n "${ITEST_KEEP_DOCKERD:-}${ITEST_KEEP:-}" ]]; then   # ITEST_KEEP: kept containers need it
    itest_log "ITEST_KEEP(_DOCKERD) set: leaving dockerd pid $ITEST_DOCKERD_PID running"; return 0
  fi
  itest_log "stopping the dockerd this run started (pid $ITEST_DOCKERD_PID)"
  kill -TERM "$ITEST_DOCKERD_PID" 2>/dev/null || return 0
  local i
  for (( i=0; i<30; i++ )); do          # at most ~30 s, then SIGKILL
    kill -0 "$ITEST_DOCKERD_PID" 2>/dev/null || { ITEST_DOCKERD_PID=; return 0; }
    sleep 1
  done
  kill -KILL "$ITEST_DOCKERD_PID" 2>/dev/null || true
  ITEST_DOCKERD_PID=
}

ensure_docker() {
  [[ $EUID -eq 0 ]] || itest_die "integration tests must run as root (dockerd, debootstrap)"
  if ! command -v dockerd >/dev/null 2>&1; then
    itest_log "dockerd not installed; installing Debian's docker.io"
    _install_docker_io
  fi
  command -v docker >/dev/null 2>&1 || itest_die "no docker client after installing docker.io"
  if _docker_answers; then
    itest_log "docker daemon already running (not started by us; will not stop it)"
    return 0
  fi
  if [[ -S /var/run/docker.sock ]] && ! _dockerd_process_exists; then
    rm -f /var/run/docker.sock   # stale socket from a killed daemon
  fi
  _dockerd_process_exists && itest_die "a dockerd process exists but does not answer 'docker info'; refusing to start a second one"
  itest_on_exit _stop_our_dockerd
  _start_dockerd && return 0
  itest_log "retrying dockerd with --storage-driver=vfs"
  _start_dockerd --storage-driver=vfs && return 0
  itest_die "could not start dockerd; see $ITEST_DOCKERD_LOG"
}
