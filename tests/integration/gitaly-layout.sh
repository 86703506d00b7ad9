# shellcheck shell=bash
# The Gitaly layout (issue 13), sourced by run.sh after the first stack's checks: a second stack of
# the program deployed through the same driver, and its checks.
#
# Hosts: data1 .11, app1 .21, app2 .22, edge1 .5 as before, gitaly1 .31 (roles.gitaly: runs only
# Gitaly) and nfs1 .41 (roles.nfsServer: a storage host of its own, running no GitLab). Stack:
# tests/integration/stack.ts with ITEST_LAYOUT=gitaly. The first stack's containers and volumes
# are removed first (the cluster name, so the container and volume names, are the same); its
# /srv directories stay until the run's cleanup, this stack's live under $GITALY_SRV_ROOT.
#
# The Gitaly node runs the GitLab stand-in image, which acts as a Gitaly STAND-IN there (plain
# HTTP with the token, NOT gRPC: the real Gitaly cannot be fetched here; see the README). The
# Rails stand-ins keep their default, STRICT readiness: /-/readiness is 503 unless their Gitaly
# answers its health call with their gitlab_rails['gitaly_token'] (GITLAB_STANDIN_GITALY_READINESS
# is left unset on purpose; real GitLab checks Gitaly only with ?all=1), so a ready Rails node
# proves the address, the firewall and the token are wired. Nothing here sets that variable.
#
# Uses run.sh's globals (IMG_*, ITEST_*, check, on, pw, ops, node_itest) and redefines
# CLUSTER_IP, ITEST_WORK and GITLAB_CLUSTER_KEY_DIR for this stack.

T_G0=$(itest_now)
echo "--- the Gitaly layout: app1 app2 (GitLab), gitaly1 (Gitaly only), nfs1 (NFS only), data1, edge1 ---"
cluster_remove_stack || itest_die "could not remove the first stack before the Gitaly layout"

export ITEST_LAYOUT=gitaly ITEST_LOG_PREFIX=gitaly-
GITALY_SRV_ROOT="$ITEST_SRV_ROOT/gitaly-layout"   # under the run's /srv root: removed with it
ITEST_WORK="$ITEST_TMP/work-gitaly"
mkdir -m 700 "$ITEST_WORK" "$ITEST_WORK/keys"
export ITEST_WORK GITLAB_CLUSTER_KEY_DIR="$ITEST_WORK/keys"
unset CLUSTER_IP
declare -gA CLUSTER_IP=([edge1]=$(itest_ip 5) [data1]=$(itest_ip 11) [app1]=$(itest_ip 21) [app2]=$(itest_ip 22)
  [gitaly1]=$(itest_ip 31) [nfs1]=$(itest_ip 41))
EDGE=${CLUSTER_IP[edge1]} DATA=${CLUSTER_IP[data1]} GITALY=${CLUSTER_IP[gitaly1]} NFS1=${CLUSTER_IP[nfs1]}
# gitaly.dataRoot and gitaly.port are the defaults (stack.ts sets neither).
GITALY_ROOT=/srv/gitlab-cluster/gitaly
GITALY_PORT=8075
GITALY_LOG=$GITALY_ROOT/logs/gitaly/standin.log          # the Gitaly stand-in's log, on gitaly1
GITALY_REPOS=$GITALY_ROOT/data/git-data/repositories     # storage "default", on gitaly1

g_node() { ITEST_SRV_ROOT=$GITALY_SRV_ROOT node_itest "$@"; }
g_start_host() { ITEST_SRV_ROOT=$GITALY_SRV_ROOT cluster_start_host "$@"; }

