// POSIX sh scripts run on the hosts by the remote (or local) commands. Each is idempotent:
// a second run with the same inputs changes nothing. Secrets never appear here: they arrive
// on stdin.
import { SHARE_SENTINEL, SHARE_SENTINEL_FILE } from "./nfs";
import { shellQuote } from "./quote";

const HEADER = "#!/bin/sh\nset -eu\n";
/** Marks the file a script writes from stdin (`# writes: /path mode 0600`): read by `npm run render`. */
export const FILE_MARK = "# writes:";

export interface FileSpec {
    /** Absolute path on the host. */
    readonly path: string;
    /** Octal mode, e.g. "0600". */
    readonly mode: string;
    /** Numeric owner, e.g. "999:999"; default root. */
    readonly owner?: string;
}

/**
 * Writes stdin to `file` atomically (temp file + rename in the same directory) and leaves an
 * identical file untouched. `then` runs only when the content changed.
 */
export function writeFileScript(file: FileSpec, then?: string): string {
    const target = shellQuote(file.path);
    const dir = shellQuote(file.path.replace(/\/[^/]+$/, "") || "/");
    // Missing directories are created 0755, not under umask 077: the directory is often
    // bind-mounted into a container whose service runs as a non-root user (redis.conf,
    // pg_hba.conf), which must be able to traverse it. The file itself gets `file.mode`.
    return `${HEADER}${FILE_MARK} ${file.path} mode ${file.mode}
umask 077
(umask 022 && mkdir -p ${dir})
tmp=$(mktemp ${dir}/.gitlab-cluster.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod ${file.mode} "$tmp"
chown ${shellQuote(file.owner ?? "0:0")} "$tmp"
if [ -f ${target} ] && cmp -s "$tmp" ${target} && [ "$(stat -c '%a %u:%g' ${target})" = "$(stat -c '%a %u:%g' "$tmp")" ]; then
    echo "unchanged: ${file.path.replace(/["$`\\]/g, "")}"
    exit 0
fi
mv -f "$tmp" ${target}
trap - EXIT
echo "written: ${file.path.replace(/["$`\\]/g, "")}"
${then ?? ""}`.replace(/\n*$/, "\n");
}

/** Deletes a managed file; `then` runs afterwards (e.g. a reload). */
export function removeFileScript(path: string, then?: string): string {
    return `${HEADER}rm -f ${shellQuote(path)}\n${then ?? ""}`.replace(/\n*$/, "\n");
}

/** Creates directories (mode 0755 unless given) if missing. */
export function ensureDirsScript(dirs: readonly string[], mode = "0755"): string {
    return `${HEADER}mkdir -p ${dirs.map(shellQuote).join(" ")}\nchmod ${mode} ${dirs.map(shellQuote).join(" ")}\n`;
}

/** Installs packages with apt-get or dnf when a command they provide is missing. */
function installIfMissing(command: string, aptPackage: string, dnfPackage: string): string {
    return `if ! command -v ${command} >/dev/null 2>&1 && [ ! -x /usr/sbin/${command} ] && [ ! -x /sbin/${command} ]; then
    echo "installing ${aptPackage}"
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${aptPackage}
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q ${dnfPackage}
    else
        echo "no apt-get or dnf on this host: install ${aptPackage} by hand" >&2
        exit 1
    fi
fi`;
}

export interface NfsExportScriptInput {
    readonly exportPath: string;
    /** Subdirectories GitLab shares, relative to exportPath. */
    readonly directories: readonly string[];
    readonly exportsFile: string;
    /** The full content of exportsFile. */
    readonly exportsContent: string;
}

export const NFS_SYSCTL_FILE = "/etc/sysctl.d/90-gitlab-cluster-nfs.conf";

