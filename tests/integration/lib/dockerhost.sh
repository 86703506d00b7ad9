# shellcheck shell=bash
# Test hosts that are REAL Docker hosts: each runs its own dockerd (Docker-in-Docker), so the
# real Pulumi engine's Docker provider can deploy the program onto it as `ssh://root@<address>`
# (the provider runs `docker system dial-stdio` on the host over ssh). Unlike cluster.sh's
# hosts (the machine's engine, services joined to the host's namespace, paths translated), a
# container here is created as the program specifies it: ports published on the host's own
# address, binds of the host's own /srv, named volumes, the official image references.
#
#   source common.sh docker.sh images.sh harness.sh cluster.sh dockerhost.sh
#   ensure_docker; build_dockerhost_images          # sets IMG_DOCKERHOST (and the stand-ins)
#   dockerhosts_up [FILE]   # data1 app1 app2 app3 edge1 as run.sh places them, each with its
#                           # own engine and the stand-ins loaded under the stack's references;
#                           # writes cluster_inventory's JSON (addresses, ssh-keyscan'ed keys,
#                           # privateKeyFile = $ITEST_SSH_KEY) to FILE (default
#                           # $ITEST_TMP/inventory.json), path in DOCKERHOST_INVENTORY.
#                           # Everything is removed on exit (hooks of common.sh).
#   dockerhost_start NAME IP [docker run args]   # one host (after cluster_srv_init + harness init)
#   dockerhost_wait_engine NAME [TIMEOUT_S]       # until `docker info` answers inside
#   dockerhost_stack_images                       # "host role reference" lines, from the code
#   dockerhost_load_images NAME STANDIN REF [STANDIN REF ...]   # save | load, then tag REF
#   dockerhost_docker NAME ARGS...                # the machine's docker CLI against NAME's engine
#                                                 # over ssh (test key, pinned host key)
#
# What stands in for what, and why:
#  * Privileged containers: a nested dockerd mounts (overlay, binds), creates network
#    namespaces, bridges and iptables rules, and cgroups for its containers; `--privileged`
#    gives it every capability, the devices, writable /proc/sys and /sys/fs/cgroup and no
#    seccomp/AppArmor profile. Such a container can do anything root on this machine can.
#    Where the machine's capability bounding set lacks a capability, --privileged fails and
#    the same is spelled out without it (_dockerhost_privilege_args).
#  * /var/lib/docker of each host is $ITEST_SRV_ROOT/NAME/docker (ext4 of the machine, not
#    the container's overlay root, on which overlay2 cannot be nested), bind-mounted rprivate
#    so the nested engine's mounts stay inside; removed with ITEST_SRV_ROOT.
#  * No registry: the stand-in images are loaded into each engine under the exact references
#    the stack deploys (docker tag), so the provider finds them and pulls nothing. They keep
#    their label gitlab-cluster-test.standin, and their own gitlab-cluster-test/* name.
#  * NFS stays the bind-mount stand-in of cluster.sh (app1's /srv at
#    /run/itest-nfs-server/<app1>/srv in app2/app3). The engine runs in the host's mount
#    namespace, so a container started after the mount (the program orders them so) binds
#    the mounted directory.

_ITEST_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_ITEST_LIB_DIR/common.sh"

DOCKERHOST_NAMES=(data1 app1 app2 app3 edge1)
DOCKERHOST_DOCKERD_LOG=/var/log/itest-dockerd.log   # inside each host (the entrypoint's)
DOCKERHOST_TIMINGS=()

