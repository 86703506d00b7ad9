// Scheduled backups on the backup node: GitLab's own backup, plus the /etc/gitlab archive that
// GitLab's backup leaves out (gitlab.rb, gitlab-secrets.json, SSH host keys), and optional
// off-host copies through a key that may only add new files to one directory on each host: the
// data archive to one host, the /etc/gitlab archive (its decryption keys) to another. GitLab's backups
// directory is written by the container's `git` user: root reads nothing there through a
// symlink and writes nothing there at all; the /etc/gitlab archives live in a root-only directory.
import { shellQuote } from "./quote";
import { SHARED_IDENTITY_FILES } from "./scripts";

export const BACKUP_SCRIPT_PATH = "/usr/local/sbin/gitlab-cluster-backup";
export const BACKUP_CRON_PATH = "/etc/cron.d/gitlab-cluster-backup";
export const BACKUP_LOG_PATH = "/var/log/gitlab-cluster-backup.log";
export const BACKUP_KEY_PATH = "/root/.ssh/gitlab-cluster-backup";
/** The backup node's known_hosts files: one per off-host destination, so that each keeps what it pinned. */
export const TARGET_KNOWN_HOSTS_PATH = "/root/.ssh/gitlab-cluster-backup.known_hosts";
export const SECRETS_TARGET_KNOWN_HOSTS_PATH = "/root/.ssh/gitlab-cluster-backup-secrets.known_hosts";
export const RECEIVER_SCRIPT_PATH = "/usr/local/sbin/gitlab-cluster-backup-receive";
/** GitLab's archive suffix, and ours for the /etc/gitlab archive beside it. */
export const GITLAB_ARCHIVE_SUFFIX = "_gitlab_backup.tar";
export const ETC_ARCHIVE_SUFFIX = "_gitlab_etc.tar";
/** GitLab's backups directory as the container sees it. */
export const CONTAINER_BACKUPS_DIR = "/var/opt/gitlab/backups";
export const TARGET_PRUNE_CRON_PATH = "/etc/cron.d/gitlab-cluster-backup-prune";
/**
 * How `gitlab-backup create` archives the data directories: `copy` copies them first and tars
 * the copy, as GitLab advises when data changes during the backup (every node keeps serving, and
 * the NFS share is written by all of them); plain tar then fails with "file changed as we read
 * it". The price is room for a copy of those directories in the backups directory while it runs.
 */
export const BACKUP_STRATEGY = "copy";
/** Defaults of `backup.target.maxArchiveGiB` and `.minFreeGiB` (and of `backup.secretsTarget`'s). */
export const DEFAULT_MAX_ARCHIVE_GIB = 100;
export const DEFAULT_MIN_FREE_GIB = 5;

/**
 * The /etc/gitlab archives' directory on the backup node: beside the node's data, not inside
 * any directory mounted into the container, root's only (0700).
 */
export function etcBackupsDirOf(dataRoot: string): string {
    return `${dataRoot}/etc-backups`;
}

/** A refusal on stderr, then exit 1: one definition for every script here. */
const REFUSE = "refuse() { echo \"refused: $*\" >&2; exit 1; }";

export interface BackupTarget {
    readonly address: string;
    readonly user: string;
    readonly port: number;
    readonly path: string;
    /** `known_hosts` line for the target; without it the first connection pins the key it sees. */
    readonly knownHostsLine?: string;
}

export interface BackupScriptInput {
    readonly container: string;
    /** Host directory holding GitLab's backups (`<dataRoot>/data/backups`), written by the container's `git` user. */
    readonly backupsDir: string;
    /** Root-only host directory for the /etc/gitlab archives (`etcBackupsDirOf(dataRoot)`). */
    readonly etcBackupsDir: string;
    /** Host directory mounted as /etc/gitlab. */
    readonly etcDir: string;
    readonly keepDays: number;
    /** Off-host copy of the data archive; also of the /etc/gitlab archive when there is no `secretsTarget`. */
    readonly target?: BackupTarget;
    /** Off-host copy of the /etc/gitlab archive, on another host than `target`. */
    readonly secretsTarget?: BackupTarget;
}

