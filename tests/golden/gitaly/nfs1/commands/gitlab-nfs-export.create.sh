#!/bin/sh
set -eu
if ! command -v exportfs >/dev/null 2>&1 && [ ! -x /usr/sbin/exportfs ] && [ ! -x /sbin/exportfs ]; then
    echo "installing nfs-kernel-server"
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfs-kernel-server
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q nfs-utils
    else
        echo "no apt-get or dnf on this host: install nfs-kernel-server by hand" >&2
        exit 1
    fi
fi
mkdir -p /srv/gitlab-nfs /srv/gitlab-nfs/uploads /srv/gitlab-nfs/shared /srv/gitlab-nfs/builds /srv/gitlab-nfs/ssh
# The nodes start only where this file is: on the share, not on an empty mount point.
mkdir -p /srv/gitlab-nfs/.gitlab-cluster-share
[ -f /srv/gitlab-nfs/.gitlab-cluster-share/this-is-the-shared-storage ] || printf '%s
' 'gitlab-cluster shared storage: GitLab nodes start only where this file is. Do not delete.' > /srv/gitlab-nfs/.gitlab-cluster-share/this-is-the-shared-storage
# GitLab advises turning off lease delegation on the NFS server.
printf '%s\n' 'fs.leases-enable = 0' > /etc/sysctl.d/90-gitlab-cluster-nfs.conf
sysctl -q -w fs.leases-enable=0 || echo "could not set fs.leases-enable now (containerised host?); it is set for the next boot"
mkdir -p /etc/exports.d
printf '%s' '# Managed by gitlab-cluster (Pulumi).
/srv/gitlab-nfs 10.0.0.11(rw,sync,no_root_squash,no_subtree_check) 10.0.0.12(rw,sync,no_root_squash,no_subtree_check) 10.0.0.13(rw,sync,no_root_squash,no_subtree_check)
' > /etc/exports.d/gitlab-cluster.exports.new
if cmp -s /etc/exports.d/gitlab-cluster.exports.new /etc/exports.d/gitlab-cluster.exports; then
    rm -f /etc/exports.d/gitlab-cluster.exports.new
    echo "exports unchanged"
else
    mv -f /etc/exports.d/gitlab-cluster.exports.new /etc/exports.d/gitlab-cluster.exports
    echo "exports written: /etc/exports.d/gitlab-cluster.exports"
fi
exportfs -ra
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl enable --now nfs-server 2>/dev/null || systemctl enable --now nfs-kernel-server
fi