# Runs the program's TypeScript sources as they are (transpiled per file, not type-checked), so
# the values below come from the code and are written down nowhere else.
_DOCKERHOST_TS_HOOK='const fs = require("fs"); const ts = require("typescript");
require.extensions[".ts"] = (m, file) => m._compile(ts.transpileModule(fs.readFileSync(file, "utf8"),
  { fileName: file, compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText, file);
const repo = process.argv[1];'
_dockerhost_node() {   # _dockerhost_node 'js' ARGS...: with the hook; argv[1] = the repository
  local js=$1; shift
  (cd "$ITEST_REPO_DIR" && timeout 120 node -e "$_DOCKERHOST_TS_HOOK
$js" "$ITEST_REPO_DIR" "$@")
}

# dockerhost_stack_images: "host role reference" per role host of the test stack (stack.ts),
# the references being the stack's own or the program's defaults (components/config.ts).
dockerhost_stack_images() {
  _dockerhost_node '
const { DEFAULT_IMAGES } = require(repo + "/components/config.ts");
const { itestStackConfig, HOST_NAMES } = require(repo + "/tests/integration/stack.ts");
const cfg = itestStackConfig({ privateKeyFile: "/dev/null", hosts: Object.fromEntries(HOST_NAMES.map(h => [h, { address: "192.0.2.1", hostKey: "" }])) });
const image = { gitlab: cfg.gitlab.image, postgres: cfg.postgres?.image ?? DEFAULT_IMAGES.postgres,
  redis: cfg.redis?.image ?? DEFAULT_IMAGES.redis, loadBalancer: cfg.loadBalancer?.image ?? DEFAULT_IMAGES.loadBalancer };
for (const [role, hosts] of Object.entries(cfg.roles)) {
  if (role in image) for (const h of [hosts].flat()) console.log(h, role, image[role]);
}'
}

_dockerhost_standin() {   # role of dockerhost_stack_images -> the stand-in image
  case $1 in
    gitlab) echo "$IMG_STANDIN" ;; postgres) echo "$IMG_PG_STANDIN" ;;
    redis) echo "$IMG_REDIS_STANDIN" ;; loadBalancer) echo "$IMG_NGINX_STANDIN" ;;
    *) itest_log "no stand-in for role $1"; return 1 ;;
  esac
}

# Linux capability numbers (include/uapi/linux/capability.h), for the bounding-set check below
_DOCKERHOST_CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
  SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
  SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
  WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)

