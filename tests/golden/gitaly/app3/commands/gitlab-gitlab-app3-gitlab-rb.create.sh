#!/bin/sh
set -eu
# writes: /srv/gitlab/config/gitlab.rb mode 0600
umask 077
(umask 022 && mkdir -p /srv/gitlab/config)
tmp=$(mktemp /srv/gitlab/config/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0600 "$tmp"
chown 0:0 "$tmp"
if [ -f /srv/gitlab/config/gitlab.rb ] && cmp -s "$tmp" /srv/gitlab/config/gitlab.rb && [ "$(stat -c '%a %u:%g' /srv/gitlab/config/gitlab.rb)" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: /srv/gitlab/config/gitlab.rb"
    exit 0
fi
mv -f "$tmp" /srv/gitlab/config/gitlab.rb
trap - EXIT
echo "written: /srv/gitlab/config/gitlab.rb"
