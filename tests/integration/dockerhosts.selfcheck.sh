#!/bin/bash
# Self-check of the Docker hosts for the real engine (lib/dockerhost.sh):
#   bash tests/integration/dockerhosts.selfcheck.sh
# Needs root. Starts data1 app1 app2 app3 edge1 (as run.sh places them) each with its OWN dockerd,
# loads the stand-ins under the stack's image references, and proves with real commands that the
# Docker provider's way in works: `docker` over ssh:// (test key, pinned host key) creates a
# container publishing a port on the host's address, with a bind of the host's /srv and a named
# volume; other hosts reach it through the host engine's real DNAT; data1's engine built
# DOCKER-USER and DNAT rules; the program's firewall script (renderFirewallScript) applied in
# data1 lets the GitLab hosts in and drops edge1; the NFS stand-in's mount is seen by GitLab
# containers on app2/app3. Ends with "N passed, M failed"; removes everything it made.
# Traffic goes only to the test network's addresses. Knobs as run.sh (ITEST_KEEP=1, ...).
set -uo pipefail
ITEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ITEST_DIR
source "$ITEST_DIR/lib/common.sh"
source "$ITEST_DIR/lib/docker.sh"
source "$ITEST_DIR/lib/images.sh"
source "$ITEST_DIR/lib/harness.sh"
source "$ITEST_DIR/lib/cluster.sh"
source "$ITEST_DIR/lib/dockerhost.sh"

T_START=$(itest_now)
ensure_docker
itest_on_exit cluster_verify_cleanup      # runs after the cleanups (hooks run in reverse)
T_DOCKER=$(itest_now)
build_dockerhost_images
T_IMAGES=$(itest_now)
echo "TIMING docker ready in $(( T_DOCKER - T_START )) s; images built/reused in $(( T_IMAGES - T_DOCKER )) s ($IMG_DOCKERHOST)"

# shellcheck disable=SC2119 # the inventory goes to its default place, $ITEST_TMP/inventory.json
dockerhosts_up
T_HOSTS=$(itest_now)
printf 'TIMING %s\n' "${DOCKERHOST_TIMINGS[@]}"
DATA=${CLUSTER_IP[data1]} APP1=${CLUSTER_IP[app1]}
STACK_IMAGES=$(dockerhost_stack_images) || itest_die "image references of the stack"
ref_of() { awk -v r="$1" '$2 == r {print $3; exit}' <<<"$STACK_IMAGES"; }
REDIS_REF=$(ref_of redis) GITLAB_REF=$(ref_of gitlab)
PROBE_PORT=6379