mkdir -p "$GITALY_SRV_ROOT/nfs1/srv"
G_NFS_SHARE=(-v "$GITALY_SRV_ROOT/nfs1/srv:/run/itest-nfs-server/$NFS1/srv")
g_start_host nfs1 "$NFS1" || itest_die "start nfs1"
g_start_host data1 "$DATA" "${FIREWALLED[@]}" || itest_die "start data1"
g_start_host gitaly1 "$GITALY" "${FIREWALLED[@]}" || itest_die "start gitaly1"
g_start_host app1 "${CLUSTER_IP[app1]}" "${FIREWALLED[@]}" "${NFS_CLIENT_CAPS[@]}" "${G_NFS_SHARE[@]}" || itest_die "start app1"
g_start_host app2 "${CLUSTER_IP[app2]}" "${FIREWALLED[@]}" "${NFS_CLIENT_CAPS[@]}" "${G_NFS_SHARE[@]}" || itest_die "start app2"
g_start_host edge1 "$EDGE" || itest_die "start edge1"
cluster_hosts_ready "$ITEST_WORK/inventory.json"
echo "TIMING Gitaly layout: first stack removed, hosts up in $(( $(itest_now) - T_G0 )) s"

G_FAILED_BEFORE=$ITEST_FAILED
check "gitaly: evaluate the Gitaly layout's stack (roles.gitaly gitaly1, nfsServer nfs1)" g_node prepare
check "gitaly: deploy: every command over SSH + every container, in order" g_node deploy
if (( ITEST_FAILED > G_FAILED_BEFORE )); then
  echo "the Gitaly layout's deploy failed: its checks need the deployed stack; not running them"
  return 0
fi

# Helpers ----------------------------------------------------------------------------------------
# gitaly_api HOST METHOD PATH: from HOST's GitLab container, with the Gitaly address and token of
# its own loaded gitlab.rb (repositories_storages' default, gitlab_rails['gitaly_token']; the token
# is never printed). Prints the body, then " HTTP <code>".
cat > "$ITEST_WORK/gitaly-api.sh" <<'EOF'
set -eu
s=/var/opt/gitlab/standin-settings.json
t=$(ruby -rjson -e 'print JSON.parse(File.read(ARGV[0])).dig("gitlab_rails", "gitaly_token").to_s' "$s")
a=$(ruby -rjson -e 'print JSON.parse(File.read(ARGV[0])).dig("gitlab_rails", "repositories_storages", "default", "gitaly_address").to_s.sub(%r{\Atcp://}, "")' "$s")
[ -n "$t" ] && [ -n "$a" ] || { echo "no gitaly_token / repositories_storages default in this node's loaded gitlab.rb" >&2; exit 1; }
curl -sS -m 60 -X "$1" -H "Authorization: Bearer $t" -w " HTTP %{http_code}" "http://$a$2"
EOF
gitaly_api() { on "$1" "docker exec -i gitlab-gitlab-$1 sh -s -- $2 '$3'" < "$ITEST_WORK/gitaly-api.sh"; }
readiness() {   # readiness HOST: "<body> HTTP <code>" of its GitLab node's /-/readiness
  on "$1" "docker exec gitlab-gitlab-$1 curl -sS -m 10 -w ' HTTP %{http_code}' http://127.0.0.1/-/readiness"
}
gitaly_log_lines() { on gitaly1 "wc -l < $GITALY_LOG"; }
gitaly_log_since() { on gitaly1 "tail -n +\$(( $1 + 1 )) $GITALY_LOG"; }   # gitaly_log_since N: lines after the first N
json_get() {   # json_get EXPR: evaluates EXPR on `j` (the JSON on stdin) with node; prints the result
  node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); const v = eval(process.argv[1]); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));' "$1"
}
ns_of() { date -u -d "$1" +%s%N; }

