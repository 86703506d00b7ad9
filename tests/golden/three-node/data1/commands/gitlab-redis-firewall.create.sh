#!/bin/sh
set -eu
command -v iptables-restore >/dev/null 2>&1 || { echo "iptables-restore is not installed on this host: install iptables" >&2; exit 1; }
mkdir -p /usr/local/sbin
printf '%s' '#!/bin/sh
# Managed by gitlab-cluster (Pulumi): only the GitLab hosts may reach redis on 10.0.0.21:6379.
set -eu
iptables -N DOCKER-USER 2>/dev/null || true
printf '\''%s'\'' '\''*filter
:GLC-REDIS - [0:0]
-F GLC-REDIS
-A GLC-REDIS -s 10.0.0.11/32 -j RETURN
-A GLC-REDIS -s 10.0.0.12/32 -j RETURN
-A GLC-REDIS -s 10.0.0.13/32 -j RETURN
-A GLC-REDIS -j DROP
COMMIT
'\'' | iptables-restore --noflush
iptables -C DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.21 --ctorigdstport 6379 -j GLC-REDIS 2>/dev/null || iptables -I DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.21 --ctorigdstport 6379 -j GLC-REDIS
echo "firewall GLC-REDIS: 3 allowed source(s) for 10.0.0.21:6379"
' > /usr/local/sbin/gitlab-cluster-firewall-redis.new
chmod 0700 /usr/local/sbin/gitlab-cluster-firewall-redis.new
mv -f /usr/local/sbin/gitlab-cluster-firewall-redis.new /usr/local/sbin/gitlab-cluster-firewall-redis
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    printf '%s' '[Unit]
Description=gitlab-cluster: only the GitLab hosts may reach redis
After=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/gitlab-cluster-firewall-redis

[Install]
WantedBy=multi-user.target
' > /etc/systemd/system/gitlab-cluster-firewall-redis.service
    systemctl daemon-reload
    systemctl enable gitlab-cluster-firewall-redis.service >/dev/null
fi
/usr/local/sbin/gitlab-cluster-firewall-redis
