#!/bin/sh
set -eu
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