# gitaly 1. the Gitaly node runs only Gitaly; the Rails nodes are ready because their token works --
chk_gitaly_only() {
  local cfg out facts
  cfg=$(on gitaly1 'docker exec gitlab-gitaly gitlab-ctl show-config 2>/dev/null') || { echo "gitlab-ctl show-config failed on gitaly1"; return 1; }
  # shellcheck disable=SC2016 # JavaScript for json_get, not shell
  out=$(json_get '["puma", "sidekiq", "nginx", "gitlab_workhorse", "postgresql", "redis", "gitlab_kas", "gitlab_exporter", "prometheus_monitoring"].map(s => `${s}=${j[s]?.enable}`).join(" ")' <<<"$cfg")
  echo "stand-in settings on gitaly1 (what its reconfigure loaded): enable: $out"
  [[ "$out" != *=true* && "$out" != *=undefined* ]] || { echo "expected every service but Gitaly disabled (enable=false)"; return 1; }
  # shellcheck disable=SC2016 # JavaScript for json_get, not shell
  out=$(json_get '`gitaly: enable=${j.gitaly?.enable} listen_addr=${j.gitaly?.configuration?.listen_addr} storage=${JSON.stringify(j.gitaly?.configuration?.storage)} token=${(j.gitaly?.configuration?.auth?.token ?? "") === "" ? "NONE" : "set"}`' <<<"$cfg")
  echo "$out"
  [[ "$out" == *"enable=undefined listen_addr=0.0.0.0:$GITALY_PORT storage=[{\"name\":\"default\",\"path\":\"/var/opt/gitlab/git-data/repositories\"}] token=set" ]] \
    || { echo "expected Gitaly on 0.0.0.0:$GITALY_PORT, storage default at /var/opt/gitlab/git-data/repositories, an auth token"; return 1; }
  out=$(on gitaly1 'docker exec gitlab-gitaly gitlab-ctl status 2>/dev/null') || { echo "$out"; echo "gitlab-ctl status: a service is down"; return 1; }
  echo "gitlab-ctl status:"; sed 's/^/  /' <<<"$out"
  [[ "$(cut -d: -f2 <<<"$out" | tr -d ' ' | sort | tr '\n' ' ')" == "gitaly logrotate sshd " ]] || { echo "expected gitaly, logrotate and sshd only"; return 1; }
  out=$(on gitaly1 "ss -Htln | awk '{print \$4}' | sort -u | tr '\n' ' '")
  echo "listening on gitaly1: $out"
  grep -Eq "(^| )(0\.0\.0\.0|\*):$GITALY_PORT " <<<"$out" || { echo "Gitaly does not listen on :$GITALY_PORT"; return 1; }
  if grep -Eq ':80 ' <<<"$out"; then echo "something listens on port 80 of the Gitaly node"; return 1; fi
  out=$(on app1 "curl -sS -m 5 -o /dev/null http://$GITALY/ 2>&1; echo \" rc=\$?\"")
  echo "app1 -> $GITALY:80:$out"; [[ "$out" == *"rc=7" ]] || { echo "expected connection refused (nothing serves HTTP there)"; return 1; }
  facts=$(node -e 'const f = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); for (const h of ["gitaly1", "nfs1"]) console.log(`${h}: ${f.containers.filter(c => c.host === h).map(c => c.name).join(",") || "none"}`);' "$ITEST_WORK/facts.json")
  echo "containers the program runs: ${facts//$'\n'/; }"
  [[ "$facts" == $'gitaly1: gitlab-gitaly\nnfs1: none' ]] || { echo "expected gitlab-gitaly alone on gitaly1 and no container on nfs1"; return 1; }
}
check "gitaly 1: gitaly1 runs only Gitaly (Rails services off, :$GITALY_PORT, nothing on :80)" chk_gitaly_only

chk_gitaly_token() {
  local h out n log app1=${CLUSTER_IP[app1]}
  for h in app1 app2; do
    out=$(readiness "$h") || { echo "$h: $out"; return 1; }
    echo "$h /-/readiness: $out"
    [[ "$out" == *'"gitaly_check":[{"status":"ok","labels":{"shard":"default"}}]'*' HTTP 200' ]] \
      || { echo "expected 200 with Gitaly's health call ok (the stand-ins' strict readiness)"; return 1; }
    out=$(gitaly_api "$h" GET /standin-gitaly/health) || { echo "$out"; return 1; }
    echo "$h -> Gitaly health with its gitaly_token: ${out##* HTTP }"
    [[ "$out" == *'"auth":"token"'*' HTTP 200' ]] || { echo "$out"; echo "expected 200 (token accepted, auth on)"; return 1; }
  done
  out=$(on app1 "docker exec gitlab-gitlab-app1 gitlab-rake gitlab:check SANITIZE=true" 2>&1) || { echo "$out"; return 1; }
  grep '^Gitaly' <<<"$out"
  grep -q "^Gitaly: storage default at tcp://$GITALY:$GITALY_PORT .* \.\.\. yes" <<<"$out" || { echo "expected gitlab:check's Gitaly line ... yes"; return 1; }
  n=$(gitaly_log_lines) || return 1
  out=$(on app1 "curl -sS -m 10 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer not-the-gitaly-token' http://$GITALY:$GITALY_PORT/standin-gitaly/health")
  echo "app1 -> Gitaly health with a wrong token: HTTP $out"; [[ "$out" == 401 ]] || { echo "expected 401"; return 1; }
  out=$(on app1 "curl -sS -m 10 -o /dev/null -w '%{http_code}' http://$GITALY:$GITALY_PORT/standin-gitaly/health")
  echo "app1 -> Gitaly health without a token: HTTP $out"; [[ "$out" == 401 ]] || { echo "expected 401"; return 1; }
  log=$(gitaly_log_since "$n") || return 1
  grep -F "REFUSED $app1:" <<<"$log" || { echo "no REFUSED line from $app1 in $GITALY_LOG; new lines:"; echo "$log"; return 1; }
  grep -q "REFUSED $app1:[0-9]* \"GET /standin-gitaly/health\" 401: wrong token" <<<"$log" || { echo "expected a REFUSED ... 401: wrong token line"; return 1; }
}
check "gitaly 1: app1+app2 ready with Gitaly's token; a wrong token gets 401 + REFUSED in its log" chk_gitaly_token