/** A shell function `fn` that runs the backup key's one command on `t` (with the known_hosts line pinned, if given). */
function remoteFunction(fn: string, t: BackupTarget, knownHostsFile: string): string[] {
    const pin = t.knownHostsLine ? [`printf '%s\\n' ${shellQuote(t.knownHostsLine.trim())} > ${knownHostsFile}`] : [];
    return [
        ...pin,
        `${fn}() { ssh -i ${BACKUP_KEY_PATH} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=${t.knownHostsLine ? "yes" : "accept-new"} ` +
            `-o UserKnownHostsFile=${knownHostsFile} -p ${t.port} ${shellQuote(`${t.user}@${t.address}`)} "$@"; }`,
    ];
}

/** The script cron runs. Prints each step with a timestamp; fails on the first failed step. */
export function renderBackupScript(input: BackupScriptInput): string {
    const lines = [
        "#!/bin/sh",
        "# Managed by gitlab-cluster (Pulumi): one GitLab backup, and the /etc/gitlab archive in a root-only directory.",
        "set -eu",
        "log() { echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) $*\"; }",
        REFUSE,
        `container=${shellQuote(input.container)}`,
        "# Written by the container's git user: nothing in it is trusted, and root writes nothing there.",
        `backups=${shellQuote(input.backupsDir)}`,
        `etcbackups=${shellQuote(input.etcBackupsDir)}`,
        `etc=${shellQuote(input.etcDir)}`,
        "umask 077",
        "exec 9>/run/gitlab-cluster-backup.lock",
        "flock -n 9 || { log 'another backup is running'; exit 1; }",
        "[ ! -L \"$etcbackups\" ] || refuse \"$etcbackups is a symlink\"",
        "mkdir -p \"$etcbackups\"",
        "chown 0:0 \"$etcbackups\"",
        "chmod 0700 \"$etcbackups\"",
        "log \"gitlab-backup create in $container\"",
        `docker exec "$container" gitlab-backup create STRATEGY=${BACKUP_STRATEGY} CRON=1`,
        "# Ids start with the epoch, so the last archive in glob order is the newest; a symlink is not an archive.",
        "archive=''",
        `for f in "$backups"/*${GITLAB_ARCHIVE_SUFFIX}; do if [ -f "$f" ] && [ ! -L "$f" ]; then archive=$f; fi; done`,
        "[ -n \"$archive\" ] || { log \"no archive appeared in $backups\"; exit 1; }",
        "archive=${archive##*/}",
        `id=\${archive%${GITLAB_ARCHIVE_SUFFIX}}`,
        "case \"$id\" in ''|*[!0-9A-Za-z._-]*|.*) refuse \"unexpected archive name in $backups\" ;; esac",
        "log \"backup $id created\"",
        "tmp=$(mktemp \"$etcbackups/.etc.XXXXXX\")",
        "trap 'rm -f \"$tmp\"' EXIT",
        `tar -cf "$tmp" -C "$etc" -- ${SHARED_IDENTITY_FILES.join(" ")} gitlab.rb`,
        "chmod 0600 \"$tmp\"",
        `mv -f "$tmp" "$etcbackups/\${id}${ETC_ARCHIVE_SUFFIX}"`,
        "trap - EXIT",
        `log "wrote $etcbackups/\${id}${ETC_ARCHIVE_SUFFIX}"`,
        "# GitLab prunes its own archives (backup_keep_time); ours follow the same age. find never follows a symlink,",
        "# and -delete unlinks the name: also in $backups, where earlier versions of this script wrote the /etc/gitlab archives.",
        `find "$etcbackups" "$backups" -maxdepth 1 -type f -name '*${ETC_ARCHIVE_SUFFIX}' -mtime +${input.keepDays} -print -delete`,
    ];
    const { target, secretsTarget } = input;
    if (target || secretsTarget) {
        lines.push(
            ...(target ? remoteFunction("to_target", target, TARGET_KNOWN_HOSTS_PATH) : []),
            ...(secretsTarget ? remoteFunction("to_secrets_target", secretsTarget, SECRETS_TARGET_KNOWN_HOSTS_PATH) : []),
            "# send <dir> <name> <remote> <destination>: the receiver there stores exactly <size> bytes under a new name, or refuses.",
            "send() {",
            "    { [ -f \"$1/$2\" ] && [ ! -L \"$1/$2\" ]; } || refuse \"$1/$2 is not a regular file\"",
            "    size=$(stat -c %s \"$1/$2\")",
            "    log \"copying $2 ($size bytes) to $4\"",
            "    # iflag=nofollow: a symlink swapped in after the test above is not read; the receiver then gets too few bytes and refuses.",
            "    dd if=\"$1/$2\" iflag=nofollow bs=1M status=none | \"$3\" put \"$2\" \"$size\"",
            "}",
        );
        const destination = (t: BackupTarget) => shellQuote(`${t.address}:${t.path}`);
        if (target) lines.push(`send "$backups" "\${id}${GITLAB_ARCHIVE_SUFFIX}" to_target ${destination(target)}`);
        if (secretsTarget) {
            lines.push("# The decryption keys go to their own host, never beside the data archive (GitLab's advice).",
                `send "$etcbackups" "\${id}${ETC_ARCHIVE_SUFFIX}" to_secrets_target ${destination(secretsTarget)}`);
        } else if (target) {
            lines.push("# No backup.secretsTarget: the keys go beside the data archive (a warning at every preview says so).",
                `send "$etcbackups" "\${id}${ETC_ARCHIVE_SUFFIX}" to_target ${destination(target)}`);
        }
    }
    lines.push("log \"backup $id done\"", "");
    return lines.join("\n");
}

