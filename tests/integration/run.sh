#!/bin/bash
# Integration tests, phase 2: the program's artifacts against real services.
#   bash tests/integration/run.sh        (npm run test:integration)
# Needs root. Installs docker.io / debootstrap / openssh-client from Debian if missing,
# starts (and afterwards stops) a dockerd if none runs, builds the test images (cached by
# content hash), starts five "Docker host" containers (data1 app1 app2 app3 edge1) on the
# network gitlab-cluster-itest (172.29.77.0/24), evaluates the test stack
# (tests/integration/stack.ts) and deploys what the program produces for it: every command
# of the manifest over real SSH, every container from its spec on the real engine (images
# mapped to named stand-ins), in dependency order. Then the checks, the restore drill, the
# upgrade; then the first stack is removed and the Gitaly layout (gitaly-layout.sh: roles.gitaly
# on gitaly1, the NFS share on nfs1) is deployed the same way and checked. Then cleanup of
# everything it made. Last lines: "N passed, M failed" and the timings; exit 1 if a check failed
# or cleanup left something.
# Knobs: ITEST_VERBOSE=1, ITEST_KEEP=1 (keep containers and files: the Gitaly layout's),
# ITEST_REBUILD=1, ITEST_KEEP_DOCKERD=1, ITEST_SKIP_GITALY=1 (first stack only).
# The phase-1 self-checks of the infrastructure: selfcheck.sh.
set -uo pipefail
ITEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ITEST_DIR
source "$ITEST_DIR/lib/common.sh"
source "$ITEST_DIR/lib/docker.sh"
source "$ITEST_DIR/lib/images.sh"
source "$ITEST_DIR/lib/harness.sh"
source "$ITEST_DIR/lib/cluster.sh"
cd "$ITEST_REPO_DIR" || itest_die "no repository at $ITEST_REPO_DIR"

T_START=$(itest_now)
ensure_docker
itest_on_exit cluster_verify_cleanup      # runs after the cleanups below (hooks run in reverse)
T_DOCKER=$(itest_now)
build_all_images
T_IMAGES=$(itest_now)
echo "TIMING docker ready in $(( T_DOCKER - T_START )) s; images built/reused in $(( T_IMAGES - T_DOCKER )) s"
printf '  %s\n' "$IMG_HOST" "$IMG_STANDIN" "$IMG_PG_STANDIN" "$IMG_REDIS_STANDIN" "$IMG_NGINX_STANDIN"
# The upgrade test's next GitLab release: the same stand-in, reporting 18.5.0 (layers cached but the last).
UPGRADE_IMAGE="gitlab/gitlab-ce:18.5.0-ce.0"
IMG_STANDIN_NEXT="$IMG_STANDIN-18.5.0"
docker build -q --build-arg "BASE=$IMG_SSHD" --build-arg GITLAB_STANDIN_VERSION=18.5.0 --label gitlab-cluster-test=1 \
  -t "$IMG_STANDIN_NEXT" "$ITEST_DIR/images/gitlab-standin" >/dev/null || itest_die "image gitlab-standin reporting 18.5.0"
printf '  %s\n' "$IMG_STANDIN_NEXT"

cluster_srv_init                          # before the harness: removed after the containers
itest_harness_init
cluster_remove_leftovers
ITEST_WORK="$ITEST_TMP/work"
mkdir -m 700 "$ITEST_WORK" "$ITEST_WORK/keys"
export ITEST_WORK ITEST_RUN_ID GITLAB_CLUSTER_KEY_DIR="$ITEST_WORK/keys"
# Official images cannot be pulled here: each runs as its stand-in.
ITEST_IMAGE_MAP=$(printf '{"postgres":"%s","redis":"%s","nginx":"%s","gitlab/gitlab-ce":"%s","%s":"%s"}' \
  "$IMG_PG_STANDIN" "$IMG_REDIS_STANDIN" "$IMG_NGINX_STANDIN" "$IMG_STANDIN" "$UPGRADE_IMAGE" "$IMG_STANDIN_NEXT")
export ITEST_IMAGE_MAP

declare -A CLUSTER_IP=([edge1]=$(itest_ip 5) [data1]=$(itest_ip 11) [app1]=$(itest_ip 21) [app2]=$(itest_ip 22) [app3]=$(itest_ip 23))
EDGE=${CLUSTER_IP[edge1]} DATA=${CLUSTER_IP[data1]}
NFS_SERVER_SHARE=(-v "$ITEST_SRV_ROOT/app1/srv:/run/itest-nfs-server/${CLUSTER_IP[app1]}/srv")
NFS_CLIENT_CAPS=(--cap-add SYS_ADMIN --security-opt apparmor=unconfined)
mkdir -p "$ITEST_SRV_ROOT/app1/srv"
# The host firewalls (data1's services, the GitLab nodes' HTTP and SSH) run in each host's own
# namespace, where its services listen (INPUT). Docker's start on a real host leaves DOCKER-USER
# and FORWARD's jump to it; the firewall's install refuses a host without them, so these hosts
# start with what Docker would have left.
FIREWALLED=(--cap-add NET_ADMIN -e 'ITEST_HOST_PRESTART=iptables -N DOCKER-USER && iptables -A FORWARD -j DOCKER-USER')
cluster_start_host data1 "$DATA" "${FIREWALLED[@]}" || itest_die "start data1"
cluster_start_host app1 "${CLUSTER_IP[app1]}" "${FIREWALLED[@]}" || itest_die "start app1"
cluster_start_host app2 "${CLUSTER_IP[app2]}" "${FIREWALLED[@]}" "${NFS_CLIENT_CAPS[@]}" "${NFS_SERVER_SHARE[@]}" || itest_die "start app2"
cluster_start_host app3 "${CLUSTER_IP[app3]}" "${FIREWALLED[@]}" "${NFS_CLIENT_CAPS[@]}" "${NFS_SERVER_SHARE[@]}" || itest_die "start app3"
cluster_start_host edge1 "$EDGE" || itest_die "start edge1"
cluster_hosts_ready "$ITEST_WORK/inventory.json"