/** On the NFS server: install the server, create the shared directories, write the export, apply it. */
export function nfsExportScript(input: NfsExportScriptInput): string {
    const dirs = input.directories.map(d => shellQuote(`${input.exportPath}/${d}`)).join(" ");
    return `${HEADER}${installIfMissing("exportfs", "nfs-kernel-server", "nfs-utils")}
mkdir -p ${shellQuote(input.exportPath)} ${dirs}
# The nodes start only where this file is: on the share, not on an empty mount point.
mkdir -p ${shellQuote(`${input.exportPath}/${SHARE_SENTINEL}`)}
[ -f ${shellQuote(`${input.exportPath}/${SHARE_SENTINEL}/${SHARE_SENTINEL_FILE}`)} ] || printf '%s\n' 'gitlab-cluster shared storage: GitLab nodes start only where this file is. Do not delete.' > ${shellQuote(`${input.exportPath}/${SHARE_SENTINEL}/${SHARE_SENTINEL_FILE}`)}
# GitLab advises turning off lease delegation on the NFS server.
printf '%s\\n' 'fs.leases-enable = 0' > ${NFS_SYSCTL_FILE}
sysctl -q -w fs.leases-enable=0 || echo "could not set fs.leases-enable now (containerised host?); it is set for the next boot"
mkdir -p ${shellQuote(input.exportsFile.replace(/\/[^/]+$/, ""))}
printf '%s' ${shellQuote(input.exportsContent)} > ${shellQuote(input.exportsFile)}.new
if cmp -s ${shellQuote(input.exportsFile)}.new ${shellQuote(input.exportsFile)}; then
    rm -f ${shellQuote(input.exportsFile)}.new
    echo "exports unchanged"
else
    mv -f ${shellQuote(input.exportsFile)}.new ${shellQuote(input.exportsFile)}
    echo "exports written: ${input.exportsFile}"
fi
exportfs -ra
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl enable --now nfs-server 2>/dev/null || systemctl enable --now nfs-kernel-server
fi
`;
}

/** Undoes nfsExportScript's export; the shared data stays on disk. */
export function nfsUnexportScript(exportsFile: string): string {
    return `${HEADER}rm -f ${shellQuote(exportsFile)} ${NFS_SYSCTL_FILE}
if command -v exportfs >/dev/null 2>&1; then exportfs -ra; fi
echo "export removed; the data under the export path is kept"
`;
}

export interface NfsMountScriptInput {
    readonly mountPath: string;
    /** The full fstab line, without newline. */
    readonly fstabLine: string;
}

const FSTAB_MARK = "# gitlab-cluster";

/** On a GitLab host other than the server: install the client, persist the mount in fstab, mount it. */
export function nfsMountScript(input: NfsMountScriptInput): string {
    const path = shellQuote(input.mountPath);
    const line = `${input.fstabLine} ${FSTAB_MARK} ${input.mountPath}`;
    return `${HEADER}${installIfMissing("mount.nfs", "nfs-common", "nfs-utils")}
mkdir -p ${path}
line=${shellQuote(line)}
if ! grep -qxF "$line" /etc/fstab; then
    grep -vF ${shellQuote(`${FSTAB_MARK} ${input.mountPath}`)} /etc/fstab > /etc/fstab.gitlab-cluster || true
    printf '%s\\n' "$line" >> /etc/fstab.gitlab-cluster
    cat /etc/fstab.gitlab-cluster > /etc/fstab
    rm -f /etc/fstab.gitlab-cluster
    echo "fstab entry written for ${input.mountPath}"
    if mountpoint -q ${path}; then umount ${path}; fi
fi
if mountpoint -q ${path}; then
    echo "${input.mountPath} already mounted"
else
    mount ${path}
    echo "mounted ${input.mountPath}"
fi
`;
}

/** Unmounts and removes the fstab entry; the server keeps the data. */
export function nfsUnmountScript(mountPath: string): string {
    const path = shellQuote(mountPath);
    return `${HEADER}if mountpoint -q ${path}; then umount ${path}; fi
grep -vF ${shellQuote(`${FSTAB_MARK} ${mountPath}`)} /etc/fstab > /etc/fstab.gitlab-cluster || true
cat /etc/fstab.gitlab-cluster > /etc/fstab
rm -f /etc/fstab.gitlab-cluster
echo "unmounted ${mountPath}"
`;
}

/** How a wait loop asks a container whether it is ready: a host command, and what to call it in messages. */
export interface ReadinessProbe {
    /** Exits 0 when ready; run on the host, its stderr discarded. */
    readonly command: string;
    /** Named in progress and failure lines: "did not answer <what>". */
    readonly what: string;
}

/**
 * GitLab's /-/readiness, polled from inside the container (so the caller is 127.0.0.1, which the
 * monitoring allowlist admits).
 */
export function gitlabReadinessProbe(container: string): ReadinessProbe {
    return { command: `docker exec ${shellQuote(container)} curl -fsS --max-time 10 -o /dev/null http://127.0.0.1/-/readiness`, what: "/-/readiness" };
}