chk_gitaly_readiness_follows() {   # readiness is 200 only while Gitaly answers app1 and accepts its token
  local out rc=0 i rb=/etc/gitlab/gitlab.rb
  on gitaly1 'docker exec gitlab-gitaly gitlab-ctl stop gitaly' || { echo "gitlab-ctl stop gitaly failed"; return 1; }
  sleep 6   # the stand-ins reuse a health result for 5 s
  out=$(readiness app1) || true
  on gitaly1 'docker exec gitlab-gitaly gitlab-ctl status gitaly' >/dev/null 2>&1 || rc=$?
  on gitaly1 'docker exec gitlab-gitaly gitlab-ctl start gitaly' || { echo "gitlab-ctl start gitaly failed"; return 1; }
  echo "Gitaly stopped: gitlab-ctl status gitaly exit $rc; app1 /-/readiness: $out"
  (( rc == 3 )) || { echo "expected gitlab-ctl status gitaly to exit 3 (down)"; return 1; }
  [[ "$out" == *"gitaly default at tcp://$GITALY:$GITALY_PORT: connection refused"*' HTTP 503' ]] \
    || { echo "expected 503 naming the Gitaly and 'connection refused'"; return 1; }
  # Another token on app1 (a line appended to its gitlab.rb, reconfigured), then its own file again.
  on app1 "docker exec gitlab-gitlab-app1 sh -c \"cp $rb /tmp/itest-gitlab.rb && echo \\\"gitlab_rails['gitaly_token'] = 'not-the-gitaly-token'\\\" >> $rb && gitlab-ctl reconfigure >/dev/null 2>&1\"" \
    || { echo "could not give app1 another token"; on app1 "docker exec gitlab-gitlab-app1 sh -c 'cat /tmp/itest-gitlab.rb > $rb && gitlab-ctl reconfigure'" >/dev/null 2>&1; return 1; }
  sleep 6
  out=$(readiness app1) || true
  on app1 "docker exec gitlab-gitlab-app1 sh -c 'cat /tmp/itest-gitlab.rb > $rb && rm /tmp/itest-gitlab.rb && gitlab-ctl reconfigure >/dev/null 2>&1'" || { echo "could not put app1's gitlab.rb back"; return 1; }
  echo "app1 with another gitaly_token: /-/readiness: $out"
  [[ "$out" == *"gitaly default at tcp://$GITALY:$GITALY_PORT: 401 token refused"*' HTTP 503' ]] \
    || { echo "expected 503: 401 token refused"; return 1; }
  for (( i = 0; i < 20; i++ )); do
    out=$(readiness app1) && [[ "$out" == *' HTTP 200' ]] && break
    sleep 1
  done
  echo "Gitaly started again, app1's own gitlab.rb reconfigured: /-/readiness after ${i}s: ${out##* HTTP }"
  [[ "$out" == *' HTTP 200' ]] || { echo "$out"; echo "app1 did not become ready again"; return 1; }
}
check "gitaly 1: app1's readiness follows Gitaly: stopped or another token -> 503; back -> 200" chk_gitaly_readiness_follows