/** The cron entry; `schedule` is validated by the config schema. */
export function renderBackupCron(schedule: string): string {
    return [
        "# Managed by gitlab-cluster (Pulumi).",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        `${schedule.trim().split(/\s+/).join(" ")} root ${BACKUP_SCRIPT_PATH} >> ${BACKUP_LOG_PATH} 2>&1`,
        "",
    ].join("\n");
}

export interface ReceiverLimits {
    /** The largest archive accepted, in bytes. */
    readonly maxArchiveBytes: number;
    /** Free space that must remain on the target's filesystem after an archive is stored, in bytes. */
    readonly minFreeBytes: number;
}

export function receiverLimits(maxArchiveGiB = DEFAULT_MAX_ARCHIVE_GIB, minFreeGiB = DEFAULT_MIN_FREE_GIB): ReceiverLimits {
    const gib = 1024 ** 3;
    return { maxArchiveBytes: Math.floor(maxArchiveGiB * gib), minFreeBytes: Math.floor(minFreeGiB * gib) };
}

/** The two archives of a backup: GitLab's data archive, and the /etc/gitlab archive that holds its decryption keys. */
export type ArchiveKind = "data" | "secrets";
const SUFFIX_OF: Readonly<Record<ArchiveKind, string>> = { data: GITLAB_ARCHIVE_SUFFIX, secrets: ETC_ARCHIVE_SUFFIX };

/**
 * The forced command on an off-host target. Append-only: the backup key may only
 * `put <name> <bytes>`, which stores exactly that many bytes under a name that does not exist
 * yet, no more than `maxArchiveBytes`, and never below `minFreeBytes` free. It cannot overwrite,
 * delete or prune: the target prunes on its own schedule (renderTargetPruneCron). It takes only
 * the archive kinds it is for: a data target that has a separate secrets target refuses the keys.
 */
