#!/bin/sh
set -eu
if ! command -v mount.nfs >/dev/null 2>&1 && [ ! -x /usr/sbin/mount.nfs ] && [ ! -x /sbin/mount.nfs ]; then
    echo "installing nfs-common"
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfs-common
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q nfs-utils
    else
        echo "no apt-get or dnf on this host: install nfs-common by hand" >&2
        exit 1
    fi
fi
mkdir -p /srv/gitlab-nfs
line='10.0.0.41:/srv/gitlab-nfs /srv/gitlab-nfs nfs vers=4.1,hard,rsize=1048576,wsize=1048576,noatime,nofail,_netdev,lookupcache=positive,nosuid,nodev 0 0 # gitlab-cluster /srv/gitlab-nfs'
if ! grep -qxF "$line" /etc/fstab; then
    grep -vF '# gitlab-cluster /srv/gitlab-nfs' /etc/fstab > /etc/fstab.gitlab-cluster || true
    printf '%s\n' "$line" >> /etc/fstab.gitlab-cluster
    cat /etc/fstab.gitlab-cluster > /etc/fstab
    rm -f /etc/fstab.gitlab-cluster
    echo "fstab entry written for /srv/gitlab-nfs"
    if mountpoint -q /srv/gitlab-nfs; then umount /srv/gitlab-nfs; fi
fi
if mountpoint -q /srv/gitlab-nfs; then
    echo "/srv/gitlab-nfs already mounted"
else
    mount /srv/gitlab-nfs
    echo "mounted /srv/gitlab-nfs"
fi