T_TSC0=$(itest_now)
timeout 300 npx tsc -p tsconfig.json --outDir dist-itest --incremental --tsBuildInfoFile dist-itest/tsconfig.tsbuildinfo \
  || itest_die "tsc failed"
T_TSC=$(itest_now)
echo "TIMING hosts up and TypeScript built (dist-itest) in $(( T_TSC - T_IMAGES )) s (tsc $(( T_TSC - T_TSC0 )) s)"

# The Gitaly stand-in's own checks (on this machine, loopback only): auth, backup/restore, token change.
check "0 the Gitaly stand-in's self-test (plain HTTP, not gRPC: images/gitlab-standin/selftest-gitaly.sh)" \
  bash tests/integration/images/gitlab-standin/selftest-gitaly.sh

# --- the program's artifacts, deployed ----------------------------------------------------------
check "evaluate the test stack (host keys pinned, hostile passwords)" node_itest prepare
chk_docker_cli() {   # the program's scripts need the engine from every host
  local h
  for h in "${!CLUSTER_IP[@]}"; do on "$h" 'docker version --format "{{.Server.Version}}"' || { echo "docker CLI does not work on $h"; return 1; }; done
}
check "every host reaches the Docker engine (docker CLI + socket)" chk_docker_cli
check "deploy: every command over SSH + every container, in order" node_itest deploy
if (( ITEST_FAILED > 0 )); then
  echo "deploy failed: the checks below need the deployed cluster; not running them"
  itest_summary; exit 1
fi

# 1. Redis --------------------------------------------------------------------------------------
chk_redis() {
  local out
  out=$(on app2 "redis-cli -h $DATA -p 6379 ping" 2>&1); echo "app2, no password: $out"
  [[ "$out" == *NOAUTH* ]] || { echo "expected NOAUTH"; return 1; }
  out=$(on app2 "REDISCLI_AUTH='not-the-password' redis-cli -h $DATA -p 6379 ping" 2>&1); echo "app2, wrong password: $out"
  [[ "$out" == *WRONGPASS* || "$out" == *invalid* ]] || { echo "expected WRONGPASS"; return 1; }
  out=$(pw gitlab-redis-password | on app2 "p=\$(cat); REDISCLI_AUTH=\"\$p\" redis-cli --no-auth-warning -h $DATA -p 6379 ping" 2>&1)
  echo "app2, generated password: $out"
  [[ "$out" == PONG ]] || { echo "expected PONG"; return 1; }
}
check "1 redis: NOAUTH without password, PONG with it (from app2)" chk_redis

# 2. PostgreSQL ---------------------------------------------------------------------------------
PG_CONN="host=$DATA port=5432 dbname=gitlabhq_production user=gitlab sslmode=disable connect_timeout=10"
psql_as_gitlab() {   # psql_as_gitlab HOST: SQL on stdin after the password line
  on "$1" "IFS= read -r p; PGPASSWORD=\"\$p\" psql '$PG_CONN' -X -qAt -v ON_ERROR_STOP=1 -f -"
}
PG_EXT_SQL="CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE EXTENSION IF NOT EXISTS plpgsql;
CREATE TEMP TABLE itest_x (n int, r int4range, EXCLUDE USING gist (n WITH =, r WITH &&));
DO \$\$ BEGIN PERFORM similarity('gitlab', 'gitlub'); END \$\$;
SELECT current_user || ' from ' || host(inet_client_addr()) || ': ' || (SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension);"
chk_pg_gitlab_hosts() {
  local h out want
  for h in app1 app2 app3; do
    # psql's NOTICEs ("already exists, skipping") go to stderr: shown only on failure
    out=$({ pw gitlab-postgres-password; echo; echo "$PG_EXT_SQL"; } | psql_as_gitlab "$h" 2>"$ITEST_WORK/psql.err") || { echo "$h: $out"; cat "$ITEST_WORK/psql.err"; return 1; }
    want="gitlab from ${CLUSTER_IP[$h]}: btree_gist,pg_trgm,plpgsql"
    echo "$h: $out"
    [[ "$out" == "$want" ]] || { echo "expected: $want"; cat "$ITEST_WORK/psql.err"; return 1; }
  done
  out=$(on data1 "docker exec -u postgres gitlab-postgres psql -X -qAt -c \"SELECT rolname, left(rolpassword, 14), rolsuper FROM pg_authid WHERE rolname = 'gitlab'\"")
  echo "stored: $out"; [[ "$out" == "gitlab|SCRAM-SHA-256\$|f" ]] || { echo "expected a SCRAM verifier, not superuser"; return 1; }
}
check "2 postgres: gitlab user + extensions from app1..3 (scram)" chk_pg_gitlab_hosts
chk_pg_refused() {
  local out
  # edge1 is not a GitLab host: data1's firewall drops its packets before PostgreSQL sees them.
  out=$({ pw gitlab-postgres-password; echo; } | on edge1 "IFS= read -r p; PGPASSWORD=\"\$p\" psql 'host=$DATA port=5432 dbname=gitlabhq_production user=gitlab sslmode=disable connect_timeout=3' -X -qAt -c 'SELECT 1'" 2>&1) && { echo "edge1 got in: $out"; return 1; }
  echo "edge1: $out"
  [[ "$out" == *"timeout expired"* ]] || { echo "expected a timeout (dropped by data1's firewall)"; return 1; }
  out=$({ pw gitlab-postgres-superuser-password; echo; } | on app1 "IFS= read -r p; PGPASSWORD=\"\$p\" psql 'host=$DATA user=postgres dbname=postgres sslmode=disable connect_timeout=10' -X -c 'SELECT 1'" 2>&1) && { echo "superuser got in over the network"; return 1; }
  echo "app1 as postgres: $out"; [[ "$out" == *"no pg_hba.conf entry"* ]]
}
check "2 postgres: edge1 dropped by the firewall, superuser refused by pg_hba from app1" chk_pg_refused

