#!/bin/sh
set -eu
while iptables -D DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10.0.0.21 --ctorigdstport 5432 -j GLC-POSTGRES 2>/dev/null; do :; done
while iptables -D DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 5432 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-POSTGRES 2>/dev/null; do :; done
while iptables -D INPUT -d 10.0.0.21 -p tcp --dport 5432 -m conntrack --ctdir ORIGINAL -j GLC-POSTGRES 2>/dev/null; do :; done
while iptables -D DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.21 --ctorigdstport 5432 -j GLC-POSTGRES 2>/dev/null; do :; done
iptables -F GLC-POSTGRES 2>/dev/null || true
iptables -X GLC-POSTGRES 2>/dev/null || true
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable gitlab-cluster-firewall-postgres.service >/dev/null 2>&1 || true
fi
rm -f /usr/local/sbin/gitlab-cluster-firewall-postgres /etc/systemd/system/gitlab-cluster-firewall-postgres.service
echo "firewall GLC-POSTGRES removed"
