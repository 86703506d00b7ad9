#!/bin/bash
# Self-test of the Gitaly tier of the GitLab STAND-IN (gitlab-cluster-test). The Gitaly
# stand-in is NOT Gitaly (plain HTTP/1.1, not gRPC). Runs the stand-in's Ruby pieces directly on
# this machine, no image and no container: every node is a set of temp directories
# (GITLAB_STANDIN_ETC/_VAR/_RUN/_LOG), every server listens on 127.0.0.1 on a free port.
#
#   bash tests/integration/images/gitlab-standin/selftest-gitaly.sh    # needs ruby, curl, tar (git optional)
#
# Nodes: `gitaly` (a Gitaly node's gitlab.rb: puma off, gitaly['configuration'] with listen_addr,
# auth token, storage `default`), `rails` (gitaly['enable'] = false, repositories_storages ->
# tcp://127.0.0.1:<gitaly port>, gitaly_token), `nfs` (today's layout: no repositories_storages),
# `bad` (a Gitaly node with a malformed listen_addr). Everything started is stopped on exit
# (trap); the exit status is non-zero when a check failed. Set SELFTEST_KEEP=1 to keep the temp
# directory (its path is printed).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for c in ruby curl tar; do command -v "$c" >/dev/null || { echo "selftest-gitaly: needs $c" >&2; exit 2; }; done

