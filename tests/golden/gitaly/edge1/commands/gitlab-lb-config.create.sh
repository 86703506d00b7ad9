#!/bin/sh
set -eu
# writes: /srv/gitlab-cluster/nginx/nginx.conf mode 0644
umask 077
(umask 022 && mkdir -p /srv/gitlab-cluster/nginx)
tmp=$(mktemp /srv/gitlab-cluster/nginx/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0644 "$tmp"
chown 0:0 "$tmp"
if [ -f /srv/gitlab-cluster/nginx/nginx.conf ] && cmp -s "$tmp" /srv/gitlab-cluster/nginx/nginx.conf && [ "$(stat -c '%a %u:%g' /srv/gitlab-cluster/nginx/nginx.conf)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab-cluster/nginx/nginx.conf"
    exit 0
fi
mv -f "$tmp" /srv/gitlab-cluster/nginx/nginx.conf
trap - EXIT
echo "written: /srv/gitlab-cluster/nginx/nginx.conf"
if docker inspect gitlab-lb >/dev/null 2>&1; then docker exec gitlab-lb nginx -t -q -c /etc/nginx/gitlab-cluster/nginx.conf && docker exec gitlab-lb nginx -s reload -c /etc/nginx/gitlab-cluster/nginx.conf && echo "nginx reloaded"; fi
