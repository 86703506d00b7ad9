# shellcheck shell=bash
# Phase 2: the hosts of the test stack as Docker hosts, and helpers for the checks.
#
#   source tests/integration/lib/cluster.sh   (after harness.sh)
#   cluster_srv_init           # ITEST_SRV_ROOT: one directory per host, shared-propagation
#                              # bind mount; removed on exit (after the containers)
#   cluster_remove_leftovers   # volumes and /srv directories of a killed earlier run
#   cluster_remove_stack       # this run's containers (hosts and services) and volumes, now:
#                              # the network and the /srv root stay (run.sh's second stack)
#   cluster_start_host NAME IP [docker run args]   # a Docker host: sshd, the machine's docker
#                              # CLI and socket, its /srv = $ITEST_SRV_ROOT/NAME/srv
#   cluster_inventory FILE     # ssh-keyscan every host; writes the inventory stack.ts reads
#   pw NAME                    # prints one generated password of this run (no newline)
#   node_itest ARGS...         # runs dist-itest/tests/integration/deploy.itest.js (log:
#                              # $ITEST_BUILD_LOG_DIR/${ITEST_LOG_PREFIX}<subcommand>.log)
#   ops ARGS...                # the program's ops command, on the test stack's outputs
#
# Why the hosts look like this:
#  * The program deploys its containers onto each host's Docker engine. Here every host
#    container uses the machine's engine (CLI + socket bind-mounted), and each service
#    container is started in its host container's network namespace, so `docker exec`,
#    `docker inspect`, readiness waits and reloads in the program's scripts hit the real
#    containers, and each service owns its host's address as on a real host.
#  * The program's files all live under /srv (its default paths). Each host's /srv is a
#    directory on this machine, so what a script writes over SSH is what the service
#    container started with the manifest's hostPath (translated to that directory) reads.
#  * NFS: this kernel can neither serve nor mount NFS. app1 exports for real as far as the
#    kernel allows (nfs-kernel-server installed by the program's script, `exportfs -ra`);
#    the clients mount through a stand-in for mount(8) that bind-mounts the server's
#    directory (images/host/itest-nfs-mount-standin), which needs CAP_SYS_ADMIN, and the
#    mount reaches the machine (and so the service containers) through shared propagation.
#  * The firewall script needs CAP_NET_ADMIN: the data host has it (its rules live in
#    the host container's own namespace, where nothing jumps to DOCKER-USER).

_ITEST_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_ITEST_LIB_DIR/common.sh"

ITEST_SRV_ROOT=
ITEST_REPO_DIR="$(cd "$_ITEST_LIB_DIR/../../.." && pwd)"

_cluster_srv_cleanup() {
  [[ -n "${ITEST_KEEP:-}" ]] && return 0
  local ids
  ids=$(docker volume ls -q --filter "label=gitlab-cluster-itest.run=$ITEST_RUN_ID" 2>/dev/null)
  # shellcheck disable=SC2086
  [[ -z "$ids" ]] || timeout 60 docker volume rm $ids >/dev/null 2>&1 || itest_log "warning: could not remove volumes: $ids"
  [[ -n "$ITEST_SRV_ROOT" && -d "$ITEST_SRV_ROOT" ]] || return 0
  # the NFS stand-in's bind mounts propagated here; then our own bind mount
  umount -R "$ITEST_SRV_ROOT" 2>/dev/null || umount -R -l "$ITEST_SRV_ROOT" 2>/dev/null || true
  if awk -v p="$ITEST_SRV_ROOT" '$2 == p || index($2, p "/") == 1 {f=1} END {exit !f}' /proc/mounts; then
    itest_log "warning: mounts remain under $ITEST_SRV_ROOT; not deleting it"; return 0
  fi
  rm -rf --one-file-system "$ITEST_SRV_ROOT"
}

# Verifies after cleanup that nothing of this run is left; prints one line.
cluster_verify_cleanup() {
  [[ -n "${ITEST_KEEP:-}" ]] && return 0
  local c v n d=0
  c=$(docker ps -aq --filter "label=gitlab-cluster-itest.run=$ITEST_RUN_ID" 2>/dev/null | wc -l)
  v=$(docker volume ls -q --filter "label=gitlab-cluster-itest.run=$ITEST_RUN_ID" 2>/dev/null | wc -l)
  n=$(docker network ls -q --filter "name=^${ITEST_NET}\$" 2>/dev/null | wc -l)
  [[ -n "$ITEST_SRV_ROOT" && -e "$ITEST_SRV_ROOT" ]] && d=$((d + 1))
  [[ -n "${ITEST_TMP:-}" && -e "$ITEST_TMP" ]] && d=$((d + 1))
  echo "cleanup: $c containers, $v volumes, $n networks, $d directories of this run left"
  (( c + v + n + d == 0 ))
}

cluster_srv_init() {
  ITEST_SRV_ROOT=$(mktemp -d /var/tmp/gitlab-cluster-itest-srv.XXXXXX)
  itest_on_exit _cluster_srv_cleanup
  # The NFS stand-in's mounts inside app2/app3 must reach this machine's view of their /srv
  # (the service containers' bind mounts are resolved here): a shared mount, rshared into them.
  if ! mount --bind "$ITEST_SRV_ROOT" "$ITEST_SRV_ROOT" || ! mount --make-rshared "$ITEST_SRV_ROOT"; then
    itest_die "cannot make $ITEST_SRV_ROOT a shared bind mount (needs root and mount propagation)"
  fi
  export ITEST_SRV_ROOT
}