# gitaly 2. packets through the program's firewall on gitaly1 --------------------------------------
chk_gitaly_firewall() {
  local out h rc sources want
  out=$(on gitaly1 'iptables -S') || return 1
  grep -E 'GLC-GITALY' <<<"$out"
  grep -qxF -- "-A INPUT -d $GITALY/32 -p tcp -m tcp --dport $GITALY_PORT -m conntrack --ctdir ORIGINAL -j GLC-GITALY" <<<"$out" \
    || { echo "missing the INPUT jump to GLC-GITALY for $GITALY:$GITALY_PORT"; return 1; }
  sources=$(sed -n 's/^-A GLC-GITALY -s \(.*\) -j RETURN$/\1/p' <<<"$out" | sort | tr '\n' ' ')
  want=$(printf '%s/32\n' "${CLUSTER_IP[app1]}" "${CLUSTER_IP[app2]}" | sort | tr '\n' ' ')
  [[ "$sources" == "$want" ]] || { echo "GLC-GITALY admits '$sources'; expected the GitLab hosts only: '$want'"; return 1; }
  [[ "$(grep '^-A GLC-GITALY' <<<"$out" | tail -1)" == "-A GLC-GITALY -j DROP" ]] || { echo "GLC-GITALY does not end in DROP"; return 1; }
  for h in app1 app2; do
    on "$h" "timeout 5 bash -c '</dev/tcp/$GITALY/$GITALY_PORT'" || { echo "$h cannot connect to $GITALY:$GITALY_PORT"; return 1; }
  done
  for h in edge1 data1; do
    rc=0; on "$h" "timeout 3 bash -c '</dev/tcp/$GITALY/$GITALY_PORT'" 2>/dev/null || rc=$?
    (( rc == 124 )) || { echo "$h -> $GITALY:$GITALY_PORT: exit $rc; expected a timeout (124: dropped), not a connection or a refusal"; return 1; }
  done
  echo "$GITALY:$GITALY_PORT: app1 and app2 connect, edge1 and data1 time out"
  on gitaly1 'iptables -L GLC-GITALY -v -n -x' | awk '$3 == "DROP" {print "GLC-GITALY DROP counter: " $1 " packets"} $3 == "DROP" && $1 > 0 {found=1} END {exit !found}' \
    || { echo "GLC-GITALY dropped no packet"; return 1; }
}
check "gitaly 2: firewall: app1+app2 reach gitaly1:$GITALY_PORT, edge1+data1 time out (dropped)" chk_gitaly_firewall

# gitaly 3. the NFS share on a storage host of its own, without git-data ------------------------------
chk_gitaly_nfs_export() {
  local file clients want out
  on nfs1 "dpkg-query -W -f='\${Package} \${Version} \${Status}\n' nfs-kernel-server" || { echo "nfs-kernel-server was not installed on nfs1"; return 1; }
  # shellcheck disable=SC2016 # expanded on nfs1
  on nfs1 'out=$(exportfs -ra 2>&1); rc=$?; echo "exportfs -ra: rc=$rc ${out:-(no output)}"; [ $rc = 0 ] && [ -z "$out" ]' || return 1
  file=$(on nfs1 'cat /etc/exports.d/gitlab-cluster.exports') || return 1
  echo "$file"
  clients=$(grep -v '^#' <<<"$file" | awk '{for (i = 2; i <= NF; i++) {sub(/\(.*/, "", $i); print $i}}' | sort | tr '\n' ' ')
  want=$(printf '%s\n' "${CLUSTER_IP[app1]}" "${CLUSTER_IP[app2]}" | sort | tr '\n' ' ')
  [[ "$clients" == "$want" ]] || { echo "exported to: '$clients'; expected every GitLab host (app1 app2): '$want'"; return 1; }
  on nfs1 'cat /var/lib/nfs/etab' | grep -c "^/srv/gitlab-nfs" | grep -qx 2 || { echo "etab does not hold the export for 2 clients"; return 1; }
  out=$(on nfs1 'ls -A /srv/gitlab-nfs | tr "\n" " "; echo "| /srv: $(ls -A /srv | tr "\n" " ")"')
  echo "nfs1 /srv/gitlab-nfs: $out"
  [[ "$out" == ".gitlab-cluster-share builds shared ssh uploads | /srv: gitlab-nfs " ]] \
    || { echo "expected the share without git-data, and nothing of GitLab's on nfs1 (only /srv/gitlab-nfs)"; return 1; }
}
check "gitaly 3: nfs1 exports to app1+app2 (exportfs -ra), no git-data dir, no GitLab there" chk_gitaly_nfs_export

