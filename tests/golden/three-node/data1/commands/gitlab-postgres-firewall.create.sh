#!/bin/sh
set -eu
command -v iptables-restore >/dev/null 2>&1 || { echo "iptables-restore is not installed on this host: install iptables" >&2; exit 1; }
mkdir -p /usr/local/sbin
printf '%s' '#!/bin/sh
# Managed by gitlab-cluster (Pulumi): only the GitLab hosts may reach postgres on 10.0.0.21:5432.
set -eu
iptables -N DOCKER-USER 2>/dev/null || true
printf '\''%s'\'' '\''*filter
:GLC-POSTGRES - [0:0]
-F GLC-POSTGRES
-A GLC-POSTGRES -s 10.0.0.11/32 -j RETURN
-A GLC-POSTGRES -s 10.0.0.12/32 -j RETURN
-A GLC-POSTGRES -s 10.0.0.13/32 -j RETURN
-A GLC-POSTGRES -j DROP
COMMIT
'\'' | iptables-restore --noflush
iptables -C DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.21 --ctorigdstport 5432 -j GLC-POSTGRES 2>/dev/null || iptables -I DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.21 --ctorigdstport 5432 -j GLC-POSTGRES
echo "firewall GLC-POSTGRES: 3 allowed source(s) for 10.0.0.21:5432"
' > /usr/local/sbin/gitlab-cluster-firewall-postgres.new
chmod 0700 /usr/local/sbin/gitlab-cluster-firewall-postgres.new
mv -f /usr/local/sbin/gitlab-cluster-firewall-postgres.new /usr/local/sbin/gitlab-cluster-firewall-postgres
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    printf '%s' '[Unit]
Description=gitlab-cluster: only the GitLab hosts may reach postgres
After=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/gitlab-cluster-firewall-postgres

[Install]
WantedBy=multi-user.target
' > /etc/systemd/system/gitlab-cluster-firewall-postgres.service
    systemctl daemon-reload
    systemctl enable gitlab-cluster-firewall-postgres.service >/dev/null
fi
/usr/local/sbin/gitlab-cluster-firewall-postgres
