#!/bin/bash
# Integration tests, phase 1: self-checks of the test infrastructure only
# (phase 2, the program against real services, is run.sh).
#   bash tests/integration/selfcheck.sh
# Needs root. Installs docker.io / debootstrap / openssh-client from Debian if
# missing, starts (and afterwards stops) a dockerd if none runs, builds the
# test images (cached by content hash), starts one container of each image on
# the network gitlab-cluster-itest (172.29.77.0/24), runs the checks, removes
# everything it started, and ends with "N passed, M failed" (exit 1 if M > 0).
# Knobs: ITEST_VERBOSE=1, ITEST_KEEP=1 (keep containers), ITEST_REBUILD=1,
# ITEST_KEEP_DOCKERD=1. See README.md.
set -uo pipefail
ITEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ITEST_DIR
source "$ITEST_DIR/lib/common.sh"
source "$ITEST_DIR/lib/docker.sh"
source "$ITEST_DIR/lib/images.sh"
source "$ITEST_DIR/lib/harness.sh"

T_START=$(itest_now)
ensure_docker
T_DOCKER=$(itest_now)

ITEST_PHASE1=1 build_all_images
T_IMAGES=$(itest_now)
echo "TIMING docker ready in $(( T_DOCKER - T_START )) s; images built/reused in $(( T_IMAGES - T_DOCKER )) s"
printf '  %s\n' "$IMG_BASE" "$IMG_SSHD" "$IMG_DATA" "$IMG_LB" "$IMG_STANDIN"

itest_harness_init

IP_SSHD=$(itest_ip 10)
IP_DATA=$(itest_ip 11)
IP_LB=$(itest_ip 12)
IP_GL=$(itest_ip 21)
itest_start_host host1 "$IMG_SSHD"   "$IP_SSHD" || itest_die "start host1"
itest_start_host data1 "$IMG_DATA"   "$IP_DATA" || itest_die "start data1"
itest_start_host lb1   "$IMG_LB"     "$IP_LB"   || itest_die "start lb1"
itest_start_host gitlab1 "$IMG_STANDIN" "$IP_GL" || itest_die "start gitlab1"

# --- SSH -------------------------------------------------------------------
for ip in "$IP_SSHD" "$IP_DATA" "$IP_LB" "$IP_GL"; do
  check "ssh with the test key into $ip" itest_wait_ssh "$ip" 60
done
chk_no_password_login() {   # key-only: password auth must not be offered
  ! ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o ConnectTimeout=5 -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
      "root@$IP_SSHD" true 2>&1
}
check "sshd refuses non-key login (host1)" chk_no_password_login

# --- generic host: apt from the Debian mirror at run time --------------------
check "apt-get install a package inside the sshd container" \
  ssh_run "$IP_SSHD" 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends hello >/dev/null && hello'

# --- data host: redis + postgres ---------------------------------------------
check "redis-server starts and answers PING (data1)" ssh_run "$IP_DATA" '
  redis-server --daemonize yes --port 6379 --bind 127.0.0.1 >/dev/null
  for i in $(seq 1 20); do [ "$(redis-cli ping 2>/dev/null)" = PONG ] && { redis-server --version; exit 0; }; sleep 0.5; done; exit 1'
check "postgresql 15 starts; pg_trgm/btree_gist/plpgsql load (data1)" ssh_run "$IP_DATA" '
  set -e; pg_lsclusters; pg_ctlcluster 15 main start
  su postgres -c "psql -v ON_ERROR_STOP=1 -qtA" <<SQL
CREATE DATABASE itest_ext;
\c itest_ext
CREATE EXTENSION pg_trgm; CREATE EXTENSION btree_gist; CREATE EXTENSION IF NOT EXISTS plpgsql;
SELECT version();
SELECT string_agg(extname, \$\$,\$\$ ORDER BY extname) FROM pg_extension;
SQL'