chk_gitaly_nfs_mounts() {
  local h out marker
  for h in app1 app2; do
    on "$h" "grep '^$NFS1:/srv/gitlab-nfs /srv/gitlab-nfs nfs ' /etc/fstab && findmnt -n -o TARGET /srv/gitlab-nfs" >/dev/null \
      || { echo "$h: no fstab entry for $NFS1:/srv/gitlab-nfs, or not mounted"; return 1; }
    out=$(on "$h" "docker inspect -f '{{range .Mounts}}{{.Source}} -> {{.Destination}}{{println}}{{end}}' gitlab-gitlab-$h" | grep '/srv/gitlab-nfs/' | sed "s|^$GITALY_SRV_ROOT/$h/srv||")
    echo "$h's GitLab container, from the share:"; sed 's/^/  /' <<<"$out"
    [[ $(wc -l <<<"$out") == 5 ]] || { echo "expected 5 mounts from the share (uploads, shared, builds, ssh, the marker)"; return 1; }
    if grep -q 'git-data' <<<"$out"; then echo "$h mounts git-data from the share"; return 1; fi
    out=$(on "$h" "docker exec gitlab-gitlab-$h sh -c 'ls -d /var/opt/gitlab/git-data 2>&1'") && { echo "$h has $out"; return 1; }
    echo "$h: no /var/opt/gitlab/git-data in the container (gitaly['enable'] = false)"
  done
  marker="itest-$RANDOM-$RANDOM"
  on app1 "docker exec gitlab-gitlab-app1 sh -c 'echo $marker > /var/opt/gitlab/gitlab-rails/uploads/itest-share'" || return 1
  on app2 "docker exec gitlab-gitlab-app2 cat /var/opt/gitlab/gitlab-rails/uploads/itest-share" | grep -qx "$marker" || { echo "app2 does not see app1's upload"; return 1; }
  on nfs1 "cat /srv/gitlab-nfs/uploads/itest-share" | grep -qx "$marker" || { echo "the upload is not on nfs1's share"; return 1; }
  on nfs1 'rm -f /srv/gitlab-nfs/uploads/itest-share'
  echo "an upload written by app1's GitLab is read by app2's and lies on nfs1"
}
check "gitaly 3: app1+app2 mount nfs1's share (stand-in), no git-data from it; uploads shared" chk_gitaly_nfs_mounts

