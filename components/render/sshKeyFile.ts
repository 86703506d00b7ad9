// Scripts of the local command that owns the SSH key file the program writes on the machine
// running Pulumi (for the Docker provider's `ssh -i`). The program writes the file at every run,
// before any resource is touched, because the provider needs it during a preview too; the command
// exists so that the file goes when the stack (or the host, or the key) does. `pulumi destroy`
// does not run the program, so the delete step takes the path from its own stored environment.

/** The environment variable that carries the key file's path to the scripts. */
export const SSH_KEY_FILE_ENV = "GITLAB_CLUSTER_SSH_KEY_FILE";

const HEADER = "#!/bin/sh\nset -eu\n";

export function sshKeyFileCreateScript(): string {
    return `${HEADER}echo "the program writes \${${SSH_KEY_FILE_ENV}} at every run for the Docker provider's ssh; deleting this resource removes it"\n`;
}

/** Removes the key file: only a regular file of this user, never through a symlink; then the emptied directory. */
export function sshKeyFileDeleteScript(): string {
    return `${HEADER}f=\${${SSH_KEY_FILE_ENV}:?the key file path comes in the environment}
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
`;
}