/**
 * A Gitaly-only node has no HTTP endpoint: its runit service must be up (`gitlab-ctl status`
 * exits non-zero for a service that is down). Whether the GitLab nodes reach it shows on their
 * side: GitLab's `/-/readiness?all=1` includes a Gitaly check per storage.
 * The output must say `run: gitaly:`: for a service no reconfigure has enabled yet (a new
 * container's first reconfigure is under way) omnibus-ctl prints nothing and exits 0.
 */
export function gitalyReadinessProbe(container: string): ReadinessProbe {
    return { command: `docker exec ${shellQuote(container)} gitlab-ctl status gitaly 2>/dev/null | grep -q '^run: gitaly:'`, what: "gitlab-ctl status gitaly" };
}

function waitLoop(container: string, timeoutSeconds: number, probe: ReadinessProbe): string {
    const c = shellQuote(container);
    return `deadline=$(( $(date +%s) + ${timeoutSeconds} ))
last=0
while :; do
    if ${probe.command} 2>/dev/null; then
        echo "${container} is ready"
        exit 0
    fi
    now=$(date +%s)
    if [ "$now" -ge "$deadline" ]; then
        echo "${container} did not answer ${probe.what} within ${timeoutSeconds}s; see: docker logs ${container}" >&2
        docker ps -a --filter name=${c} --format '{{.Names}}: {{.Status}}' >&2 || true
        exit 1
    fi
    if [ $(( now - last )) -ge 30 ]; then
        echo "waiting for ${container} ${probe.what} ($(( deadline - now ))s left)"
        last=$now
    fi
    sleep 5
done
`;
}

/** Polls the probe (GitLab's /-/readiness by default) until it succeeds, printing progress; fails after the timeout. */
export function waitForReadinessScript(container: string, timeoutSeconds: number, probe = gitlabReadinessProbe(container)): string {
    return `${HEADER}${waitLoop(container, timeoutSeconds, probe)}`;
}

/**
 * Applies a pushed gitlab.rb to a running node, then waits for it to be ready again. `revision`
 * (e.g. the file's digest) is written as a comment: a new one changes the script, which is what
 * makes the command provider run it as an update.
 */
export function reconfigureScript(container: string, timeoutSeconds: number, revision?: string, probe = gitlabReadinessProbe(container)): string {
    const c = shellQuote(container);
    // Reconfigure's output is kept out of the command's stdout (which the engine logs and stores):
    // Chef prints a diff of every template it changes, and Omnibus's templates (database.yml,
    // Gitaly's config.toml) hold passwords and tokens. On failure, the last lines without diff
    // lines; Omnibus logs each run in full under /var/log/gitlab/reconfigure/ in the container.
    return `${HEADER}${revision === undefined ? "" : `# ${revision.replace(/\n/g, " ")}\n`}echo "reconfiguring ${container}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! docker exec ${c} gitlab-ctl reconfigure >"$out" 2>&1; then
    echo "${container}: gitlab-ctl reconfigure failed; its last lines, file diffs left out (they can hold secrets):" >&2
    grep -v -E '^[[:space:]]*([-+]|@@)' "$out" | tail -n 30 >&2 || true
    echo "the whole output: docker exec ${container} sh -c 'ls -t /var/log/gitlab/reconfigure/*.log | head -n 1'" >&2
    exit 1
fi
echo "${container}: gitlab-ctl reconfigure done ($(wc -l < "$out") lines of output not shown: they can hold secrets)"
rm -f "$out"
trap - EXIT
${waitLoop(container, timeoutSeconds, probe)}`;
}

/** A rollout's create step: the container's first start applied gitlab.rb, there is nothing to do. */
export function firstStartAppliesScript(container: string): string {
    return `echo "${container.replace(/["$`\\]/g, "")}: gitlab.rb applied by the container's first start"`;
}

/** Files of /etc/gitlab that every node must share, as GitLab's HA docs require. */
export const SHARED_IDENTITY_FILES = [
    "gitlab-secrets.json",
    "ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub",
    "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
    "ssh_host_rsa_key", "ssh_host_rsa_key.pub",
];

/**
 * Prints the migration node's secrets file and SSH host keys as one base64 tar on stdout, and
 * nothing else, ever: pulumi-command puts a failed command's stdout in its error text whatever
 * `logging` says, so the bundle is built in a root-only temp directory and printed only once it
 * is whole. Messages on stderr name files, never their content. A symlink is refused, not followed.
 */
