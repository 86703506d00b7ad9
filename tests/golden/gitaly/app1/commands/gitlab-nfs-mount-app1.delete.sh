#!/bin/sh
set -eu
if mountpoint -q /srv/gitlab-nfs; then umount /srv/gitlab-nfs; fi
grep -vF '# gitlab-cluster /srv/gitlab-nfs' /etc/fstab > /etc/fstab.gitlab-cluster || true
cat /etc/fstab.gitlab-cluster > /etc/fstab
rm -f /etc/fstab.gitlab-cluster
echo "unmounted /srv/gitlab-nfs"
