#!/bin/sh
set -eu
cd /srv/gitlab/config
for f in gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub; do
    [ -f "$f" ] || { echo "$f is missing in /srv/gitlab/config: has the migration node finished its first reconfigure?" >&2; exit 1; }
done
tar -cf - gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub | base64 | tr -d '\n'
