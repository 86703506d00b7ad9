#!/bin/sh
set -eu
# gitlab.rb sha256 4f273d0d4d50c48615172b0845997c450eb49ccfb9af67c902e8613411ad7a08
echo "reconfiguring gitlab-gitaly"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! docker exec gitlab-gitaly gitlab-ctl reconfigure >"$out" 2>&1; then
    echo "gitlab-gitaly: gitlab-ctl reconfigure failed; its last lines, file diffs left out (they can hold secrets):" >&2
    grep -v -E '^[[:space:]]*([-+]|@@)' "$out" | tail -n 30 >&2 || true
    echo "the whole output: docker exec gitlab-gitaly sh -c 'ls -t /var/log/gitlab/reconfigure/*.log | head -n 1'" >&2
    exit 1
fi
echo "gitlab-gitaly: gitlab-ctl reconfigure done ($(wc -l < "$out") lines of output not shown: they can hold secrets)"
rm -f "$out"
trap - EXIT
deadline=$(( $(date +%s) + 1200 ))
last=0
while :; do
    if docker exec gitlab-gitaly gitlab-ctl status gitaly 2>/dev/null | grep -q '^run: gitaly:' 2>/dev/null; then
        echo "gitlab-gitaly is ready"
        exit 0
    fi
    now=$(date +%s)
    if [ "$now" -ge "$deadline" ]; then
        echo "gitlab-gitaly did not answer gitlab-ctl status gitaly within 1200s; see: docker logs gitlab-gitaly" >&2
        docker ps -a --filter name=gitlab-gitaly --format '{{.Names}}: {{.Status}}' >&2 || true
        exit 1
    fi
    if [ $(( now - last )) -ge 30 ]; then
        echo "waiting for gitlab-gitaly gitlab-ctl status gitaly ($(( deadline - now ))s left)"
        last=$now
    fi
    sleep 5
done
