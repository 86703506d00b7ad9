#!/bin/sh
set -eu
# writes: /srv/gitlab-cluster/postgres/secrets/superuser-password mode 0600
umask 077
(umask 022 && mkdir -p /srv/gitlab-cluster/postgres/secrets)
tmp=$(mktemp /srv/gitlab-cluster/postgres/secrets/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0600 "$tmp"
chown 999:999 "$tmp"
if [ -f /srv/gitlab-cluster/postgres/secrets/superuser-password ] && cmp -s "$tmp" /srv/gitlab-cluster/postgres/secrets/superuser-password && [ "$(stat -c '%a %u:%g' /srv/gitlab-cluster/postgres/secrets/superuser-password)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab-cluster/postgres/secrets/superuser-password"
    exit 0
fi
mv -f "$tmp" /srv/gitlab-cluster/postgres/secrets/superuser-password
trap - EXIT
echo "written: /srv/gitlab-cluster/postgres/secrets/superuser-password"