export function readIdentityScript(configDir: string): string {
    return `${HEADER}umask 077
cd ${shellQuote(configDir)}
for f in ${SHARED_IDENTITY_FILES.join(" ")}; do
    [ ! -L "$f" ] || { echo "refused: $f in ${configDir} is a symlink" >&2; exit 1; }
    [ -f "$f" ] || { echo "$f is missing in ${configDir}: has the migration node finished its first reconfigure?" >&2; exit 1; }
done
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
tar -cf "$bundle/identity.tar" -- ${SHARED_IDENTITY_FILES.join(" ")}
base64 "$bundle/identity.tar" > "$bundle/identity.b64"
tr -d '\\n' < "$bundle/identity.b64" > "$bundle/identity.txt"
cat "$bundle/identity.txt"
`;
}

export interface IdentitySource {
    /** Read this tar file (a backup's /etc/gitlab archive; other members are ignored) instead of base64 on stdin. */
    readonly archive: string;
}

/**
 * Writes the shared identity (base64 tar on stdin, or a backup's /etc/gitlab archive) into a
 * node's /etc/gitlab, mode 0600 (`*.pub` 0644); gitlab.rb is never taken from the bundle. The
 * bundle is extracted as root's, into a fresh root-only directory, and refused unless every
 * member named is a plain regular file: a symlink, hard link, device or directory is never
 * followed, chmod-ed or moved into place. The destination directory must be root's, and a
 * symlink there is refused.
 */
export function writeIdentityScript(configDir: string, source?: IdentitySource): string {
    const dir = shellQuote(configDir);
    const files = SHARED_IDENTITY_FILES.join(" ");
    const read = source === undefined
        ? "base64 -d > \"$work/bundle.tar\""
        : `archive=${shellQuote(source.archive)}
{ [ -f "$archive" ] && [ ! -L "$archive" ]; } || refuse "$archive is not a regular file"
cat < "$archive" > "$work/bundle.tar"`;
    return `${HEADER}umask 077
refuse() { echo "refused: $*" >&2; exit 1; }
dir=${dir}
[ ! -L "$dir" ] || refuse "$dir is a symlink"
mkdir -p "$dir"
# Root's, and writable by root only (group root may write, as Omnibus makes /etc/gitlab 0775):
# else another user could swap the names this script writes.
case "$(stat -c '%u:%g:%A' "$dir")" in
    0:*:d???????w?) refuse "$dir is writable by everyone" ;;
    0:0:d*|0:*:d????-????) ;;
    *) refuse "$dir is not root's" ;;
esac
for f in ${files}; do
    if [ -L "$dir/$f" ] || { [ -e "$dir/$f" ] && [ ! -f "$dir/$f" ]; }; then refuse "$dir/$f is not a regular file"; fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
${read}
tar -tf "$work/bundle.tar" > "$work/members"
while IFS= read -r m; do
    case "$m" in ${[...SHARED_IDENTITY_FILES, "gitlab.rb"].join("|")}) ;; *) refuse "unexpected member in the bundle: $m" ;; esac
done < "$work/members"
for f in ${files}; do grep -qxF "$f" "$work/members" || refuse "the bundle lacks $f"; done
mkdir "$work/x"
tar -xf "$work/bundle.tar" -C "$work/x" --no-same-owner --no-same-permissions -- ${files}
[ -z "$(find "$work/x" -mindepth 1 \\( ! -type f -o -links +1 \\) -print)" ] || refuse "the bundle holds something other than plain files"
changed=0
for f in ${files}; do
    case "$f" in *.pub) mode=0644 ;; *) mode=0600 ;; esac
    if ! cmp -s "$work/x/$f" "$dir/$f" || [ "$(stat -c %a "$dir/$f")" != "\${mode#0}" ]; then
        tmp=$(mktemp "$dir/.identity.XXXXXX")
        cat < "$work/x/$f" > "$tmp"
        chmod "$mode" "$tmp"
        mv -fT "$tmp" "$dir/$f"
        changed=1
    fi
done
echo "shared secrets and host keys: $([ "$changed" = 1 ] && echo written || echo unchanged)"
`;
}

/** Runs `command` only when the container exists (on a first deploy a file is written before its container). */
export function whenContainerExists(container: string, command: string): string {
    return `if docker inspect ${shellQuote(container)} >/dev/null 2>&1; then ${command}; fi`;
}

/** Restarts a container when it exists (used after a config file it reads at start changed). */
export function restartIfRunningScript(container: string): string {
    return whenContainerExists(container, `docker restart ${shellQuote(container)} >/dev/null && echo "restarted ${container}"`);
}

/** Removes a file the program wrote (a delete step). */
export function removeFileCommand(path: string): string {
    return `rm -f ${shellQuote(path)}`;
}
