#!/bin/sh
set -eu
umask 077
mkdir -p /srv/gitlab/config
tmp=$(mktemp -d /srv/gitlab/config/.identity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
base64 -d | tar -xf - -C "$tmp"
changed=0
for f in gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub; do
    [ -f "$tmp/$f" ] || { echo "identity bundle lacks $f" >&2; exit 1; }
    case "$f" in *.pub) chmod 0644 "$tmp/$f" ;; *) chmod 0600 "$tmp/$f" ;; esac
    if ! cmp -s "$tmp/$f" /srv/gitlab/config/"$f"; then mv -f "$tmp/$f" /srv/gitlab/config/"$f"; changed=1; fi
done
echo "shared secrets and host keys: $([ "$changed" = 1 ] && echo written || echo unchanged)"
