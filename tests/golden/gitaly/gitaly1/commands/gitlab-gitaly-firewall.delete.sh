#!/bin/sh
set -eu
while iptables -D DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10.0.0.31 --ctorigdstport 8075 -j GLC-GITALY 2>/dev/null; do :; done
while iptables -D DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 8075 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-GITALY 2>/dev/null; do :; done
while iptables -D INPUT -d 10.0.0.31 -p tcp --dport 8075 -m conntrack --ctdir ORIGINAL -j GLC-GITALY 2>/dev/null; do :; done
while iptables -D DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.31 --ctorigdstport 8075 -j GLC-GITALY 2>/dev/null; do :; done
iptables -F GLC-GITALY 2>/dev/null || true
iptables -X GLC-GITALY 2>/dev/null || true
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable gitlab-cluster-firewall-gitaly.service >/dev/null 2>&1 || true
fi
rm -f /usr/local/sbin/gitlab-cluster-firewall-gitaly /etc/systemd/system/gitlab-cluster-firewall-gitaly.service
echo "firewall GLC-GITALY removed"
