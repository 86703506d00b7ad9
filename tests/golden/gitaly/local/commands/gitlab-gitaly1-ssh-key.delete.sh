#!/bin/sh
set -eu
f=${GITLAB_CLUSTER_SSH_KEY_FILE:?the key file path comes in the environment}
if [ -L "$f" ] || { [ -e "$f" ] && { [ ! -f "$f" ] || [ ! -O "$f" ]; }; }; then
    echo "left $f: not a regular file of this user" >&2
elif [ -e "$f" ]; then
    rm -f -- "$f"
    echo "removed $f"
else
    echo "already gone: $f"
fi
# The directory goes with its last file; other hosts' files may still be in it.
rmdir -- "$(dirname -- "$f")" 2>/dev/null || true
