#!/bin/sh
set -eu
while iptables -D DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10.0.0.11 --ctorigdstport 2222 -j GLC-GITLAB-SSH 2>/dev/null; do :; done
while iptables -D DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 22 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-GITLAB-SSH 2>/dev/null; do :; done
while iptables -D INPUT -d 10.0.0.11 -p tcp --dport 2222 -m conntrack --ctdir ORIGINAL -j GLC-GITLAB-SSH 2>/dev/null; do :; done
while iptables -D DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.11 --ctorigdstport 2222 -j GLC-GITLAB-SSH 2>/dev/null; do :; done
iptables -F GLC-GITLAB-SSH 2>/dev/null || true
iptables -X GLC-GITLAB-SSH 2>/dev/null || true
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable gitlab-cluster-firewall-gitlab-ssh.service >/dev/null 2>&1 || true
fi
rm -f /usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh /etc/systemd/system/gitlab-cluster-firewall-gitlab-ssh.service
echo "firewall GLC-GITLAB-SSH removed"