export function renderReceiverScript(directory: string, limits: ReceiverLimits = receiverLimits(), accepts: readonly ArchiveKind[] = ["data", "secrets"]): string {
    for (const [key, value] of Object.entries(limits)) {
        if (!Number.isSafeInteger(value) || value < 0) throw new Error(`receiver limit ${key} must be a whole number of bytes, not ${value}`);
    }
    if (accepts.length === 0) throw new Error("a receiver must accept at least one archive kind");
    const patterns = [...new Set(accepts)].map(k => `*${SUFFIX_OF[k]}`).join("|");
    const refusal = accepts.includes("data") && accepts.includes("secrets") ? "not a backup archive name"
        : accepts.includes("data") ? `not a data archive name: this host takes no *${ETC_ARCHIVE_SUFFIX}, which go to backup.secretsTarget`
            : `not a /etc/gitlab archive name: this host takes only *${ETC_ARCHIVE_SUFFIX}; data archives go to backup.target`;
    return `#!/bin/sh
# Managed by gitlab-cluster (Pulumi): forced command of the backup key (append-only).
set -euf
${REFUSE}
dir=${shellQuote(directory)}
max_bytes=${limits.maxArchiveBytes}
min_free_bytes=${limits.minFreeBytes}
umask 077
mkdir -p "$dir"
# shellcheck disable=SC2086 # the client's words, split on purpose (no globbing: set -f) and checked below
set -- \${SSH_ORIGINAL_COMMAND:-}
{ [ "$#" -eq 3 ] && [ "$1" = put ]; } || refuse "only 'put <name> <bytes>' is allowed"
name=$2
size=$3
case "$name" in
    .*|*[!0-9A-Za-z._-]*) refuse "bad name" ;;
    ${patterns}) ;;
    *) refuse "${refusal}" ;;
esac
case "$size" in ''|*[!0-9]*) refuse "the size must be a number of bytes" ;; esac
{ [ "\${#size}" -le 15 ] && [ "$size" -le "$max_bytes" ]; } || refuse "$name: $size bytes is more than the $max_bytes allowed"
{ [ ! -e "$dir/$name" ] && [ ! -L "$dir/$name" ]; } || refuse "$name exists; archives are never overwritten"
free_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
[ $(( free_kib * 1024 - size )) -ge "$min_free_bytes" ] || refuse "$name: storing $size bytes would leave less than $min_free_bytes bytes free in $dir"
part=$(mktemp "$dir/.part.XXXXXX")
trap 'rm -f "$part"' EXIT
head -c "$size" > "$part"
got=$(stat -c %s "$part")
[ "$got" -eq "$size" ] || refuse "$name: received $got of $size bytes"
[ "$(head -c 1 | wc -c)" -eq 0 ] || refuse "$name: more than $size bytes sent"
chmod 0600 "$part"
# link(2) never replaces an existing name, even when two uploads of one name race.
ln "$part" "$dir/$name" 2>/dev/null || refuse "$name exists; archives are never overwritten"
echo "stored $name"
`;
}

/** The find command that prunes the off-host copies older than `keepDays` (never through a symlink). */
export function targetPruneCommand(directory: string, keepDays: number): string {
    return `find ${shellQuote(directory)} -maxdepth 1 -type f \\( -name '*${GITLAB_ARCHIVE_SUFFIX}' -o -name '*${ETC_ARCHIVE_SUFFIX}' \\) -mtime +${keepDays} -delete`;
}

/** The target's own cron entry that prunes the copies, as the user that owns them: the backup key cannot. */
export function renderTargetPruneCron(user: string, directory: string, keepDays: number): string {
    if (!/^[a-z_][a-z0-9_.-]*$/i.test(user)) throw new Error(`not a user name for a cron entry: ${JSON.stringify(user)}`);
    return [
        "# Managed by gitlab-cluster (Pulumi): prunes the off-host backup copies by age (backup.keepDays).",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        `17 5 * * * ${user} ${targetPruneCommand(directory, keepDays)}`,
        "",
    ].join("\n");
}

/**
 * The authorized_keys line that ties the backup key to the receiver, usable only from the
 * backup node's address.
 */
export function renderAuthorizedKeyLine(publicKey: string, fromAddress: string, receiverPath = RECEIVER_SCRIPT_PATH): string {
    const key = publicKey.trim().split(/\s+/).slice(0, 2).join(" ");
    if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(key)) throw new Error(`not an ed25519 public key: ${JSON.stringify(publicKey.slice(0, 40))}`);
    if (!/^[0-9A-Fa-f.:]+$/.test(fromAddress)) throw new Error(`not an address for from=: ${JSON.stringify(fromAddress)}`);
    if (!/^\/[A-Za-z0-9._/-]+$/.test(receiverPath)) throw new Error(`not a path for command=: ${JSON.stringify(receiverPath)}`);
    return `restrict,from="${fromAddress}",command="${receiverPath}" ${key} gitlab-cluster-backup`;
}

export interface HandArchiveInput {
    readonly container: string;
    readonly id: string;
    /** The root-only directory where an off-host copy is put back for a restore. */
    readonly etcBackupsDir: string;
}

/**
 * Restore, on the backup node's host: makes `<id>_gitlab_backup.tar` in GitLab's backups
 * directory a regular file of git's own, as `gitlab-backup restore` needs. Root never writes or
 * chowns a path there (git could swap it for a symlink): a copy put back into the root-only
 * directory is written by git itself (`docker exec -u git`), so a symlink git planted leads only
 * where git may write anyway; the archive GitLab made is git's already and is only checked, as git.
 */