# gitaly 4. ordering: Gitaly ready before the migration node's container started --------------------
chk_gitaly_order() {
  local out listening started
  out=$(node -e '
    const events = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(l => JSON.parse(l)).filter(e => e.run === "deploy");
    const at = (step, what) => { const e = events.find(x => x.step === step); if (!e) throw new Error(`no ${step} in the deploy timeline`); return e[what]; };
    const ready = at("gitlab-gitaly-ready", "end");
    let bad = 0;
    console.log(`driver: container gitlab-gitaly started ${at("gitlab-gitaly", "start")}, gitlab-gitaly-ready done ${ready}`);
    for (const c of ["gitlab-gitlab-app1", "gitlab-gitlab-app2"]) {
      const s = at(c, "start");
      console.log(`driver: container ${c} started ${s}${s >= ready ? "" : "  <-- BEFORE Gitaly was ready"}`);
      if (s < ready) bad++;
    }
    process.exit(bad ? 1 : 0);' "$ITEST_WORK/timeline.jsonl" 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  # The same from the services themselves: the Gitaly stand-in's first listen, app1's container start.
  listening=$(on gitaly1 "grep -m1 ' listening on ' $GITALY_LOG | cut -d' ' -f1") || return 1
  started=$(on app1 "docker inspect -f '{{.State.StartedAt}}' gitlab-gitlab-app1") || return 1
  echo "Gitaly stand-in first listened at $listening; app1 (migration node) container started at $started"
  if [[ -z "$listening" ]] || (( $(ns_of "$listening") >= $(ns_of "$started") )); then echo "Gitaly was not listening before the migration node started"; return 1; fi
}
check "gitaly 4: Gitaly ready before the migration node's container started (driver + docker)" chk_gitaly_order

# a second run, as for the first stack ---------------------------------------------------------------
check "gitaly: second run of every command changes nothing" g_node rerun

# gitaly 5. a gitlab.rb change on the Gitaly node: reconfigured in place --------------------------------
chk_gitaly_reconfigure() {
  local before after marker out rc=0 n log cfg
  before=$(on gitaly1 "docker inspect -f '{{.Id}} {{.State.StartedAt}}' gitlab-gitaly") || return 1
  n=$(gitaly_log_lines) || return 1
  marker="itest-$RANDOM$RANDOM"
  # gitaly['env'] (environment of Gitaly's process): harmless, and it reaches the Gitaly node's gitlab.rb.
  out=$(g_node change "{\"gitlab\":{\"omnibus\":{\"gitaly\":{\"env\":{\"ITEST_MARKER\":\"$marker\"}}}}}" 2>&1) || rc=$?
  grep -E '^(ok  |FAIL|change |  (replace|update|create) )' <<<"$out" | sed 's/ ([0-9.]*s)$//'
  (( rc == 0 )) || { echo "$out" | tail -30; return 1; }
  grep -q '^  update gitlab-gitaly-rollout' <<<"$out" || { echo "the change did not update gitlab-gitaly-rollout (its reconfigure)"; return 1; }
  if grep -Eq '^  (replace|create)|container gitlab-gitaly' <<<"$out"; then echo "the change replaces or creates something (expected updates only, no container)"; return 1; fi
  # the rollout step's own output: from its "ok" line to the next step's
  awk '/^(ok  |FAIL)/ {on = / \[gitaly1\] gitlab-gitaly-rollout /} on' <<<"$out" | grep -m1 'reconfiguring gitlab-gitaly' \
    || { echo "the rollout's output does not show the reconfigure of gitlab-gitaly"; return 1; }
  after=$(on gitaly1 "docker inspect -f '{{.Id}} {{.State.StartedAt}}' gitlab-gitaly") || return 1
  echo "gitlab-gitaly before: ${before:0:12}… started ${before#* }"; echo "gitlab-gitaly after:  ${after:0:12}… started ${after#* }"
  [[ "$after" == "$before" ]] || { echo "the Gitaly container was replaced or restarted"; return 1; }
  cfg=$(on gitaly1 'docker exec gitlab-gitaly gitlab-ctl show-config 2>/dev/null') || return 1
  out=$(json_get 'j.gitaly?.env?.ITEST_MARKER ?? "unset"' <<<"$cfg")
  echo "stand-in settings on gitaly1: gitaly['env']['ITEST_MARKER'] = $out"
  [[ "$out" == "$marker" ]] || { echo "expected $marker"; return 1; }
  log=$(gitaly_log_since "$n") || return 1
  grep -m1 'SIGHUP: settings re-read' <<<"$log" || { echo "the Gitaly stand-in was not told to re-read its settings"; return 1; }
  for h in app1 app2; do
    out=$(readiness "$h"); [[ "$out" == *' HTTP 200' ]] || { echo "$h after the change: $out"; return 1; }
  done
  echo "app1 and app2 still ready (Gitaly's token unchanged)"
}
check "gitaly 5: gitlab.rb change on gitaly1: reconfigured in place, same container, settings updated" chk_gitaly_reconfigure

# gitaly 6. backup and restore with the repositories on the Gitaly node -----------------------------
G_REPO=itest/gitaly-drill.git
G_BLOB=objects/itest-blob
repo_state() {   # prints: listed=<yes|no> blob=<sha256 owner|none>
  local list blob
  list=$(gitaly_api app1 GET '/standin-gitaly/repos?storage=default') || { echo "$list"; return 1; }
  [[ "$list" == *' HTTP 200' ]] || { echo "repos: $list"; return 1; }
  blob=$(on gitaly1 "f=$GITALY_REPOS/$G_REPO/$G_BLOB; if [ -f \$f ]; then echo \$(sha256sum < \$f | cut -c1-64) \$(docker exec gitlab-gitaly stat -c %U /var/opt/gitlab/git-data/repositories/$G_REPO/$G_BLOB); fi")
  echo "listed=$( [[ "$list" == *"\"$G_REPO\""* ]] && echo yes || echo no) blob=${blob:-none}"
}
chk_gitaly_drill_data() {
  local out s
  out=$(gitaly_api app2 POST "/standin-gitaly/repo?storage=default&path=$G_REPO") || { echo "$out"; return 1; }
  echo "created through the API (from app2, with its token): $out"
  [[ "$out" == *'"created":true'*' HTTP 201' ]] || { echo "expected 201 created"; return 1; }
  on gitaly1 "docker exec -u git gitlab-gitaly sh -c 'head -c 100000 /dev/urandom > /var/opt/gitlab/git-data/repositories/$G_REPO/$G_BLOB'" || return 1
  on gitaly1 "ls -ld $GITALY_REPOS/$G_REPO && test -f $GITALY_REPOS/$G_REPO/HEAD" || { echo "not a bare repository on gitaly1's disk"; return 1; }
  s=$(repo_state) || { echo "$s"; return 1; }
  echo "$s" | tee "$ITEST_WORK/gitaly-drill.before"
  [[ "$s" == "listed=yes blob="[0-9a-f]*" git" ]] || { echo "expected the repository listed and its blob owned by git"; return 1; }
}
check "gitaly 6: repository created through the Gitaly API, on gitaly1's disk" chk_gitaly_drill_data
chk_gitaly_backup() {
  local out id
  out=$(ops backup 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  id=$(sed -n 's/^backup id: //p' <<<"$out")
  [[ "$id" =~ ^[0-9]+_[0-9]{4}_[0-9]{2}_[0-9]{2}_18\.4\.1-ce$ ]] || { echo "unexpected backup id '$id'"; return 1; }
  out=$(on app1 "tar -xOf /srv/gitlab/data/backups/${id}_gitlab_backup.tar repositories.tar | tar -t") || { echo "no repositories.tar in the backup"; return 1; }
  grep -x "./repositories/$G_REPO/$G_BLOB" <<<"$out" || { echo "the backup's repositories.tar lacks the repository on gitaly1:"; head <<<"$out"; return 1; }
  echo "$id" > "$ITEST_WORK/gitaly-backup.id"
}
check "gitaly 6: ops backup streams the repositories from gitaly1 into the archive" chk_gitaly_backup
chk_gitaly_damage() {
  local s
  on gitaly1 "rm -rf $GITALY_REPOS/${G_REPO%%/*}" || return 1
  s=$(repo_state) || { echo "$s"; return 1; }
  echo "after deleting it on gitaly1: $s"; [[ "$s" == "listed=no blob=none" ]]
}
check "gitaly 6: repository deleted on gitaly1" chk_gitaly_damage
chk_gitaly_restore() {
  local id out after n
  id=$(cat "$ITEST_WORK/gitaly-backup.id") || return 1
  n=$(gitaly_log_lines) || return 1
  out=$(ops restore "$id" --yes 2>&1) || { echo "$out"; return 1; }
  echo "$out" | tail -8
  gitaly_log_since "$n" | grep -m1 'restore of storage default' || { echo "the Gitaly stand-in logged no restore"; return 1; }
  after=$(repo_state) || { echo "$after"; return 1; }
  echo "before the backup: $(cat "$ITEST_WORK/gitaly-drill.before")"; echo "after the restore: $after"
  [[ "$after" == "$(cat "$ITEST_WORK/gitaly-drill.before")" ]] || { echo "not restored exactly"; return 1; }
  out=$(ops status 2>&1) || { echo "$out"; return 1; }
  echo "$out"
}
check "gitaly 6: ops restore <id> --yes puts the repository back on gitaly1, every node ready" chk_gitaly_restore

echo "TIMING Gitaly layout $(( $(itest_now) - T_G0 )) s"