# 3. gitlab.rb's values against the real services -------------------------------------------------
# Ruby run in the stand-in: loads the pushed /etc/gitlab/gitlab.rb (the stand-in's loader) and
# compares with the generated values on stdin (db password, redis password), printing no secret.
# shellcheck disable=SC2016 # Ruby code, expanded by no shell
RB_COMPARE='require "json"; want_db = STDIN.gets.chomp; want_redis = STDIN.gets.chomp
s = JSON.parse(`/opt/gitlab-standin/load_gitlab_rb.rb /etc/gitlab/gitlab.rb`); r = s["gitlab_rails"]
want = { "db_host" => ARGV[0], "db_port" => 5432, "db_username" => "gitlab", "db_database" => "gitlabhq_production", "redis_host" => ARGV[0], "redis_port" => 6379 }
bad = want.reject { |k, v| r[k] == v }.map { |k, v| "#{k}: want #{v.inspect}, got #{r[k].inspect}" }
bad << "db_password differs from the generated one" unless r["db_password"] == want_db
bad << "redis_password differs from the generated one" unless r["redis_password"] == want_redis
puts(bad.empty? ? "gitlab.rb: db #{r["db_username"]}@#{r["db_host"]}:#{r["db_port"]}/#{r["db_database"]}, redis #{r["redis_host"]}:#{r["redis_port"]}, both passwords as generated" : bad)
exit(bad.empty? ? 0 : 1)'
chk_gitlab_rb_connects() {
  local h out
  for h in app1 app2 app3; do
    out=$({ pw gitlab-postgres-password; echo; pw gitlab-redis-password; echo; } | on "$h" "docker exec -i gitlab-gitlab-$h ruby -e '$RB_COMPARE' $DATA" 2>&1) || { echo "$h: $out"; return 1; }
    echo "$h: $out"
    out=$(on "$h" "docker exec gitlab-gitlab-$h gitlab-rake gitlab:check SANITIZE=true" 2>&1) || { echo "$out"; return 1; }
    echo "$out" | grep -E '^(Database|Redis)'
    if ! grep -q '^Database .* \.\.\. yes' <<<"$out" || ! grep -q '^Redis .* \.\.\. yes' <<<"$out"; then
      echo "expected Database ... yes and Redis ... yes"; return 1
    fi
  done
}
check "3 gitlab.rb values connect to real postgres + redis (app1..3)" chk_gitlab_rb_connects

# 4. second run ----------------------------------------------------------------------------------
check "4 second run of every command changes nothing" node_itest rerun
chk_firewall() {
  local out
  out=$(on data1 'iptables -S') || return 1
  echo "$out"
  local w
  for w in "-N DOCKER-USER" "-N GLC-REDIS" "-N GLC-POSTGRES"; do grep -q -- "^$w\$" <<<"$out" || { echo "missing: $w"; return 1; }; done
  local port chain
  for port in 6379 5432; do
    chain=GLC-REDIS; [[ $port == 5432 ]] && chain=GLC-POSTGRES
    for w in "-A DOCKER-USER -p tcp -m conntrack --ctorigdst $DATA --ctorigdstport $port --ctdir ORIGINAL -j $chain" \
             "-A INPUT -d $DATA/32 -p tcp -m tcp --dport $port -m conntrack --ctdir ORIGINAL -j $chain"; do
      grep -qxF -- "$w" <<<"$out" || { echo "missing jump: $w"; return 1; }
    done
  done
  for h in app1 app2 app3; do
    grep -q -- "^-A GLC-REDIS -s ${CLUSTER_IP[$h]}/32 -j RETURN\$" <<<"$out" || { echo "GLC-REDIS does not admit $h"; return 1; }
  done
  grep -q -- '^-A GLC-REDIS -j DROP$' <<<"$out" && grep -q -- '^-A GLC-POSTGRES -j DROP$' <<<"$out" || return 1
  # Packets: the services listen in data1's namespace, so the INPUT jumps are what they cross.
  for port in 6379 5432; do
    on app3 "timeout 5 bash -c '</dev/tcp/$DATA/$port'" || { echo "app3 cannot connect to $DATA:$port"; return 1; }
    if on edge1 "timeout 3 bash -c '</dev/tcp/$DATA/$port'"; then echo "edge1 connected to $DATA:$port"; return 1; fi
    echo "$DATA:$port: app3 connects, edge1 times out"
  done
  on data1 'iptables -L GLC-REDIS -v -n -x' | awk '$3 == "DROP" && $1 > 0 {found=1} END {exit !found}' || { echo "GLC-REDIS dropped no packet"; return 1; }
  # The GitLab nodes' published HTTP port admits the balancer only: no way around it and its TLS.
  local app1=${CLUSTER_IP[app1]}
  on edge1 "timeout 5 bash -c '</dev/tcp/$app1/80'" || { echo "edge1 (the balancer) cannot connect to $app1:80"; return 1; }
  if on data1 "timeout 3 bash -c '</dev/tcp/$app1/80'"; then echo "data1 connected to $app1:80 around the balancer"; return 1; fi
  echo "$app1:80: edge1 connects, data1 times out"
  # And its git-over-SSH port (gitlab.nodeSshPort, the stand-in's sshd).
  on edge1 "timeout 5 bash -c '</dev/tcp/$app1/2222'" || { echo "edge1 (the balancer) cannot connect to $app1:2222"; return 1; }
  if on data1 "timeout 3 bash -c '</dev/tcp/$app1/2222'"; then echo "data1 connected to $app1:2222 around the balancer"; return 1; fi
  echo "$app1:2222: edge1 connects, data1 times out"
}
check "4 firewalls: GitLab hosts reach data1, only the balancer reaches the nodes; others' packets dropped" chk_firewall

