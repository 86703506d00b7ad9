#!/bin/sh
set -eu
# gitlab.rb sha256 98012beed3319b93a55eaa4fc4a00ca0f9fce58162c3c49879b24bdaf2519922
echo "reconfiguring gitlab-gitlab-app3"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! docker exec gitlab-gitlab-app3 gitlab-ctl reconfigure >"$out" 2>&1; then
    echo "gitlab-gitlab-app3: gitlab-ctl reconfigure failed; its last lines, file diffs left out (they can hold secrets):" >&2
    grep -v -E '^[[:space:]]*([-+]|@@)' "$out" | tail -n 30 >&2 || true
    echo "the whole output: docker exec gitlab-gitlab-app3 sh -c 'ls -t /var/log/gitlab/reconfigure/*.log | head -n 1'" >&2
    exit 1
fi
echo "gitlab-gitlab-app3: gitlab-ctl reconfigure done ($(wc -l < "$out") lines of output not shown: they can hold secrets)"
rm -f "$out"
trap - EXIT
deadline=$(( $(date +%s) + 1200 ))
last=0
while :; do
    if docker exec gitlab-gitlab-app3 curl -fsS --max-time 10 -o /dev/null http://127.0.0.1/-/readiness 2>/dev/null; then
        echo "gitlab-gitlab-app3 is ready"
        exit 0
    fi
    now=$(date +%s)
    if [ "$now" -ge "$deadline" ]; then
        echo "gitlab-gitlab-app3 did not answer /-/readiness within 1200s; see: docker logs gitlab-gitlab-app3" >&2
        docker ps -a --filter name=gitlab-gitlab-app3 --format '{{.Names}}: {{.Status}}' >&2 || true
        exit 1
    fi
    if [ $(( now - last )) -ge 30 ]; then
        echo "waiting for gitlab-gitlab-app3 /-/readiness ($(( deadline - now ))s left)"
        last=$now
    fi
    sleep 5
done