# Capabilities the kernel has but this machine's bounding set lacks (this process's; the
# dockerd we start inherits it). `docker run --privileged` asks runc for all of them, and runc
# fails: "unable to apply caps: operation not permitted" (so in the development sandbox, which
# lacks SYS_RESOURCE).
_dockerhost_missing_caps() {
  local bnd last i
  bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  for (( i=0; i<=last && i<${#_DOCKERHOST_CAPS[@]}; i++ )); do
    (( bnd >> i & 1 )) || echo "${_DOCKERHOST_CAPS[$i]}"
  done
}

# The nested dockerd mounts (overlay, binds), creates network namespaces, bridges, iptables rules
# and cgroups: --privileged. Where the bounding set lacks a capability, the same thing spelled
# out without it: every other capability, no seccomp/AppArmor profile, /proc unmasked and
# writable, every device allowed in the device cgroup; /sys and the cgroups are remounted
# writable by the image's entrypoint.
_dockerhost_privilege_args() {
  local missing c
  missing=$(_dockerhost_missing_caps)
  if [[ -z "$missing" ]]; then echo --privileged; return 0; fi
  printf '%s\n' --cap-add ALL
  for c in $missing; do printf '%s\n' --cap-drop "$c"; done
  printf '%s\n' --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm'
}

# dockerhost_start NAME IP [extra docker run args]: like cluster_start_host, with its own engine
dockerhost_start() {
  local name=$1 ip=$2 privilege; shift 2
  mkdir -p "$ITEST_SRV_ROOT/$name/docker"
  mapfile -t privilege < <(_dockerhost_privilege_args)
  [[ "${privilege[*]}" == --privileged ]] \
    || itest_log "$name: not --privileged, this machine lacks $(_dockerhost_missing_caps | paste -sd, -): ${privilege[*]}"
  itest_start_host "$name" "$IMG_DOCKERHOST" "$ip" "${privilege[@]}" \
    --mount "type=bind,src=$ITEST_SRV_ROOT/$name/docker,dst=/var/lib/docker,bind-propagation=rprivate" \
    --mount "$(_cluster_srv_mount "$name")" \
    -e "ITEST_HOST_DOCKERD_ARGS=--storage-driver=overlay2 ${ITEST_HOST_DOCKERD_ARGS:-}" \
    "$@"
}

# dockerhost_wait_engine NAME [TIMEOUT_S]: until the host's own engine answers; else its log
dockerhost_wait_engine() {
  local name=$1 timeout=${2:-90}
  itest_wait_until "$timeout" 1 timeout 10 docker exec "gcitest-$name" docker info && return 0
  itest_log "$name: its dockerd did not answer within $timeout s; last lines of $DOCKERHOST_DOCKERD_LOG:"
  docker exec "gcitest-$name" tail -n 15 "$DOCKERHOST_DOCKERD_LOG" >&2
  return 1
}

# dockerhost_load_images NAME STANDIN REF [STANDIN REF ...]: one `docker save` of the stand-ins
# (shared layers once) into the host's engine, then each tagged with the reference it stands for
dockerhost_load_images() {
  local name=$1 standins=() refs=() i; shift
  while (( $# >= 2 )); do standins+=("$1"); refs+=("$2"); shift 2; done
  timeout 600 docker save "${standins[@]}" | timeout 600 docker exec -i "gcitest-$name" docker load -q >/dev/null \
    || { itest_log "$name: loading ${standins[*]} failed"; return 1; }
  for i in "${!refs[@]}"; do
    docker exec "gcitest-$name" docker tag "${standins[$i]}" "${refs[$i]}" || return 1
  done
}

# _dockerhost_ssh_init INVENTORY: an ssh wrapper for the docker CLI's ssh:// connection helper,
# which takes no options: the test key, and the inventory's host keys pinned (StrictHostKeyChecking)
_dockerhost_ssh_init() {
  local dir="$ITEST_TMP/dockerhost-ssh"
  mkdir -p "$dir"
  node -e '
const inv = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
for (const h of Object.values(inv.hosts)) console.log(h.address, h.hostKey);' "$1" > "$dir/known_hosts" || return 1
  cat > "$dir/config" <<EOF
Host *
  User root
  IdentityFile $ITEST_SSH_KEY
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking yes
  UserKnownHostsFile $dir/known_hosts
  ConnectTimeout 10
  LogLevel ERROR
EOF
  printf '#!/bin/sh\nexec %s -F %s "$@"\n' "$(command -v ssh)" "$dir/config" > "$dir/ssh"
  chmod 700 "$dir/ssh"
}

# dockerhost_docker NAME ARGS...: `docker ARGS` with DOCKER_HOST=ssh://root@<NAME's address>
dockerhost_docker() {
  local name=$1; shift
  PATH="$ITEST_TMP/dockerhost-ssh:$PATH" DOCKER_HOST="ssh://root@${CLUSTER_IP[$name]}" timeout 300 docker "$@"
}

# Before the containers are removed: stop each host's containers and dockerd, so the nested
# engine releases its mounts and cgroups (registered after the harness: runs before its cleanup)
_dockerhost_stop_engines() {
  [[ -n "${ITEST_KEEP:-}" ]] && return 0
  local name pids=()
  for name in "${DOCKERHOST_NAMES[@]}"; do
    docker inspect "gcitest-$name" >/dev/null 2>&1 || continue
    # shellcheck disable=SC2016 # expanded in the host
    timeout 40 docker exec "gcitest-$name" sh -c '
      ids=$(docker ps -q 2>/dev/null); [ -z "$ids" ] || docker kill $ids >/dev/null 2>&1
      [ -f /var/run/docker.pid ] && kill -TERM "$(cat /var/run/docker.pid)" 2>/dev/null
      for i in $(seq 20); do [ -f /var/run/docker.pid ] || exit 0; sleep 1; done' >/dev/null 2>&1 &
    pids+=($!)
  done
  # only our own: a bare `wait` would also wait for a dockerd that ensure_docker started
  (( ${#pids[@]} == 0 )) || wait "${pids[@]}"
  return 0
}

_dockerhost_timed() {   # _dockerhost_timed LABEL CMD...: runs CMD, records "LABEL N s"
  local label=$1 t0 rc=0; shift
  t0=$(itest_now)
  "$@" || rc=$?
  DOCKERHOST_TIMINGS+=("$label $(( $(itest_now) - t0 )) s")
  return "$rc"
}

_dockerhosts_load_all() {
  local host role ref lines standin
  local -A args
  lines=$(dockerhost_stack_images) || return 1
  while read -r host role ref; do
    standin=$(_dockerhost_standin "$role") || return 1
    args[$host]+="$standin $ref "
  done <<<"$lines"
  (( ${#args[@]} > 0 )) || { itest_log "no image references from the stack"; return 1; }
  # one host after the other: in parallel it took 48 s instead of 54 s here, at twice the load
  for host in "${!args[@]}"; do
    # shellcheck disable=SC2086 # pairs of words without spaces
    _dockerhost_timed "load into $host (${args[$host]% })" dockerhost_load_images "$host" ${args[$host]} || return 1
  done
}

# dockerhosts_up [INVENTORY_FILE]: the five hosts of the test stack with their own engines. Sets
# CLUSTER_IP (name -> address), ITEST_SSH_KEY, DOCKERHOST_INVENTORY. Needs build_dockerhost_images.
dockerhosts_up() {
  local name t0
  [[ -n "${IMG_DOCKERHOST:-}" ]] || itest_die "dockerhosts_up: call build_dockerhost_images first"
  t0=$(itest_now)
  cluster_srv_init                         # before the harness: removed after the containers
  itest_harness_init
  cluster_remove_leftovers
  DOCKERHOST_INVENTORY=${1:-$ITEST_TMP/inventory.json}
  export DOCKERHOST_INVENTORY
  itest_on_exit _dockerhost_stop_engines   # runs before the harness removes the containers
  declare -gA CLUSTER_IP=([edge1]=$(itest_ip 5) [data1]=$(itest_ip 11) [app1]=$(itest_ip 21) [app2]=$(itest_ip 22) [app3]=$(itest_ip 23))
  local nfs_share=(-v "$ITEST_SRV_ROOT/app1/srv:/run/itest-nfs-server/${CLUSTER_IP[app1]}/srv")
  mkdir -p "$ITEST_SRV_ROOT/app1/srv"
  for name in "${DOCKERHOST_NAMES[@]}"; do
    case $name in
      app2|app3) dockerhost_start "$name" "${CLUSTER_IP[$name]}" "${nfs_share[@]}" ;;
      *) dockerhost_start "$name" "${CLUSTER_IP[$name]}" ;;
    esac || itest_die "start $name"
  done
  for name in "${DOCKERHOST_NAMES[@]}"; do
    dockerhost_wait_engine "$name" 120 || itest_die "no engine on $name"
    itest_wait_ssh "${CLUSTER_IP[$name]}" 60 || itest_die "no SSH to $name"
  done
  DOCKERHOST_TIMINGS+=("hosts started, engines and sshd answering $(( $(itest_now) - t0 )) s")
  _dockerhosts_load_all || itest_die "loading the stand-in images failed"
  cluster_inventory "$DOCKERHOST_INVENTORY" || itest_die "ssh-keyscan failed"
  _dockerhost_ssh_init "$DOCKERHOST_INVENTORY" || itest_die "ssh config for the docker CLI"
  DOCKERHOST_TIMINGS+=("dockerhosts_up in all $(( $(itest_now) - t0 )) s")
}
