#!/bin/sh
set -eu
command -v iptables-restore >/dev/null 2>&1 || { echo "iptables-restore is not installed on this host: install iptables" >&2; exit 1; }
mkdir -p /usr/local/sbin
# shellcheck disable=SC2016 # the script is written out as it is, to expand on the host when it runs
printf '%s' '#!/bin/sh
# Managed by gitlab-cluster (Pulumi): only the GitLab hosts may reach gitlab-ssh on 10.0.0.12:2222.
set -eu
boot=no
if [ "${1:-}" = --boot ]; then boot=yes; fi
iptables -N DOCKER-USER 2>/dev/null || true
if ! iptables -C FORWARD -j DOCKER-USER 2>/dev/null; then
    if [ "$boot" = yes ]; then
        iptables -I FORWARD -j DOCKER-USER
    else
        echo "firewall GLC-GITLAB-SSH: FORWARD does not jump to DOCKER-USER: Docker is not managing iptables on this host (is \"iptables\": false in /etc/docker/daemon.json?), so published ports would bypass this firewall. Let Docker manage iptables, restart it, and run again." >&2
        exit 1
    fi
fi
printf '\''%s'\'' '\''*filter
:GLC-GITLAB-SSH - [0:0]
-F GLC-GITLAB-SSH
-A GLC-GITLAB-SSH -s 10.0.0.5/32 -j RETURN
-A GLC-GITLAB-SSH -j DROP
COMMIT
'\'' | iptables-restore --noflush
iptables -C DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10.0.0.12 --ctorigdstport 2222 -j GLC-GITLAB-SSH 2>/dev/null || iptables -I DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10.0.0.12 --ctorigdstport 2222 -j GLC-GITLAB-SSH
iptables -C DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 22 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-GITLAB-SSH 2>/dev/null || iptables -I DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 22 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-GITLAB-SSH
iptables -C INPUT -d 10.0.0.12 -p tcp --dport 2222 -m conntrack --ctdir ORIGINAL -j GLC-GITLAB-SSH 2>/dev/null || iptables -I INPUT -d 10.0.0.12 -p tcp --dport 2222 -m conntrack --ctdir ORIGINAL -j GLC-GITLAB-SSH
while iptables -D DOCKER-USER -p tcp -m conntrack --ctorigdst 10.0.0.12 --ctorigdstport 2222 -j GLC-GITLAB-SSH 2>/dev/null; do :; done
echo "firewall GLC-GITLAB-SSH: 1 allowed source(s) for 10.0.0.12:2222"
' > /usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh.new
chmod 0700 /usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh.new
mv -f /usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh.new /usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh
/usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    printf '%s' '[Unit]
Description=gitlab-cluster: only the GitLab hosts may reach gitlab-ssh
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target docker.service
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/gitlab-cluster-firewall-gitlab-ssh --boot

[Install]
WantedBy=multi-user.target
RequiredBy=docker.service
' > /etc/systemd/system/gitlab-cluster-firewall-gitlab-ssh.service
    systemctl daemon-reload
    systemctl reenable gitlab-cluster-firewall-gitlab-ssh.service >/dev/null
fi
