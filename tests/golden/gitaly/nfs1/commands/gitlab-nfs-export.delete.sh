#!/bin/sh
set -eu
rm -f /etc/exports.d/gitlab-cluster.exports /etc/sysctl.d/90-gitlab-cluster-nfs.conf
if command -v exportfs >/dev/null 2>&1; then exportfs -ra; fi
echo "export removed; the data under the export path is kept"
