#!/bin/sh
set -eu
umask 077
cd /srv/gitlab/config
for f in gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub; do
    [ ! -L "$f" ] || { echo "refused: $f in /srv/gitlab/config is a symlink" >&2; exit 1; }
    [ -f "$f" ] || { echo "$f is missing in /srv/gitlab/config: has the migration node finished its first reconfigure?" >&2; exit 1; }
done
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
tar -cf "$bundle/identity.tar" -- gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub
base64 "$bundle/identity.tar" > "$bundle/identity.b64"
tr -d '\n' < "$bundle/identity.b64" > "$bundle/identity.txt"
cat "$bundle/identity.txt"
