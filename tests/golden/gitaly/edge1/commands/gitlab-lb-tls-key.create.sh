#!/bin/sh
set -eu
# writes: /srv/gitlab-cluster/nginx/tls/new/key.pem mode 0600
umask 077
(umask 022 && mkdir -p /srv/gitlab-cluster/nginx/tls/new)
tmp=$(mktemp /srv/gitlab-cluster/nginx/tls/new/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0600 "$tmp"
chown 0:0 "$tmp"
if [ -f /srv/gitlab-cluster/nginx/tls/new/key.pem ] && cmp -s "$tmp" /srv/gitlab-cluster/nginx/tls/new/key.pem && [ "$(stat -c '%a %u:%g' /srv/gitlab-cluster/nginx/tls/new/key.pem)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab-cluster/nginx/tls/new/key.pem"
    exit 0
fi
mv -f "$tmp" /srv/gitlab-cluster/nginx/tls/new/key.pem
trap - EXIT
echo "written: /srv/gitlab-cluster/nginx/tls/new/key.pem"