export function handArchiveToGitScript(input: HandArchiveInput): string {
    const name = `${input.id}${GITLAB_ARCHIVE_SUFFIX}`;
    return `#!/bin/sh
set -eu
${REFUSE}
container=${shellQuote(input.container)}
etcbackups=${shellQuote(input.etcBackupsDir)}
staged="$etcbackups"/${shellQuote(name)}
inside=${shellQuote(`${CONTAINER_BACKUPS_DIR}/${name}`)}
if [ -f "$staged" ] && [ ! -L "$staged" ]; then
    echo "handing $staged to git in $container"
    # shellcheck disable=SC2016 # expanded by the container's sh
    docker exec -i -u git "$container" sh -c 'umask 077; cat > "$1.part" && mv -f "$1.part" "$1"' sh "$inside" < "$staged"
fi
# shellcheck disable=SC2016 # expanded by the container's sh; -O: owned by git, who runs the test
docker exec -u git "$container" sh -c '[ -f "$1" ] && [ ! -L "$1" ] && [ -O "$1" ]' sh "$inside" ||
    refuse "$inside is not a regular file of git's own: put the archive in $etcbackups and run the restore again"
echo "$inside is git's"
`;
}

/** On the backup node: make the backup key once, print its public half. */
export function backupKeyScript(): string {
    return `#!/bin/sh
set -eu
mkdir -p /root/.ssh
chmod 0700 /root/.ssh
[ -f ${BACKUP_KEY_PATH} ] || ssh-keygen -q -t ed25519 -N '' -C gitlab-cluster-backup -f ${BACKUP_KEY_PATH}
cat ${BACKUP_KEY_PATH}.pub
`;
}

/** The login user's home on the target (root, or /home/<user>). */
function homeOf(user: string): string {
    return user === "root" ? "/root" : `/home/${user}`;
}

/** On the target: install the authorized_keys line (from stdin), replacing an older one. */
export function authorizeBackupKeyScript(user: string): string {
    const home = homeOf(user);
    return `#!/bin/sh
set -eu
line=$(cat)
mkdir -p ${home}/.ssh
chmod 0700 ${home}/.ssh
touch ${home}/.ssh/authorized_keys
grep -v ' gitlab-cluster-backup$' ${home}/.ssh/authorized_keys > ${home}/.ssh/authorized_keys.gitlab-cluster || true
printf '%s\\n' "$line" >> ${home}/.ssh/authorized_keys.gitlab-cluster
if cmp -s ${home}/.ssh/authorized_keys.gitlab-cluster ${home}/.ssh/authorized_keys; then
    rm -f ${home}/.ssh/authorized_keys.gitlab-cluster
    echo "backup key already authorized"
else
    chmod 0600 ${home}/.ssh/authorized_keys.gitlab-cluster
    mv -f ${home}/.ssh/authorized_keys.gitlab-cluster ${home}/.ssh/authorized_keys
    echo "backup key authorized"
fi
`;
}

/** On the target: remove the authorized_keys line; the copies stay. */
export function unauthorizeBackupKeyScript(user: string): string {
    const home = homeOf(user);
    return `#!/bin/sh
set -eu
[ -f ${home}/.ssh/authorized_keys ] || exit 0
grep -v ' gitlab-cluster-backup$' ${home}/.ssh/authorized_keys > ${home}/.ssh/authorized_keys.gitlab-cluster || true
chmod 0600 ${home}/.ssh/authorized_keys.gitlab-cluster
mv -f ${home}/.ssh/authorized_keys.gitlab-cluster ${home}/.ssh/authorized_keys
echo "backup key removed; copies are kept"
`;
}

/** Installs cron when missing (the backup schedule needs it). */
export function ensureCronScript(): string {
    return `#!/bin/sh
set -eu
if ! command -v cron >/dev/null 2>&1 && ! command -v crond >/dev/null 2>&1; then
    echo "installing cron"
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q cron
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q cronie
    else
        echo "no apt-get or dnf: install cron by hand" >&2
        exit 1
    fi
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl enable --now cron 2>/dev/null || systemctl enable --now crond
fi
`;
}
