#!/bin/sh
set -eu
# writes: /srv/gitlab-cluster/redis/conf/redis.conf mode 0600
umask 077
(umask 022 && mkdir -p /srv/gitlab-cluster/redis/conf)
tmp=$(mktemp /srv/gitlab-cluster/redis/conf/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0600 "$tmp"
chown 999:999 "$tmp"
if [ -f /srv/gitlab-cluster/redis/conf/redis.conf ] && cmp -s "$tmp" /srv/gitlab-cluster/redis/conf/redis.conf && [ "$(stat -c '%a %u:%g' /srv/gitlab-cluster/redis/conf/redis.conf)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab-cluster/redis/conf/redis.conf"
    exit 0
fi
mv -f "$tmp" /srv/gitlab-cluster/redis/conf/redis.conf
trap - EXIT
echo "written: /srv/gitlab-cluster/redis/conf/redis.conf"
if docker inspect gitlab-redis >/dev/null 2>&1; then docker restart gitlab-redis >/dev/null && echo "restarted gitlab-redis"; fi