# cluster_remove_stack: removes this run's containers (the hosts and the services the deploy
# started in their namespaces) and named volumes, keeping the network and the /srv root, so that
# another stack of the same cluster name (its container and volume names) can be deployed next.
cluster_remove_stack() {
  local ids
  itest_remove_by_label "gitlab-cluster-itest.run=$ITEST_RUN_ID"
  ids=$(docker volume ls -q --filter "label=gitlab-cluster-itest.run=$ITEST_RUN_ID" 2>/dev/null)
  # shellcheck disable=SC2086
  [[ -z "$ids" ]] || timeout 60 docker volume rm $ids >/dev/null || { itest_log "could not remove volumes: $ids"; return 1; }
  ids=$(docker ps -aq --filter "label=gitlab-cluster-itest.run=$ITEST_RUN_ID" 2>/dev/null)
  [[ -z "$ids" ]] || { itest_log "containers of this run remain: $ids"; return 1; }
}

# cluster_remove_leftovers: volumes and /srv directories of an earlier run that was killed
# before its cleanup (call after itest_harness_init, which removes its containers)
cluster_remove_leftovers() {
  local ids d
  ids=$(docker volume ls -q --filter "label=gitlab-cluster-itest=1" 2>/dev/null | tr '\n' ' ')
  # shellcheck disable=SC2086
  [[ -z "${ids// /}" ]] || { itest_log "removing leftover volumes: $ids"; docker volume rm $ids >/dev/null 2>&1 || true; }
  for d in /var/tmp/gitlab-cluster-itest-srv.*; do
    [[ -d "$d" && "$d" != "$ITEST_SRV_ROOT" ]] || continue
    itest_log "removing leftover $d"
    umount -R "$d" 2>/dev/null || umount -R -l "$d" 2>/dev/null || true
    awk -v p="$d" '$2 == p || index($2, p "/") == 1 {f=1} END {exit !f}' /proc/mounts || rm -rf --one-file-system "$d"
  done
}

_cluster_docker_cli() {   # the machine's docker client binary (static here; Debian's docker.io otherwise)
  readlink -f "$(command -v docker)"
}

# _cluster_srv_mount NAME: creates the host's /srv directory; prints its --mount spec
_cluster_srv_mount() {
  mkdir -p "$ITEST_SRV_ROOT/$1/srv"
  echo "type=bind,src=$ITEST_SRV_ROOT/$1/srv,dst=/srv,bind-propagation=rshared"
}

# cluster_start_host NAME IP [extra docker run args]
cluster_start_host() {
  local name=$1 ip=$2; shift 2
  itest_start_host "$name" "$IMG_HOST" "$ip" \
    -v "$(_cluster_docker_cli):/usr/bin/docker:ro" \
    -v /var/run/docker.sock:/var/run/docker.sock \
    --mount "$(_cluster_srv_mount "$name")" \
    "$@"
}

# cluster_inventory FILE: host addresses and ssh-keyscan'ed ed25519 keys (pinned by the stack)
cluster_inventory() {
  local file=$1 name ip key first=1
  {
    printf '{"privateKeyFile": "%s", "hosts": {' "$ITEST_SSH_KEY"
    for name in "${!CLUSTER_IP[@]}"; do
      ip=${CLUSTER_IP[$name]}
      key=$(ssh-keyscan -T 5 -t ed25519 "$ip" 2>/dev/null | awk '$2 == "ssh-ed25519" {print $2 " " $3; exit}')
      [[ -n "$key" ]] || { itest_log "ssh-keyscan of $name ($ip) returned no ed25519 key"; return 1; }
      (( first )) || printf ','
      first=0
      printf '"%s": {"address": "%s", "hostKey": "%s"}' "$name" "$ip" "$key"
    done
    printf '}}\n'
  } > "$file"
}

# cluster_hosts_ready FILE: every started host answers SSH, then cluster_inventory FILE; dies naming what failed
cluster_hosts_ready() {
  local h
  for h in "${!CLUSTER_IP[@]}"; do
    itest_wait_ssh "${CLUSTER_IP[$h]}" 60 || itest_die "no SSH to $h"
  done
  cluster_inventory "$1" || itest_die "ssh-keyscan failed"
}

pw() {   # pw NAME: one generated password of this run, raw, without newline
  node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]] ?? "")' \
    "$ITEST_WORK/passwords.json" "$1"
}

# node_itest prepare|deploy|rerun: the TypeScript driver; its full output is also kept in
# $ITEST_BUILD_LOG_DIR/<subcommand>.log (no secrets: they are never printed)
node_itest() {
  mkdir -p "$ITEST_BUILD_LOG_DIR"
  timeout 900 node "$ITEST_REPO_DIR/dist-itest/tests/integration/deploy.itest.js" "$@" 2>&1 | tee "$ITEST_BUILD_LOG_DIR/${ITEST_LOG_PREFIX:-}$1.log"
}

# ops ARGS...: `npm run ops -- ARGS --stack itest --outputs <the stack's ops output>`, built
# into dist-itest, reaching the hosts with the key/known_hosts files the program wrote.
ops() {
  GITLAB_CLUSTER_KEY_DIR="$ITEST_WORK/keys" timeout 600 \
    node "$ITEST_REPO_DIR/dist-itest/scripts/ops.js" "$@" --stack itest --outputs "$ITEST_WORK/ops-outputs.json"
}

# on HOST 'cmd': ssh_run by host name
on() { local h=$1; shift; ssh_run "${CLUSTER_IP[$h]}" "$@"; }
