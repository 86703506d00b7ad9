#!/bin/sh
set -eu
# writes: /srv/gitlab-cluster/postgres/conf/pg_hba.conf mode 0644
umask 077
(umask 022 && mkdir -p /srv/gitlab-cluster/postgres/conf)
tmp=$(mktemp /srv/gitlab-cluster/postgres/conf/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0644 "$tmp"
chown 0:0 "$tmp"
if [ -f /srv/gitlab-cluster/postgres/conf/pg_hba.conf ] && cmp -s "$tmp" /srv/gitlab-cluster/postgres/conf/pg_hba.conf && [ "$(stat -c '%a %u:%g' /srv/gitlab-cluster/postgres/conf/pg_hba.conf)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab-cluster/postgres/conf/pg_hba.conf"
    exit 0
fi
mv -f "$tmp" /srv/gitlab-cluster/postgres/conf/pg_hba.conf
trap - EXIT
echo "written: /srv/gitlab-cluster/postgres/conf/pg_hba.conf"
if docker inspect gitlab-postgres >/dev/null 2>&1; then docker exec -u postgres gitlab-postgres psql -X -qAt -c 'SELECT pg_reload_conf()' >/dev/null && echo "reloaded pg_hba.conf"; fi
