#!/bin/sh
set -eu
while iptables -D DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10.0.0.13 --ctorigdstport 80 -j GLC-GITLAB-HTTP 2>/dev/null; do :; done
while iptables -D DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 80 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-GITLAB-HTTP 2>/dev/null; do :; done
while iptables -D INPUT -d 10.0.0.13 -p tcp --dport 80 -m conntrack --ctdir ORIGINAL -j GLC-GITLAB-HTTP 2>/dev/null; do :; done
while iptables -D DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.13 --ctorigdstport 80 -j GLC-GITLAB-HTTP 2>/dev/null; do :; done
iptables -F GLC-GITLAB-HTTP 2>/dev/null || true
iptables -X GLC-GITLAB-HTTP 2>/dev/null || true
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable gitlab-cluster-firewall-gitlab-http.service >/dev/null 2>&1 || true
fi
rm -f /usr/local/sbin/gitlab-cluster-firewall-gitlab-http /etc/systemd/system/gitlab-cluster-firewall-gitlab-http.service
echo "firewall GLC-GITLAB-HTTP removed"