chk_engines() {   # over ssh://, as the provider connects: every host answers with its own engine
  local h out ids=""
  for h in "${DOCKERHOST_NAMES[@]}"; do
    out=$(dockerhost_docker "$h" info --format '{{.ID}} {{.Driver}} {{.ServerVersion}} {{.Name}}') || { echo "$h: docker over ssh failed"; return 1; }
    echo "$h: $out"
    [[ "$out" == *" overlay2 "*" $h" ]] || { echo "expected storage overlay2 and name $h"; return 1; }
    ids+="${out%% *} "
  done
  (( $(tr ' ' '\n' <<<"$ids" | sed '/^$/d' | sort -u | wc -l) == ${#DOCKERHOST_NAMES[@]} )) || { echo "engines are not distinct: $ids"; return 1; }
  # the machine's engine is not among them
  [[ "$ids" != *"$(docker info --format '{{.ID}}')"* ]]
}
check "every host runs its own engine, reached as ssh://root@<address>" chk_engines

chk_images() {   # the stack's references, present and labelled as stand-ins; nothing to pull
  local host role ref label
  while read -r host role ref; do
    label=$(dockerhost_docker "$host" image inspect --format '{{index .Config.Labels "gitlab-cluster-test.standin"}}' "$ref") || { echo "$host: no $ref"; return 1; }
    echo "$host: $ref ($role) -> $label"
    [[ "$label" == *stand-in* ]] || { echo "not labelled as a stand-in"; return 1; }
  done <<<"$STACK_IMAGES"
}
check "stand-ins loaded under the stack's image references" chk_images

chk_run_published() {   # as the provider creates a service: published on the host's address, /srv bind, volume
  on data1 'mkdir -p /srv/itest-probe && echo "from data1 /srv" > /srv/itest-probe/marker' || return 1
  dockerhost_docker data1 volume create --label gitlab-cluster-itest=1 itest-probe-data >/dev/null || return 1
  dockerhost_docker data1 run -d --name itest-probe -p "$DATA:$PROBE_PORT:6379" \
    -v itest-probe-data:/data -v /srv/itest-probe:/probe:ro "$REDIS_REF" redis-server --protected-mode no || return 1
  itest_wait_until 30 1 dockerhost_docker data1 exec itest-probe redis-cli ping || { dockerhost_docker data1 logs itest-probe; return 1; }
  dockerhost_docker data1 port itest-probe
  [[ "$(dockerhost_docker data1 port itest-probe 6379/tcp)" == "$DATA:$PROBE_PORT" ]] || return 1
  dockerhost_docker data1 exec itest-probe cat /probe/marker | grep -qx "from data1 /srv" || { echo "the /srv bind does not show data1's file"; return 1; }
  dockerhost_docker data1 exec itest-probe sh -c 'echo volume > /data/itest && ls -ln /data/itest; grep ^nameserver /etc/resolv.conf | paste -sd" " -'
  on data1 'ls /var/lib/docker/volumes/itest-probe-data/_data/itest' || return 1
  docker ps -a --format '{{.Names}}' | grep -qx itest-probe && { echo "itest-probe is on the machine's engine"; return 1; }
  echo "itest-probe runs on data1's engine, published on $DATA:$PROBE_PORT"
}
check "docker run over ssh: port on data1's address, /srv bind, volume" chk_run_published

redis_ping_from() { on "$1" "redis-cli -h $DATA -p $PROBE_PORT --no-auth-warning ping"; }
connects() { on "$1" "timeout 3 bash -c '</dev/tcp/$DATA/$PROBE_PORT'"; }
chk_reach() {
  local h out
  for h in app1 edge1; do
    out=$(redis_ping_from "$h") || return 1
    echo "$h -> $DATA:$PROBE_PORT: $out"; [[ "$out" == PONG ]] || return 1
  done
}
check "app1 and edge1 reach the published port (PONG)" chk_reach

chk_docker_rules() {
  local out nat w
  out=$(on data1 'iptables -S') || return 1
  nat=$(on data1 'iptables -t nat -S') || return 1
  echo "$out"; echo "$nat" | grep -- '-j DNAT'
  for w in '-N DOCKER-USER' '-A FORWARD -j DOCKER-USER' '-A DOCKER-USER -j RETURN'; do
    grep -qxF -- "$w" <<<"$out" || { echo "missing in the filter table: $w"; return 1; }
  done
  grep -qE -- "^-A DOCKER -d $DATA/32 ! -i docker0 -p tcp -m tcp --dport $PROBE_PORT -j DNAT --to-destination 172\.[0-9.]+:6379\$" <<<"$nat" \
    || { echo "no DNAT of $DATA:$PROBE_PORT"; return 1; }
}
check "data1's engine built DOCKER-USER and the DNAT of the port" chk_docker_rules

chk_firewall() {   # the program's firewall script, rendered by the program's code, applied in data1
  local bridge script="$ITEST_TMP/firewall.sh" h out
  bridge=$(dockerhost_docker data1 network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}}') || return 1
  _dockerhost_node '
const { renderFirewallScript } = require(repo + "/components/render/firewall.ts");
const [address, port, bridgeSubnet, ...sources] = process.argv.slice(2);
process.stdout.write(renderFirewallScript({ service: "redis", address, port: Number(port), containerPort: 6379, bridgeSubnet, sources }));' \
    "$DATA" "$PROBE_PORT" "$bridge" "${CLUSTER_IP[app1]}/32" "${CLUSTER_IP[app2]}/32" "${CLUSTER_IP[app3]}/32" > "$script" || return 1
  ssh_put "$DATA" "$script" /usr/local/sbin/itest-firewall-redis || return 1
  on data1 'sh /usr/local/sbin/itest-firewall-redis' || return 1
  for h in app1 app2 app3; do
    out=$(redis_ping_from "$h") || return 1
    echo "$h: $out"; [[ "$out" == PONG ]] || return 1
  done
  if connects edge1; then echo "edge1 still connects"; return 1; fi
  echo "edge1: timed out"
  out=$(on data1 'iptables -L DOCKER-USER -v -n -x; iptables -L GLC-REDIS -v -n -x') || return 1
  echo "$out"
  # the packets went the DNAT way (DOCKER-USER's ctorigdst jump), and GLC-REDIS dropped some
  awk '$3 == "GLC-REDIS" && /ctorigdst/ && $1 > 0 {f=1} END {exit !f}' <<<"$out" || { echo "no packet took the DNAT jump"; return 1; }
  awk '$3 == "DROP" && $1 > 0 {f=1} END {exit !f}' <<<"$(on data1 'iptables -L GLC-REDIS -v -n -x')" || { echo "GLC-REDIS dropped nothing"; return 1; }
}
check "program's firewall in data1: app1..3 PONG, edge1 dropped (DNAT)" chk_firewall

chk_nfs_standin() {   # app1's /srv/gitlab-nfs "mounted" on app2/app3; GitLab containers there see it
  local h marker="itest-$RANDOM$RANDOM"
  on app1 "mkdir -p /srv/gitlab-nfs/git-data && echo $marker > /srv/gitlab-nfs/git-data/from-app1" || return 1
  for h in app2 app3; do
    on "$h" "mkdir -p /srv/gitlab-nfs && echo '$APP1:/srv/gitlab-nfs /srv/gitlab-nfs nfs4 hard,nosuid,nodev 0 0' >> /etc/fstab && mount /srv/gitlab-nfs && findmnt -n /srv/gitlab-nfs" || return 1
    dockerhost_docker "$h" run --rm --entrypoint cat -v /srv/gitlab-nfs/git-data:/var/opt/gitlab/git-data \
      "$GITLAB_REF" /var/opt/gitlab/git-data/from-app1 | grep -qx "$marker" || { echo "$h's container does not see app1's file"; return 1; }
    echo "$h: a $GITLAB_REF container reads app1's file through the mount"
  done
  dockerhost_docker app3 run --rm --entrypoint sh -v /srv/gitlab-nfs/git-data:/var/opt/gitlab/git-data \
    "$GITLAB_REF" -c "echo $marker-3 > /var/opt/gitlab/git-data/from-app3" || return 1
  on app1 'cat /srv/gitlab-nfs/git-data/from-app3' | grep -qx "$marker-3" || { echo "app1 does not see app3's container's file"; return 1; }
  on app2 'cat /srv/gitlab-nfs/git-data/from-app3' | grep -qx "$marker-3" || { echo "app2 does not see it"; return 1; }
  echo "app3's container wrote, app1 and app2 read"
}
check "NFS stand-in: GitLab containers on app2/app3 see app1's export" chk_nfs_standin

T_END=$(itest_now)
echo "TIMING hosts up $(( T_HOSTS - T_IMAGES )) s; checks $(( T_END - T_HOSTS )) s; whole run $(( T_END - T_START )) s"
itest_summary
