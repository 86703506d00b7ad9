#!/bin/sh
set -eu
# writes: /srv/gitlab-cluster/nginx/tls/new/cert.pem mode 0644
umask 077
(umask 022 && mkdir -p /srv/gitlab-cluster/nginx/tls/new)
tmp=$(mktemp /srv/gitlab-cluster/nginx/tls/new/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0644 "$tmp"
chown 0:0 "$tmp"
if [ -f /srv/gitlab-cluster/nginx/tls/new/cert.pem ] && cmp -s "$tmp" /srv/gitlab-cluster/nginx/tls/new/cert.pem && [ "$(stat -c '%a %u:%g' /srv/gitlab-cluster/nginx/tls/new/cert.pem)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab-cluster/nginx/tls/new/cert.pem"
    exit 0
fi
mv -f "$tmp" /srv/gitlab-cluster/nginx/tls/new/cert.pem
trap - EXIT
echo "written: /srv/gitlab-cluster/nginx/tls/new/cert.pem"