# --- lb host: nginx with stream ---------------------------------------------
check "nginx -t with Debian's default config (lb1)" ssh_run "$IP_LB" 'nginx -t'
cat > "$ITEST_TMP/nginx-itest.conf" <<NGINX
# minimal balancer config used only by the self-check
include /etc/nginx/modules-enabled/*.conf;
pid /run/nginx-itest.pid;
events { worker_connections 256; }
stream {
  upstream gitlab_ssh { server $IP_GL:22; }
  server { listen 2222; proxy_pass gitlab_ssh; }
}
http {
  upstream gitlab_http { server $IP_GL:80; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 8080;
    client_max_body_size 0;
    location / {
      proxy_pass http://gitlab_http;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 3600;
    }
  }
}
NGINX
chk_nginx_stream() {
  ssh_put "$IP_LB" "$ITEST_TMP/nginx-itest.conf" /etc/nginx/itest.conf &&
  ssh_run "$IP_LB" 'nginx -t -c /etc/nginx/itest.conf && nginx -c /etc/nginx/itest.conf </dev/null >/dev/null 2>&1 && echo started'
}
check "nginx -t + start with a stream{} block (lb1)" chk_nginx_stream

# --- GitLab stand-in ---------------------------------------------------------
check "stand-in /-/readiness = 200 via curl from lb1" ssh_run "$IP_LB" "
  for i in \$(seq 1 30); do curl -fsS -m 5 http://$IP_GL/-/readiness && exit 0; sleep 1; done; exit 1"
check "stand-in / names the node" ssh_run "$IP_LB" "curl -fsS -m 5 http://$IP_GL/ | grep -q '>gitlab1<'"
chk_big_body() {   # $1: URL base as seen from lb1
  local out
  out=$(ssh_run "$IP_LB" "head -c 52428800 /dev/zero | curl -fsS -m 120 -X PUT -H 'Content-Type: application/octet-stream' --data-binary @- $1/api/v4/itest-upload") || return 1
  echo "$out"; grep -q '"bytes":52428800' <<<"$out"
}
check "stand-in reads a 50 MB PUT fully (direct)" chk_big_body "http://$IP_GL"
chk_ws_curl() {
  local out
  out=$(ssh_run "$IP_LB" "curl -sS -i -m 2 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://$IP_GL/-/cable; true")
  echo "$out"
  grep -q '^HTTP/1.1 101 Switching Protocols' <<<"$out" && grep -q 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' <<<"$out"
}
check "stand-in websocket upgrade: 101 + RFC 6455 accept (curl)" chk_ws_curl
check "stand-in websocket frame echo (ws_check.rb)" ssh_run "$IP_GL" "/opt/gitlab-standin/ws_check.rb $IP_GL 80"
chk_concurrent() {   # 12 parallel 5 MB uploads while a websocket is held open
  ssh_run "$IP_LB" "
    (exec 3<>/dev/tcp/$IP_GL/80; printf 'GET /-/cable HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n' >&3; head -c 12 <&3; echo; sleep 4) &
    for i in \$(seq 1 12); do (head -c 5000000 /dev/zero | curl -sS -m 60 -X POST --data-binary @- http://$IP_GL/p\$i; echo) & done
    wait" > "$ITEST_TMP/conc.out"
  cat "$ITEST_TMP/conc.out"
  # responses may share lines (concurrent writers): count matches, not lines
  [[ $(grep -o '"bytes":5000000' "$ITEST_TMP/conc.out" | wc -l) -eq 12 ]] && grep -q 'HTTP/1.1 101' "$ITEST_TMP/conc.out"
}
check "stand-in serves 12 concurrent 5 MB uploads + an open websocket" chk_concurrent
chk_not_ready() {
  ssh_run "$IP_GL" "touch /run/standin-not-ready; code=\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/-/readiness); rm -f /run/standin-not-ready; echo \$code; [ \$code = 503 ]"
}
check "stand-in /-/readiness = 503 while /run/standin-not-ready" chk_not_ready

# through the balancer
chk_via_lb_http() {
  ssh_run "$IP_LB" 'curl -fsS -m 5 -H "Host: gitlab.example" http://127.0.0.1:8080/-/readiness' && echo &&
  ssh_run "$IP_LB" 'curl -fsS -m 5 -H "Host: gitlab.example" http://127.0.0.1:8080/-/standin/headers' | grep -q '"x-forwarded-for":"127.0.0.1"' &&
  chk_big_body http://127.0.0.1:8080
}
check "via nginx: readiness, forwarded headers, 50 MB body" chk_via_lb_http
check "via nginx: websocket frame echo" ssh_run "$IP_GL" "/opt/gitlab-standin/ws_check.rb $IP_LB 8080 /-/cable gitlab.example"
chk_ssh_via_stream() {   # host key seen through lb:2222 == stand-in's /etc/gitlab key
  local via direct
  via=$(ssh_run "$IP_LB" 'ssh-keyscan -t ed25519 -p 2222 -T 5 127.0.0.1 2>/dev/null' | awk '{print $3}')
  direct=$(ssh_run "$IP_GL" 'cut -d" " -f2 /etc/gitlab/ssh_host_ed25519_key.pub')
  echo "via lb: $via"; echo "direct: $direct"
  [[ -n "$via" && "$via" == "$direct" ]]
}
check "via nginx stream :2222: stand-in sshd, host key from /etc/gitlab" chk_ssh_via_stream

# gitlab.rb loading
cat > "$ITEST_TMP/gitlab.rb" <<'RB'
external_url 'https://x'
gitlab_rails['db_password'] = 'a\'b'
postgresql['enable'] = false
RB
chk_gitlab_rb() {
  ssh_put "$IP_GL" "$ITEST_TMP/gitlab.rb" /etc/gitlab/gitlab.rb || return 1
  ssh_run "$IP_GL" '/opt/gitlab-standin/load_gitlab_rb.rb /etc/gitlab/gitlab.rb' | tee "$ITEST_TMP/settings.json" || return 1
  ruby_check='j = JSON.parse(STDIN.read)
    ok = j["external_url"] == "https://x" && j["gitlab_rails"]["db_password"] == "a'"'"'b" && j["postgresql"]["enable"] == false
    exit(ok ? 0 : 1)'
  ssh_run "$IP_GL" "ruby -rjson -e '$(sed "s/'/'\\\\''/g" <<<"$ruby_check")'" < "$ITEST_TMP/settings.json"
}
check "load_gitlab_rb.rb loads the sample gitlab.rb with the right values" chk_gitlab_rb
check "gitlab-ctl reconfigure writes standin-settings.json + gitlab-secrets.json" ssh_run "$IP_GL" '
  gitlab-ctl reconfigure && grep -q "\"db_password\": \"a'"'"'b\"" /var/opt/gitlab/standin-settings.json &&
  test -s /etc/gitlab/gitlab-secrets.json && id git'
chk_bad_gitlab_rb() {
  ssh_run "$IP_GL" 'cp /etc/gitlab/gitlab.rb /tmp/ok.rb; echo "gitlab_rails[\"x\" = 1" >> /etc/gitlab/gitlab.rb
    if gitlab-ctl reconfigure; then echo "reconfigure accepted a broken gitlab.rb"; exit 1; fi
    code=$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1/-/readiness); echo "readiness: $code"
    cp /tmp/ok.rb /etc/gitlab/gitlab.rb; gitlab-ctl reconfigure >/dev/null || exit 1
    [ "$code" = 503 ] && curl -fsS http://127.0.0.1/-/readiness'
}
check "broken gitlab.rb: reconfigure fails, readiness 503, then recovers" chk_bad_gitlab_rb
check "gitlab-ctl status/stop/start (stop puma -> 502)" ssh_run "$IP_GL" '
  gitlab-ctl status && gitlab-ctl stop puma && gitlab-ctl status puma | grep -q "^down: puma" &&
  [ "$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1/)" = 502 ] &&
  gitlab-ctl start puma && curl -fsS -o /dev/null http://127.0.0.1/ && gitlab-ctl restart'
check "stand-in has psql and redis-cli" ssh_run "$IP_GL" "psql --version && redis-cli --version"

T_END=$(itest_now)
echo "TIMING checks $(( T_END - T_IMAGES )) s; whole run $(( T_END - T_START )) s (image build/reuse $(( T_IMAGES - T_DOCKER )) s)"
itest_summary