# 5. NFS -----------------------------------------------------------------------------------------
chk_nfs_export() {
  echo "NOTE: this kernel cannot serve or mount NFS: the export is applied with exportfs only, and"
  echo "      app2/app3 mount through a bind-mount STAND-IN for mount(8) (images/host/itest-nfs-mount-standin)."
  docker run --rm --entrypoint dpkg "$IMG_HOST" -s nfs-kernel-server >/dev/null 2>&1 && { echo "nfs-kernel-server is already in the host image"; return 1; }
  on app1 "dpkg-query -W -f='\${Package} \${Version} \${Status}\n' nfs-kernel-server && apt-cache policy nfs-kernel-server | sed -n '2,3p'" || return 1
  # shellcheck disable=SC2016 # expanded on app1
  on app1 'out=$(exportfs -ra 2>&1); rc=$?; echo "exportfs -ra: rc=$rc ${out:-(no output)}"; [ $rc = 0 ] && [ -z "$out" ]' || return 1
  local file clients want
  file=$(on app1 'cat /etc/exports.d/gitlab-cluster.exports') || return 1
  echo "$file"
  clients=$(grep -v '^#' <<<"$file" | awk '{for (i = 2; i <= NF; i++) {sub(/\(.*/, "", $i); print $i}}' | sort | tr '\n' ' ')
  want="${CLUSTER_IP[app2]} ${CLUSTER_IP[app3]} "
  [[ "$clients" == "$want" ]] || { echo "exported to: '$clients'; expected only app2 app3: '$want'"; return 1; }
  on app1 'cat /var/lib/nfs/etab' | tee /dev/stderr | grep -c "^/srv/gitlab-nfs" | grep -qx 2
}
check "5 nfs: export installs nfs-kernel-server, exportfs -ra, app2+app3 only" chk_nfs_export
chk_nfs_share() {   # the fstab line is the program's; the file system under it is the stand-in's
  local marker h
  marker="itest-$RANDOM-$RANDOM"
  on app2 "grep ' /srv/gitlab-nfs nfs ' /etc/fstab && findmnt -n -o TARGET /srv/gitlab-nfs" || return 1
  on app2 "docker exec gitlab-gitlab-app2 sh -c 'echo $marker > /var/opt/gitlab/git-data/itest-share'" || return 1
  for h in app1 app3; do
    on "$h" "docker exec gitlab-gitlab-$h cat /var/opt/gitlab/git-data/itest-share" | grep -qx "$marker" || { echo "$h does not see app2's file"; return 1; }
  done
  on app1 'rm -f /srv/gitlab-nfs/git-data/itest-share'
  echo "a file written by app2's GitLab container is read by app1's and app3's"
}
check "5 nfs: fstab entry + mount (stand-in): app1..3 share git-data" chk_nfs_share
chk_share_guard() {   # a reboot whose NFS mount failed (nofail): the node must not start on the empty mount point
  local out
  echo "stands in for that reboot: stop app2's node, unmount the share, start the node (as Docker's restart policy would)"
  on app2 'docker stop -t 60 gitlab-gitlab-app2 >/dev/null && umount /srv/gitlab-nfs && ! mountpoint -q /srv/gitlab-nfs' || { echo "could not take the share away"; return 1; }
  on app2 'docker start gitlab-gitlab-app2 >/dev/null 2>&1; sleep 5' || true
  out=$(on app2 'docker logs --tail 20 gitlab-gitlab-app2 2>&1 | grep -m1 "not starting GitLab on empty directories"') || { echo "app2 did not refuse to start"; return 1; }
  echo "app2 (share away): $out"
  if on app2 'docker exec gitlab-gitlab-app2 curl -fsS -m 5 -o /dev/null http://127.0.0.1/-/readiness' 2>/dev/null; then echo "app2 answered /-/readiness on empty directories"; return 1; fi
  on app2 '[ ! -e /srv/gitlab-nfs/git-data/repositories ] && [ ! -e /srv/gitlab-nfs/.gitlab-cluster-share/this-is-the-shared-storage ]' || { echo "something wrote into the empty mount point"; return 1; }
  echo "app2 (share away): not ready, nothing written into the empty mount point"
  on app2 'mount /srv/gitlab-nfs && [ -f /srv/gitlab-nfs/.gitlab-cluster-share/this-is-the-shared-storage ]' || { echo "could not mount the share again"; return 1; }
  # No `docker start`: the restart policy alone brings the node up once the share is back.
  node -e '
    const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.stdout.write(m.commands.find(c => c.resource === "gitlab-gitlab-app2-ready").create);' "$ITEST_WORK/manifest.json" > "$ITEST_WORK/app2-ready.sh"
  on app2 'sh -s' < "$ITEST_WORK/app2-ready.sh" || return 1
  on app2 'docker exec gitlab-gitlab-app2 test -f /etc/gitlab-cluster/share/this-is-the-shared-storage' && echo "app2 (share back): ready on the shared storage, started by its restart policy"
}
check "5 nfs: a node never starts on an unmounted share, and starts by itself once it is back" chk_share_guard