T=$(mktemp -d /tmp/gitaly-standin-selftest.XXXXXX)
PIDS=()
cleanup() {
  local pid e
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  # safety net: a process of this run that was not tracked (its environment names this run's dir)
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}; pid=${pid%/environ}
    if grep -qzF "GITLAB_STANDIN_VAR=$T/" "$e" 2>/dev/null; then
      echo "selftest-gitaly: WARNING: untracked process $pid of this run left; stopping it" >&2
      kill "$pid" 2>/dev/null
    fi
  done
  if [[ -n "${SELFTEST_KEEP:-}" ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASS=0
FAIL=0
check() {   # check "description" command...
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then
    PASS=$((PASS + 1)); echo "ok   - $desc"
    [[ -n "${SELFTEST_VERBOSE:-}" && -n "$out" ]] && printf '       %s\n' "${out//$'\n'/$'\n'       }"
  else
    FAIL=$((FAIL + 1)); echo "FAIL - $desc"
    printf '       %s\n' "${out//$'\n'/$'\n'       }" | tail -n 25
  fi
  return 0
}
expect_eq() {   # expect_eq WHAT EXPECTED ACTUAL
  [[ "$2" == "$3" ]] && return 0
  printf '%s: expected %q, saw %q\n' "$1" "$2" "$3"; return 1
}
expect_match() {   # expect_match WHAT REGEX ACTUAL
  [[ "$3" =~ $2 ]] && return 0
  printf '%s: expected to match /%s/, saw:\n%s\n' "$1" "$2" "$3"; return 1
}
free_port() { ruby -rsocket -e 's = TCPServer.new("127.0.0.1", 0); puts s.addr[1]; s.close'; }
rand_token() { ruby -rsecurerandom -e 'print SecureRandom.alphanumeric(40)'; }

mkdir -p "$T/bin"
ln -s "$HERE/gitlab-ctl" "$T/bin/gitlab-ctl"
echo "18.4.1" > "$T/VERSION"
# node_env NODE: sets NODE_ENV to the environment of a command "inside" that node's container
node_env() {
  local n=$1
  mkdir -p "$T/$n/etc" "$T/$n/var" "$T/$n/run" "$T/$n/log"
  NODE_ENV=(GITLAB_STANDIN_DIR="$HERE" GITLAB_STANDIN_ETC="$T/$n/etc" GITLAB_STANDIN_VAR="$T/$n/var"
            GITLAB_STANDIN_RUN="$T/$n/run" GITLAB_STANDIN_LOG="$T/$n/log" GITLAB_STANDIN_NO_ACCOUNTS=1
            GITLAB_STANDIN_VERSION_FILE="$T/VERSION" NODE_NAME="$n" PATH="$T/bin:$PATH")
}
# on NODE CMD...: run CMD in that node
on() { node_env "$1"; shift; env "${NODE_ENV[@]}" "$@"; }
# start NODE CMD...: run CMD in that node in the background (env execs it: $! is its pid); stopped on exit
start() {
  local n=$1 log=$2; shift 2
  node_env "$n"
  env "${NODE_ENV[@]}" "$@" > "$log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}
ctl() { local n=$1; shift; on "$n" bash "$HERE/gitlab-ctl" "$@" 2>/dev/null; }

# --- gitlab.rb files, as the program pushes them (quoting and order are its own) ----------------
STORAGE="$T/gitaly/var/git-data/repositories"
write_gitaly_rb() {   # TOKEN PORT
  mkdir -p "$T/gitaly/etc"
  cat > "$T/gitaly/etc/gitlab.rb" <<EOF
# Gitaly node (selftest)
external_url 'https://gitlab.example.com'
postgresql['enable'] = false
redis['enable'] = false
nginx['enable'] = false
puma['enable'] = false
sidekiq['enable'] = false
gitlab_workhorse['enable'] = false
gitlab_exporter['enable'] = false
gitlab_kas['enable'] = false
prometheus_monitoring['enable'] = false
gitlab_rails['auto_migrate'] = false
gitlab_rails['rake_cache_clear'] = false
gitlab_rails['internal_api_url'] = "https://gitlab.example.com"
gitlab_shell['secret_token'] = "$SHELL_SECRET"
gitaly['configuration'] = {
  listen_addr: "127.0.0.1:$2",
  auth: { token: "$1" },
  storage: [{ name: "default", path: "$STORAGE" }],
}
EOF
}
write_rails_rb() {   # NODE TOKEN PORT ("" = no repositories_storages: the NFS layout)
  mkdir -p "$T/$1/etc"
  {
    echo "external_url 'https://gitlab.example.com'"
    echo "gitlab_rails['auto_migrate'] = false"
    echo "gitlab_shell['secret_token'] = '$SHELL_SECRET'"
    if [[ -n "$3" ]]; then
      echo "gitaly['enable'] = false"
      echo "gitlab_rails['gitaly_token'] = '$2'"
      echo "gitlab_rails['repositories_storages'] = {"
      echo "  'default' => { 'gitaly_address' => 'tcp://127.0.0.1:$3' },"
      echo "}"
    fi
  } > "$T/$1/etc/gitlab.rb"
}

SHELL_SECRET=$(rand_token)
TOKEN=$(rand_token)
TOKEN2=$(rand_token)
GPORT=$(free_port)
GURL="http://127.0.0.1:$GPORT/standin-gitaly"
code() {   # [OUT=file] code URL [TOKEN] [curl args...] -> HTTP status ("000" when refused); body in $T/body
  local url=$1 tok=${2:-}; shift 2 || shift
  if [[ -n "$tok" ]]; then curl -s -o "${OUT:-$T/body}" -w '%{http_code}' -H "Authorization: Bearer $tok" "$@" "$url"
  else curl -s -o "${OUT:-$T/body}" -w '%{http_code}' "$@" "$url"; fi
}
wait_state() {   # NODE PREFIX: wait (10 s) until the Gitaly stand-in's state file starts with PREFIX
  local i
  for (( i = 0; i < 100; i++ )); do
    [[ "$(cat "$T/$1/run/gitaly.state" 2>/dev/null)" == "$2"* ]] && return 0
    sleep 0.1
  done
  echo "state of $1: '$(cat "$T/$1/run/gitaly.state" 2>/dev/null)', expected '$2'"; return 1
}

echo "selftest-gitaly: Gitaly STAND-IN (NOT Gitaly) in $T; gitaly port $GPORT; git: $(git --version 2>/dev/null || echo none)"

# --- the Gitaly node ----------------------------------------------------------------------------
write_gitaly_rb "$TOKEN" "$GPORT"
t_reconfigure_gitaly() {
  local out; out=$(ctl gitaly reconfigure) || { echo "$out"; return 1; }
  expect_match "reconfigure output" "Gitaly STAND-IN node.*listen_addr 127.0.0.1:$GPORT.*default=$STORAGE.*auth token" "$out" || return 1
  [[ -d "$STORAGE" ]] || { echo "storage $STORAGE not created"; return 1; }
}
check "gitaly node: gitlab-ctl reconfigure (strict loader) accepts the Gitaly gitlab.rb, creates the storage" t_reconfigure_gitaly
check "gitaly node: --is-gitaly-node says yes" on gitaly ruby "$HERE/gitaly_standin.rb" --is-gitaly-node

start gitaly "$T/gitaly.out" ruby "$HERE/gitaly_standin.rb"
GPID=$STARTED
check "gitaly stand-in starts listening on 127.0.0.1:$GPORT" wait_state gitaly "listening 127.0.0.1:$GPORT"

t_auth() {
  local c
  c=$(code "$GURL/health"); expect_eq "no Authorization" 401 "$c" || return 1
  c=$(code "$GURL/health" "$TOKEN2"); expect_eq "wrong token" 401 "$c" || return 1
  c=$(code "$GURL/health" "" -H "Authorization: Basic $TOKEN"); expect_eq "not Bearer" 401 "$c" || return 1
  c=$(code "$GURL/repos?storage=default" "wrong"); expect_eq "wrong token on /repos" 401 "$c" || return 1
  c=$(code "$GURL/health" "$TOKEN"); expect_eq "right token" 200 "$c" || return 1
  expect_match "health body" '"storages":\["default"\].*"auth":"token"' "$(cat "$T/body")" || return 1
  expect_match "refusals logged" 'REFUSED .*health.* 401: wrong token' "$(cat "$T/gitaly/log/gitaly/standin.log")" || return 1
  ! grep -qF -e "$TOKEN" -e "$TOKEN2" "$T/gitaly/log/gitaly/standin.log" "$T/gitaly.out" || { echo "a token is in the log"; return 1; }
}
check "auth: 401 without/with a wrong/non-Bearer token (logged, token not logged); 200 {storages:[default]} with it" t_auth

t_status() {
  local out; out=$(ctl gitaly status gitaly)
  expect_match "gitlab-ctl status gitaly" "^run: gitaly: \(pid $GPID\)" "$out" || return 1
  ctl gitaly status gitaly >/dev/null || { echo "gitlab-ctl status gitaly exits $? while gitaly runs"; return 1; }
  out=$(ctl gitaly status)
  [[ "$out" != *puma* && "$out" != *sidekiq* && "$out" != *nginx* && "$out" != *workhorse* ]] || { echo "disabled services listed: $out"; return 1; }
}
check "gitlab-ctl status gitaly: run, with the stand-in's real pid; disabled services not listed" t_status

REPO="$STORAGE/group/project.git"
t_repo() {
  local c
  c=$(code "$GURL/repo?storage=default&path=group/project.git" "$TOKEN" -X POST); expect_eq "create" 201 "$c" || return 1
  c=$(code "$GURL/repo?storage=default&path=group/project.git" "$TOKEN" -X POST); expect_eq "create again" 200 "$c" || return 1
  expect_match "create again body" '"created":false' "$(cat "$T/body")" || return 1
  if command -v git >/dev/null; then
    expect_eq "bare repository" true "$(git --git-dir="$REPO" rev-parse --is-bare-repository 2>&1)" || return 1
  else
    [[ -d "$REPO" ]] || { echo "no $REPO"; return 1; }
  fi
  c=$(code "$GURL/repo?storage=default&path=../evil.git" "$TOKEN" -X POST); expect_eq "../evil.git" 400 "$c" || return 1
  c=$(code "$GURL/repo?storage=default&path=%2Fabs.git" "$TOKEN" -X POST); expect_eq "/abs.git" 400 "$c" || return 1
  c=$(code "$GURL/repo?storage=default&path=a/b" "$TOKEN" -X POST); expect_eq "no .git suffix" 400 "$c" || return 1
  c=$(code "$GURL/repo?storage=nope&path=a/b.git" "$TOKEN" -X POST); expect_eq "unknown storage" 404 "$c" || return 1
  c=$(code "$GURL/repo?storage=default&path=a/b.git" "$TOKEN"); expect_eq "GET on /repo" 405 "$c" || return 1
  [[ ! -e "$T/gitaly/var/git-data/evil.git" && ! -e "$STORAGE/a" ]] || { echo "a refused repository was created"; return 1; }
  c=$(code "$GURL/repos?storage=default" "$TOKEN"); expect_eq "list" 200 "$c" || return 1
  expect_eq "list body" '{"storage":"default","repositories":["group/project.git"]}' "$(cat "$T/body")"
}
check "POST /repo creates a bare repository (git init --bare), idempotent; bad paths 400, unknown storage 404, GET 405; /repos lists it" t_repo

MARK=$(rand_token)
echo "$MARK" > "$REPO/standin-marker"
t_backup_restore() {
  local c mode_before
  c=$(OUT="$T/b1.tar" code "$GURL/backup?storage=default" "$TOKEN"); expect_eq "backup" 200 "$c" || return 1
  # (no `tar | grep -q` under pipefail: grep's early exit would fail tar with SIGPIPE)
  grep -qx './group/project.git/standin-marker' <<<"$(tar -tf "$T/b1.tar")" || { echo "backup lacks the marker:"; tar -tf "$T/b1.tar"; return 1; }
  mode_before=$(stat -c %a "$STORAGE")
  # damage: another repository, a changed file, a removed one
  code "$GURL/repo?storage=default&path=other/x.git" "$TOKEN" -X POST >/dev/null
  echo damaged > "$REPO/standin-marker"
  rm -f "$REPO/HEAD"
  c=$(code "$GURL/restore?storage=default" "$TOKEN" -T "$T/b1.tar"); expect_eq "restore" 200 "$c" || { cat "$T/body"; return 1; }
  expect_match "restore body" '"restored":"default"' "$(cat "$T/body")" || return 1
  expect_eq "marker after restore" "$MARK" "$(cat "$REPO/standin-marker")" || return 1
  [[ -f "$REPO/HEAD" ]] || { echo "HEAD not restored"; return 1; }
  c=$(code "$GURL/repos?storage=default" "$TOKEN"); expect_eq "list" 200 "$c" || return 1
  expect_eq "list after restore" '{"storage":"default","repositories":["group/project.git"]}' "$(cat "$T/body")" || return 1
  expect_eq "storage mode kept" "$mode_before" "$(stat -c %a "$STORAGE")" || return 1
  # chunked upload too
  c=$(code "$GURL/restore?storage=default" "$TOKEN" -X PUT -H 'Transfer-Encoding: chunked' --data-binary @"$T/b1.tar"); expect_eq "chunked restore" 200 "$c" || return 1
  local left=("$T"/gitaly/var/git-data/.standin-* "$T"/gitaly/var/git-data/*.standin-old-*)
  [[ ! -e "${left[0]}" && ! -e "${left[1]}" ]] || { echo "leftovers: ${left[*]}"; return 1; }
}
check "GET /backup streams a tar of the storage; PUT /restore (Content-Length and chunked) puts it back exactly; no leftovers" t_backup_restore

t_evil() {
  local d="$T/evil" c name
  mkdir -p "$d/src/sub" && echo x > "$d/src/file"
  ln -s /etc/passwd "$d/src/link"
  (cd "$d/src" && tar -cf "$d/symlink.tar" ./file ./link)
  ln "$d/src/file" "$d/src/hard"
  (cd "$d/src" && tar -cf "$d/hardlink.tar" ./file ./hard)
  tar -cPf "$d/absolute.tar" "$d/src/file" 2>/dev/null
  (cd "$d/src/sub" && tar -cPf "$d/dotdot.tar" ../file)
  for name in symlink hardlink absolute dotdot; do
    c=$(code "$GURL/restore?storage=default" "$TOKEN" -T "$d/$name.tar"); expect_eq "$name.tar" 400 "$c" || return 1
    expect_match "$name.tar refusal" 'refused: member' "$(cat "$T/body")" || return 1
  done
  expect_eq "marker untouched" "$MARK" "$(cat "$REPO/standin-marker")" || return 1
  [[ ! -e "$STORAGE/link" && ! -e "$STORAGE/file" ]] || { echo "something was extracted"; return 1; }
  c=$(code "$GURL/restore?storage=default" "$TOKEN" -X PUT --data-binary 'not a tar'); expect_eq "garbage" 400 "$c" || return 1
  expect_eq "marker untouched after garbage" "$MARK" "$(cat "$REPO/standin-marker")"
}
check "PUT /restore refuses symlink, hard link, absolute and '..' members and garbage (400), storage unchanged" t_evil

# --- a Rails node of the Gitaly layout ----------------------------------------------------------
write_rails_rb rails "$TOKEN" "$GPORT"
t_reconfigure_rails() {
  local out; out=$(ctl rails reconfigure) || { echo "$out"; return 1; }
  expect_match "reconfigure output" "gitaly\['enable'\] = false: no local git-data \(repositories: default at tcp://127.0.0.1:$GPORT\)" "$out" || return 1
  [[ ! -e "$T/rails/var/git-data" ]] || { echo "git-data created on the Rails node"; return 1; }
  [[ -d "$T/rails/var/gitlab-rails/uploads" && -d "$T/rails/var/gitlab-rails/shared" && -d "$T/rails/var/gitlab-ci/builds" ]] || { echo "uploads/shared/builds missing"; return 1; }
  ! on rails ruby "$HERE/gitaly_standin.rb" --is-gitaly-node || { echo "--is-gitaly-node says yes on the Rails node"; return 1; }
  out=$(ctl rails status) || { echo "gitlab-ctl status exits non-zero with every service up: $out"; return 1; }
  [[ "$out" != *gitaly* && "$out" == *"run: puma"* ]] || { echo "status lists gitaly / lacks puma: $out"; return 1; }
  out=$(ctl rails status gitaly) || { echo "gitlab-ctl status gitaly (disabled) exits non-zero"; return 1; }
  [[ -z "$out" ]] || { echo "gitlab-ctl status gitaly (disabled) printed: $out"; return 1; }
}
check "rails node (gitaly['enable'] = false): reconfigure creates no git-data (uploads/shared/builds yes), not a Gitaly node, status has no gitaly" t_reconfigure_rails

HPORT=$(free_port)
start rails "$T/rails-http.out" env STANDIN_HTTP_PORTS="$HPORT" ruby "$HERE/server.rb"
APORT=$(free_port)   # the same node with real GitLab's readiness semantics (Gitaly only with ?all=1)
start rails "$T/rails-http-all-only.out" env STANDIN_HTTP_PORTS="$APORT" GITLAB_STANDIN_GITALY_READINESS=all-only ruby "$HERE/server.rb"
RURL="http://127.0.0.1:$HPORT/-/readiness"
wait_http() { local i; for (( i = 0; i < 50; i++ )); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 does not answer"; return 1; }
check "rails node: server.rb answers" wait_http "$RURL"
readiness_is() {   # EXPECTED_CODE [REGEX]: poll up to 8 s (health results are reused 5 s)
  local i c
  for (( i = 0; i < 80; i++ )); do
    c=$(code "$RURL")
    [[ "$c" == "$1" && ( -z "${2:-}" || "$(cat "$T/body")" =~ $2 ) ]] && return 0
    sleep 0.1
  done
  echo "readiness: expected $1${2:+ matching /$2/}, saw $c: $(cat "$T/body")"; return 1
}
check "rails readiness 200 with gitaly_check ok (health call with gitaly_token)" readiness_is 200 '"gitaly_check":\[\{"status":"ok","labels":\{"shard":"default"\}\}\]'

# gitlab-backup create/restore of the Rails node stream the repositories through the Gitaly stand-in
t_backup_cli() {
  local out id c
  out=$(on rails ruby "$HERE/gitlab-backup" create SKIP=db 2>&1) || { echo "$out"; return 1; }
  expect_match "create output" "from the Gitaly stand-in at tcp://127.0.0.1:$GPORT" "$out" || return 1
  id=$(sed -n 's/^Backup \([^ ]*\) is done.*/\1/p' <<<"$out")
  [[ -f "$T/rails/var/backups/${id}_gitlab_backup.tar" ]] || { echo "no archive for '$id': $out"; return 1; }
  mkdir -p "$T/x" && tar -xf "$T/rails/var/backups/${id}_gitlab_backup.tar" -C "$T/x" || return 1
  expect_eq "archive members" $'backup_information.yml\nrepositories.tar' "$(tar -tf "$T/rails/var/backups/${id}_gitlab_backup.tar")" || return 1
  grep -qx './repositories/group/project.git/standin-marker' <<<"$(tar -tf "$T/x/repositories.tar")" ||
    { echo "repositories.tar lacks ./repositories/group/project.git/standin-marker:"; tar -tf "$T/x/repositories.tar" | head; return 1; }
  [[ ! -e "$T/rails/var/git-data" ]] || { echo "local git-data appeared"; return 1; }
  # damage on the Gitaly node, then restore from the Rails node
  code "$GURL/repo?storage=default&path=other/y.git" "$TOKEN" -X POST >/dev/null
  echo damaged > "$REPO/standin-marker"
  out=$(on rails env GITLAB_ASSUME_YES=1 ruby "$HERE/gitlab-backup" restore "BACKUP=$id" SKIP=db 2>&1)
  expect_match "restore refused while puma runs" 'refused: puma and sidekiq running' "$out" || return 1
  ctl rails stop puma >/dev/null; ctl rails stop sidekiq >/dev/null
  out=$(on rails env GITLAB_ASSUME_YES=1 ruby "$HERE/gitlab-backup" restore "BACKUP=$id" 2>&1)
  expect_match "restore without SKIP=db of a SKIP=db backup" 'holds no db .*refused' "$out" || return 1
  expect_eq "nothing restored by the refused run" damaged "$(cat "$REPO/standin-marker")" || return 1
  out=$(on rails env GITLAB_ASSUME_YES=1 ruby "$HERE/gitlab-backup" restore "BACKUP=$id" SKIP=db 2>&1) || { echo "$out"; return 1; }
  expect_match "restore output" "to the Gitaly stand-in at tcp://127.0.0.1:$GPORT" "$out" || return 1
  expect_eq "marker after restore" "$MARK" "$(cat "$REPO/standin-marker")" || return 1
  c=$(code "$GURL/repos?storage=default" "$TOKEN")
  expect_eq "list after restore" '{"storage":"default","repositories":["group/project.git"]}' "$(cat "$T/body")" || return 1
  ctl rails start puma >/dev/null; ctl rails start sidekiq >/dev/null
}
check "gitlab-backup create/restore SKIP=db on the rails node stream repositories via the Gitaly stand-in (repositories.tar: ./repositories/...)" t_backup_cli

# --- token change on reconfigure ----------------------------------------------------------------
t_token_change() {
  local out c
  write_gitaly_rb "$TOKEN2" "$GPORT"
  out=$(ctl gitaly reconfigure) || { echo "$out"; return 1; }
  expect_match "reconfigure HUPs the stand-in" "sent SIGHUP to the Gitaly stand-in \(pid $GPID\)" "$out" || return 1
  c=$(code "$GURL/health" "$TOKEN"); expect_eq "old token" 401 "$c" || return 1
  c=$(code "$GURL/health" "$TOKEN2"); expect_eq "new token" 200 "$c" || return 1
  kill -0 "$GPID" || { echo "the stand-in exited"; return 1; }
}
check "gitaly reconfigure with a new token: same process, old token 401, new 200" t_token_change
check "rails readiness 503 naming 'gitaly default at tcp://...: 401 token refused' (within the 5 s cache)" \
  readiness_is 503 "gitaly default at tcp://127\\.0\\.0\\.1:$GPORT: 401 token refused"
t_rails_token() {
  write_rails_rb rails "$TOKEN2" "$GPORT"
  ctl rails reconfigure >/dev/null || return 1
  local c; c=$(code "$RURL"); expect_eq "readiness right after the Rails reconfigure (new token, no cache)" 200 "$c"
}
check "rails reconfigure with the new gitaly_token: readiness 200 at once" t_rails_token

# --- listen_addr change, stop/start -------------------------------------------------------------
t_listen_change() {
  local p2 c
  p2=$(free_port)
  write_gitaly_rb "$TOKEN2" "$p2"
  ctl gitaly reconfigure >/dev/null || return 1
  wait_state gitaly "listening 127.0.0.1:$p2" || return 1
  c=$(code "http://127.0.0.1:$p2/standin-gitaly/health" "$TOKEN2"); expect_eq "new port" 200 "$c" || return 1
  c=$(code "$GURL/health" "$TOKEN2"); expect_eq "old port (refused)" 000 "$c" || return 1
  write_gitaly_rb "$TOKEN2" "$GPORT"
  ctl gitaly reconfigure >/dev/null || return 1
  wait_state gitaly "listening 127.0.0.1:$GPORT" || return 1
  c=$(code "$GURL/health" "$TOKEN2"); expect_eq "back on the first port" 200 "$c"
}
check "a new listen_addr on reconfigure (SIGHUP): listener moves; back again" t_listen_change

t_stop_start() {
  local out c
  out=$(ctl gitaly stop gitaly) || { echo "$out"; return 1; }
  expect_match "stop" '^ok: down: gitaly' "$out" || return 1
  c=$(code "$GURL/health" "$TOKEN2"); expect_eq "stopped: connection refused" 000 "$c" || return 1
  expect_match "status" '^down: gitaly' "$(ctl gitaly status gitaly)" || return 1
  ctl gitaly status gitaly >/dev/null && { echo "gitlab-ctl status gitaly exits 0 while gitaly is down"; return 1; }
  readiness_is 503 "gitaly default at tcp://127\\.0\\.0\\.1:$GPORT: connection refused" || return 1
  c=$(code "http://127.0.0.1:$APORT/-/readiness"); expect_eq "GITLAB_STANDIN_GITALY_READINESS=all-only: /-/readiness" 200 "$c" || return 1
  c=$(code "http://127.0.0.1:$APORT/-/readiness?all=1"); expect_eq "GITLAB_STANDIN_GITALY_READINESS=all-only: /-/readiness?all=1" 503 "$c" || return 1
  out=$(ctl gitaly start gitaly) || { echo "$out"; return 1; }
  expect_match "start" "^ok: run: gitaly: \(pid $GPID\)" "$out" || return 1
  c=$(code "$GURL/health" "$TOKEN2"); expect_eq "started" 200 "$c" || return 1
  readiness_is 200
}
check "gitlab-ctl stop gitaly: connections refused, status down (exit 3), rails readiness 503 'connection refused' (all-only: only ?all=1); start: back" t_stop_start

# --- a failed reconfigure keeps the running configuration; today's layout unchanged ---------------
t_bad() {
  mkdir -p "$T/bad/etc"
  sed "s/listen_addr: \"127.0.0.1:$GPORT\"/listen_addr: \"nonsense\"/" "$T/gitaly/etc/gitlab.rb" > "$T/bad/etc/gitlab.rb"
  local out; out=$(on bad bash "$HERE/gitlab-ctl" reconfigure 2>&1) && { echo "reconfigure succeeded: $out"; return 1; }
  expect_match "reconfigure error" 'listen_addr.*"nonsense" is not HOST:PORT' "$out" || return 1
  [[ -f "$T/bad/var/standin-reconfigure.failed" && ! -f "$T/bad/var/standin-settings.json" ]] || { echo "failure not recorded / settings written"; return 1; }
}
check "a Gitaly gitlab.rb with a malformed listen_addr fails reconfigure" t_bad

t_nfs() {
  write_rails_rb nfs "" ""
  ctl nfs reconfigure >/dev/null || return 1
  [[ -d "$T/nfs/var/git-data/repositories" ]] || { echo "git-data/repositories not created"; return 1; }
  local c out
  wait_http "http://127.0.0.1:$NPORT/-/readiness" || return 1
  c=$(code "http://127.0.0.1:$NPORT/-/readiness"); expect_eq "readiness" 200 "$c" || return 1
  expect_eq "readiness body" "{\"status\":\"ok\",\"master_check\":[{\"status\":\"ok\"}],\"node\":\"nfs\"}" "$(cat "$T/body")" || return 1
  out=$(ctl nfs status)
  [[ "$out" == *"run: gitaly"* ]] || { echo "gitaly not listed: $out"; return 1; }
}
NPORT=$(free_port)
start nfs "$T/nfs-http.out" env STANDIN_HTTP_PORTS="$NPORT" ruby "$HERE/server.rb"   # here, not in a check's subshell
check "today's NFS layout (no repositories_storages): git-data created, readiness body unchanged, gitaly listed" t_nfs

t_term() {
  kill -TERM "$GPID"
  local i; for (( i = 0; i < 50; i++ )); do kill -0 "$GPID" 2>/dev/null || break; sleep 0.1; done
  ! kill -0 "$GPID" 2>/dev/null || { echo "still running"; return 1; }
  [[ ! -e "$T/gitaly/run/gitaly.pid" ]] || { echo "pid file left"; return 1; }
  expect_match "status after exit" '^down: gitaly' "$(ctl gitaly status gitaly)" || return 1
  ctl gitaly status gitaly >/dev/null; expect_eq "gitlab-ctl status gitaly exit status" 3 "$?"
}
check "SIGTERM: the Gitaly stand-in exits, removes its pid file; status down" t_term

echo "selftest-gitaly: $PASS passed, $FAIL failed"
(( FAIL == 0 ))
