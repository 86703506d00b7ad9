#!/bin/sh
set -eu
umask 077
refuse() { echo "refused: $*" >&2; exit 1; }
dir=/srv/gitlab/config
[ ! -L "$dir" ] || refuse "$dir is a symlink"
mkdir -p "$dir"
# Root's, and writable by root only (group root may write, as Omnibus makes /etc/gitlab 0775):
# else another user could swap the names this script writes.
case "$(stat -c '%u:%g:%A' "$dir")" in
    0:*:d???????w?) refuse "$dir is writable by everyone" ;;
    0:0:d*|0:*:d????-????) ;;
    *) refuse "$dir is not root's" ;;
esac
for f in gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub; do
    if [ -L "$dir/$f" ] || { [ -e "$dir/$f" ] && [ ! -f "$dir/$f" ]; }; then refuse "$dir/$f is not a regular file"; fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base64 -d > "$work/bundle.tar"
tar -tf "$work/bundle.tar" > "$work/members"
while IFS= read -r m; do
    case "$m" in gitlab-secrets.json|ssh_host_ecdsa_key|ssh_host_ecdsa_key.pub|ssh_host_ed25519_key|ssh_host_ed25519_key.pub|ssh_host_rsa_key|ssh_host_rsa_key.pub|gitlab.rb) ;; *) refuse "unexpected member in the bundle: $m" ;; esac
done < "$work/members"
for f in gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub; do grep -qxF "$f" "$work/members" || refuse "the bundle lacks $f"; done
mkdir "$work/x"
tar -xf "$work/bundle.tar" -C "$work/x" --no-same-owner --no-same-permissions -- gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub
[ -z "$(find "$work/x" -mindepth 1 \( ! -type f -o -links +1 \) -print)" ] || refuse "the bundle holds something other than plain files"
changed=0
for f in gitlab-secrets.json ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub ssh_host_rsa_key ssh_host_rsa_key.pub; do
    case "$f" in *.pub) mode=0644 ;; *) mode=0600 ;; esac
    if ! cmp -s "$work/x/$f" "$dir/$f" || [ "$(stat -c %a "$dir/$f")" != "${mode#0}" ]; then
        tmp=$(mktemp "$dir/.identity.XXXXXX")
        cat < "$work/x/$f" > "$tmp"
        chmod "$mode" "$tmp"
        mv -fT "$tmp" "$dir/$f"
        changed=1
    fi
done
echo "shared secrets and host keys: $([ "$changed" = 1 ] && echo written || echo unchanged)"