# 6. the balancer --------------------------------------------------------------------------------
chk_lb_spread_failover() {
  local out
  # From data1's host, 300 GETs of / through edge1, one after the other: 1-150 and 201-300
  # in one curl each (URL ranges), 151-200 one curl per request while app3's GitLab
  # container is being stopped (docker stop in the background); the stop has finished
  # before request 201. Prints "N code" per request, then "N node" from each page body.
  out=$(on data1 "rm -rf /tmp/lb && mkdir /tmp/lb && cd /tmp/lb || exit 1
    get() { curl -s -m 15 -o '/tmp/lb/#1' -w '%{url_effective} %{http_code}\n' \"http://$EDGE/?r=[\$1-\$2]\"; }
    { get 1 150
      docker stop -t 5 gitlab-gitlab-app3 >/tmp/lb/stop.log 2>&1 &
      for i in \$(seq 151 200); do curl -s -m 15 -o /tmp/lb/\$i -w '%{url_effective} %{http_code}\n' \"http://$EDGE/?r=\$i\"; done
      wait
      get 201 300
    } | sed 's/^.*r=//'
    grep -o -H 'id=.node.>[^<]*' [0-9]* | sed 's/:id=.node.>/ node /'") || { echo "$out" | tail -5; return 1; }
  out=$(awk '$2 == "node" { node[$1] = $3; next } { code[$1] = $2 }
             END { for (i = 1; i <= 300; i++) print i, (i in code ? code[i] : "none"), (i in node ? node[i] : "none") }' <<<"$out")
  awk '{ codes[$2]++; n[$3]++; if ($1 > 200) late[$3]++; else if ($1 > 150) mid[$3]++ }
       END { for (c in codes) printf "HTTP %s: %d\n", c, codes[c]; for (x in n) printf "%s: %d of 300, %d of 151-200 (stop under way), %d of 201-300 (stopped)\n", x, n[x], mid[x], late[x] }' <<<"$out"
  local ok200 a1 a2 a3 late3
  ok200=$(awk '$2 == 200' <<<"$out" | wc -l)
  a1=$(awk '$3 == "app1"' <<<"$out" | wc -l); a2=$(awk '$3 == "app2"' <<<"$out" | wc -l); a3=$(awk '$3 == "app3"' <<<"$out" | wc -l)
  late3=$(awk '$1 > 200 && $3 == "app3"' <<<"$out" | wc -l)
  (( ok200 == 300 )) || { echo "expected 300 x 200, got $ok200"; grep -v ' 200 ' <<<"$out" | head; return 1; }
  (( a1 >= 30 && a2 >= 30 && a3 >= 30 )) || { echo "expected every node to serve >= 30 of 300"; return 1; }
  (( late3 == 0 )) || { echo "app3 served $late3 requests after it was stopped"; return 1; }
}
check "6 nginx: 300 requests over app1..3, app3 stopped midway, 0 lost" chk_lb_spread_failover
chk_app3_back() {   # start it again; the program's readiness wait decides
  on app3 'docker start gitlab-gitlab-app3 >/dev/null' || return 1
  node -e '
    const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.stdout.write(m.commands.find(c => c.resource === "gitlab-gitlab-app3-ready").create);' "$ITEST_WORK/manifest.json" > "$ITEST_WORK/app3-ready.sh"
  on app3 'sh -s' < "$ITEST_WORK/app3-ready.sh"
}
check "6 nginx: app3 started again and ready (program's wait script)" chk_app3_back
chk_lb_features() {
  local out direct via
  out=$(on app1 "docker exec gitlab-gitlab-app1 /opt/gitlab-standin/ws_check.rb $EDGE 80 /-/cable $EDGE" 2>&1) || { echo "websocket: $out"; return 1; }
  echo "websocket via edge1: $out"
  out=$(on data1 "head -c 52428800 /dev/zero | curl -sS -m 180 -X PUT -H 'Content-Type: application/octet-stream' --data-binary @- -w ' HTTP %{http_code}' http://$EDGE/api/v4/projects/1/uploads") || return 1
  echo "50 MB PUT via edge1: $out"
  [[ "$out" == *'"bytes":52428800'*' HTTP 200' ]] || { echo "expected 200 with all 52428800 bytes (no 413)"; return 1; }
  out=$(on data1 "curl -fsS -m 10 http://$EDGE/-/standin/headers") || return 1
  [[ "$out" == *"\"x-forwarded-for\":\"$DATA\""* && "$out" == *"\"x-real-ip\":\"$DATA\""* ]] || { echo "forwarded headers: $out"; return 1; }
  echo "X-Forwarded-For / X-Real-IP: $DATA"
  via=$(on data1 "ssh-keyscan -T 10 -t ed25519 -p 2222 $EDGE 2>/dev/null" | awk '{print $3}')
  direct=$(on app1 'cut -d" " -f2 /srv/gitlab/config/ssh_host_ed25519_key.pub')
  echo "edge1:2222 host key: ${via:-none}"; echo "nodes' host key:     $direct"
  [[ -n "$via" && "$via" == "$direct" ]]
}
check "6 nginx: websocket, 50 MB upload, headers, SSH :2222 as TCP" chk_lb_features

# 7. multi-node rules ----------------------------------------------------------------------------
IDENTITY_FILES="gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub"
chk_identity() {
  local h
  for h in app1 app2 app3; do
    on "$h" "cd /srv/gitlab/config && for f in $IDENTITY_FILES; do printf '%s %s %s\n' \$f \$(stat -c %a \$f) \$(sha256sum < \$f | cut -c1-64); done" > "$ITEST_WORK/identity.$h" || return 1
    [[ $(wc -l < "$ITEST_WORK/identity.$h") == 7 ]] || { echo "$h:"; cat "$ITEST_WORK/identity.$h"; return 1; }
  done
  cat "$ITEST_WORK/identity.app1"
  for h in app2 app3; do
    diff "$ITEST_WORK/identity.app1" "$ITEST_WORK/identity.$h" || { echo "$h differs from app1 (above)"; return 1; }
    echo "$h: the same 7 files, modes and sha256 as app1"
  done
  on app2 "grep -q '\"node\": \"app1\"' /srv/gitlab/config/gitlab-secrets.json" || { echo "app2's gitlab-secrets.json was not generated on app1"; return 1; }
  for h in app2 app3; do
    on "$h" "docker exec gitlab-gitlab-$h gitlab-rake gitlab:doctor:secrets" || return 1
  done
}
check "7 nodes 2..N: secrets + host keys byte-identical to app1's" chk_identity
chk_auto_migrate() {
  local h v want
  for h in app1 app2 app3; do
    v=$(on "$h" "docker exec gitlab-gitlab-$h ruby -rjson -e 'puts JSON.parse(\`/opt/gitlab-standin/load_gitlab_rb.rb\`)[\"gitlab_rails\"][\"auto_migrate\"]'") || return 1
    want=false; [[ $h == app1 ]] && want=true
    echo "$h: auto_migrate $v"; [[ "$v" == "$want" ]] || { echo "expected $want"; return 1; }
  done
}
check "7 gitlab.rb: auto_migrate true on app1 only" chk_auto_migrate

# --- restore drill (issue 5) ---------------------------------------------------------------------
chk_ops_status() {
  local out
  out=$(ops status 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  for row in "app1 (migration)" app2 app3 "balancer edge1"; do
    if ! grep -q "^$row .*ready\$" <<<"$out" || grep -q "^$row .*not ready" <<<"$out"; then echo "expected: $row ... ready"; return 1; fi
  done
}
check "restore: ops status shows every node and the balancer ready" chk_ops_status

DRILL_ROW="itest-row-$RANDOM$RANDOM"
DRILL_FILE=/var/opt/gitlab/git-data/repositories/itest/drill.git/objects/itest-blob
sql_gitlab() { { pw gitlab-postgres-password; echo; cat; } | psql_as_gitlab "$1"; }
drill_state() {   # prints: row=<payload or none> file=<sha256 or none>
  local row file
  row=$(echo "SELECT coalesce((SELECT payload FROM itest_drill WHERE id = 1), 'none');" | sql_gitlab app1) || return 1
  file=$(on app1 "docker exec gitlab-gitlab-app1 sh -c 'if [ -f $DRILL_FILE ]; then sha256sum < $DRILL_FILE | cut -c1-64; fi'")
  echo "row=$row file=${file:-none}"
}
chk_drill_data() {
  echo "CREATE TABLE itest_drill (id int PRIMARY KEY, payload text NOT NULL); INSERT INTO itest_drill VALUES (1, '$DRILL_ROW');" | sql_gitlab app1 || return 1
  # written through app2's mount of the share, as a node other than the backup node would
  on app2 "docker exec gitlab-gitlab-app2 sh -c 'mkdir -p ${DRILL_FILE%/*} && head -c 100000 /dev/urandom > $DRILL_FILE'" || return 1
  DRILL_BEFORE=$(drill_state) || return 1
  echo "$DRILL_BEFORE" | tee "$ITEST_WORK/drill.before"
  [[ "$DRILL_BEFORE" == "row=$DRILL_ROW file="[0-9a-f]* ]]
}
check "restore: data created (row in the GitLab DB, file in git-data)" chk_drill_data
chk_backup() {
  local out id
  out=$(ops backup 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  id=$(sed -n 's/^backup id: //p' <<<"$out")
  [[ "$id" =~ ^[0-9]+_[0-9]{4}_[0-9]{2}_[0-9]{2}_18\.4\.1-ce$ ]] || { echo "unexpected backup id '$id'"; return 1; }
  on app1 "ls -l /srv/gitlab/data/backups/${id}_gitlab_backup.tar /srv/gitlab/etc-backups/${id}_gitlab_etc.tar && tar -tf /srv/gitlab/data/backups/${id}_gitlab_backup.tar" || return 1
  out=$(ops backups 2>&1) || return 1
  echo "$out"; grep -q "^$id  18.4.1-ce .* yes\$" <<<"$out" || { echo "ops backups does not list $id with its /etc/gitlab archive"; return 1; }
  echo "$id" > "$ITEST_WORK/backup.id"
}
check "restore: ops backup (the program's backup script) + ops backups" chk_backup
chk_damage() {
  echo "DELETE FROM itest_drill WHERE id = 1;" | sql_gitlab app1 || return 1
  on app1 "docker exec gitlab-gitlab-app1 rm -f $DRILL_FILE" || return 1
  local s; s=$(drill_state) || return 1
  echo "$s" | tee "$ITEST_WORK/drill.damaged"; [[ "$s" == "row=none file=none" ]]
}
check "restore: data damaged (row deleted, file deleted)" chk_damage
standin_version() { on app1 "docker exec gitlab-gitlab-app1 sh -c 'echo $1 > /opt/gitlab/embedded/service/gitlab-rails/VERSION'"; }
running_state() {   # what a refused restore must not touch
  on app1 "docker ps --filter label=gitlab-cluster-itest.standin-for --format '{{.Names}} {{.Status}}' | sed 's/ (.*//; s/Up .*/Up/' | sort; docker exec gitlab-gitlab-app1 gitlab-ctl status puma sidekiq 2>/dev/null | cut -d: -f1,2"
}
chk_restore_refused() {
  local id out rc=0 before after
  id=$(cat "$ITEST_WORK/backup.id") || return 1
  before=$(running_state; drill_state)
  out=$(ops restore "$id" </dev/null 2>&1) && { echo "restore without --yes and no terminal ran: $out"; return 1; }
  echo "without --yes (no terminal): $out"
  standin_version 18.5.0 || return 1
  out=$(ops restore "$id" --yes 2>&1) || rc=$?
  standin_version 18.4.1
  echo "version 18.5.0 running, backup of 18.4.1-ce: exit $rc: $out"
  (( rc == 3 )) || { echo "expected exit 3"; return 1; }
  after=$(running_state; drill_state)
  echo "state after the refused restore:"; echo "$after"
  [[ "$after" == "$before" ]] || { echo "state changed; before:"; echo "$before"; return 1; }
}
check "restore: refused on a version mismatch (exit 3), nothing changed" chk_restore_refused
chk_restore() {
  local id out after
  id=$(cat "$ITEST_WORK/backup.id") || return 1
  out=$(ops restore "$id" --yes 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  after=$(drill_state) || return 1
  echo "before the backup: $(cat "$ITEST_WORK/drill.before")"; echo "after the restore: $after"
  [[ "$after" == "$(cat "$ITEST_WORK/drill.before")" ]]
}
check "restore: ops restore <id> --yes brings row and file back exactly" chk_restore
chk_after_restore() {
  local h
  for h in app1 app2 app3; do on "$h" "docker exec gitlab-gitlab-$h gitlab-rake gitlab:doctor:secrets" | tail -1 || return 1; done
  chk_ops_status
}
check "restore: afterwards secrets verify on app1..3, every node ready" chk_after_restore

# 9. zero-downtime upgrade: `pulumi up` of a new gitlab.image, as the program orders it ---------
gitlab_ids() { local h; for h in app1 app2 app3; do on "$h" "docker inspect -f '{{.Id}}' gitlab-gitlab-$h" || return 1; done; }
chk_upgrade_refused() {   # $1 image, $2 what the refusal must say; nothing may change
  local before out rc=0
  before=$(gitlab_ids) || return 1
  out=$(node_itest upgrade "$1" 2>&1) || rc=$?
  (( rc == 3 )) || { echo "$out" | tail -20; echo "expected the upgrade to be refused (exit 3), got $rc"; return 1; }
  grep -E 'FAIL .*gitlab-gitlab-app1-upgrade-preflight' <<<"$out" >/dev/null || { echo "$out" | tail -20; echo "not refused by the preflight"; return 1; }
  grep -F -- "$2" <<<"$out" || { echo "$out" | tail -20; echo "the refusal does not say: $2"; return 1; }
  [[ "$(gitlab_ids)" == "$before" ]] || { echo "a GitLab container changed"; return 1; }
  echo "refused; no GitLab container changed"
}
chk_upgrade_refused_pending() {
  on app1 'echo 2 > /srv/gitlab/data/standin-pending-background-migrations' || return 1
  chk_upgrade_refused "$UPGRADE_IMAGE" "2 batched background migration(s) of GitLab 18.4.1 are not finished"; local rc=$?
  on app1 'rm -f /srv/gitlab/data/standin-pending-background-migrations'
  return $rc
}
check "upgrade: refused while batched background migrations are pending, nothing changed" chk_upgrade_refused_pending
check "upgrade: 18.4.1 -> 18.6.0 (skips the 18.5 stop) refused, nothing changed" \
  chk_upgrade_refused "gitlab/gitlab-ce:18.6.0-ce.0" "skips required upgrade stop(s) 18.5"
check "upgrade: a downgrade (18.4.0) refused, nothing changed" chk_upgrade_refused "gitlab/gitlab-ce:18.4.0-ce.0" "GitLab does not support downgrades"
chk_upgrade() {   # the upgrade, with GETs through the balancer all along: none may be lost
  local out rc=0 codes total ok
  on data1 'rm -f /tmp/upgrade-loop.* && touch /tmp/upgrade-loop.run' || return 1
  # Bounded: at most 6000 requests (10 per second), until the upgrade has finished.
  on data1 "i=0; while [ -f /tmp/upgrade-loop.run ] && [ \$i -lt 6000 ]; do i=\$((i + 1));
      curl -s -m 15 -o /dev/null -w '%{http_code}\\n' http://$EDGE/ >> /tmp/upgrade-loop.codes; sleep 0.1; done" &
  local loop=$!
  sleep 2
  out=$(node_itest upgrade "$UPGRADE_IMAGE" 2>&1) || rc=$?
  sleep 2
  on data1 'rm -f /tmp/upgrade-loop.run'; wait "$loop"
  echo "$out" | grep -E '^(ok  |FAIL|upgrade to|  (replace|update|create) )' | sed 's/ ([0-9.]*s)$//'
  (( rc == 0 )) || { echo "$out" | tail -30; return 1; }
  codes=$(on data1 'sort /tmp/upgrade-loop.codes | uniq -c') || return 1
  total=$(on data1 'wc -l < /tmp/upgrade-loop.codes'); ok=$(on data1 'grep -c "^200$" /tmp/upgrade-loop.codes')
  echo "requests through the balancer during the upgrade: $total; by status: $(tr -s ' \n' ' ' <<<"$codes")"
  (( total >= 20 && ok == total )) || { echo "expected every request answered 200"; return 1; }
}
check "upgrade: 18.4.1 -> 18.5.0, node after node, 0 requests lost through the balancer" chk_upgrade
chk_upgrade_secrets() {   # 18.5.0 brought a secret: generated on app1 only, then on every node byte for byte
  local h
  for h in app1 app2 app3; do
    on "$h" "grep -q standin_secret_18_5 /srv/gitlab/config/gitlab-secrets.json" || { echo "$h's gitlab-secrets.json lacks the secret 18.5.0 brought"; return 1; }
  done
  chk_identity
}
check "upgrade: the secret 18.5.0 added on app1 reached app2 and app3, every identity file byte-identical" chk_upgrade_secrets
chk_upgrade_order() {   # from the stand-ins: versions, who migrated what with which flags, and when
  local h v log post l
  local -a started=()
  for h in app1 app2 app3; do
    v=$(on "$h" "docker exec gitlab-gitlab-$h cat /opt/gitlab/embedded/service/gitlab-rails/VERSION") || return 1
    started[${#started[@]}]=$(on "$h" "docker inspect -f '{{.State.StartedAt}}' gitlab-gitlab-$h") || return 1
    echo "$h runs $v, started ${started[-1]}"
    [[ "$v" == 18.5.0 ]] || return 1
  done
  [[ "${started[0]}" < "${started[1]}" && "${started[1]}" < "${started[2]}" ]] || { echo "not replaced app1, app2, app3 in turn"; return 1; }
  for h in app2 app3; do
    ! on "$h" 'grep 18.5.0 /srv/gitlab/logs/standin-migrations.log 2>/dev/null' || { echo "$h ran migrations"; return 1; }
  done
  log=$(on app1 'grep " 18.5.0 " /srv/gitlab/logs/standin-migrations.log') || return 1
  echo "app1 (deploy node) migrations at 18.5.0:"; while IFS= read -r l; do echo "  $l"; done <<<"$log"
  [[ "$(grep -c ' reconfigure regular SKIP_POST_DEPLOYMENT_MIGRATIONS=true$' <<<"$log")" == 1 ]] || { echo "expected one start with regular migrations only"; return 1; }
  [[ "$(grep -c 'post-deployment' <<<"$log")" == 1 ]] || { echo "expected post-deployment migrations exactly once"; return 1; }
  post=$(grep ' db:migrate regular+post-deployment SKIP_POST_DEPLOYMENT_MIGRATIONS=unset$' <<<"$log" | cut -d' ' -f1) || { echo "no post-deployment run of db:migrate"; return 1; }
  [[ "$post" > "${started[2]}" ]] || { echo "post-deployment migrations ($post) before the last node started (${started[2]})"; return 1; }
  echo "post-deployment migrations once, at $post, after the last node started"
}
check "upgrade: app1 first (regular migrations only), app2, app3 in turn (none), post-deployment migrations once after the last" chk_upgrade_order

# --- the Gitaly layout (issue 13): a second stack, once the first is removed ----------------------
T_FIRST=$(itest_now)
echo "TIMING first stack (NFS layout): deploy and checks $(( T_FIRST - T_TSC )) s"
if [[ -n "${ITEST_SKIP_GITALY:-}" ]]; then
  echo "ITEST_SKIP_GITALY set: the Gitaly layout is not deployed"
else
  # shellcheck source=gitaly-layout.sh
  source "$ITEST_DIR/gitaly-layout.sh"
fi

T_END=$(itest_now)
echo "TIMING checks $(( T_END - T_TSC )) s (Gitaly layout $(( T_END - T_FIRST )) s); whole run $(( T_END - T_START )) s (image build/reuse $(( T_IMAGES - T_DOCKER )) s)"
itest_summary
