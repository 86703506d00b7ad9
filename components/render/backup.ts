// Scheduled backups on the backup node: GitLab's own backup, plus the /etc/gitlab archive that
// GitLab's backup leaves out (gitlab.rb, gitlab-secrets.json, SSH host keys), an optional
// off-host copy through a key that may only put and prune files in one directory.
import { shellQuote } from "./quote";
import { SHARED_IDENTITY_FILES } from "./scripts";

export const BACKUP_SCRIPT_PATH = "/usr/local/sbin/gitlab-cluster-backup";
export const BACKUP_CRON_PATH = "/etc/cron.d/gitlab-cluster-backup";
export const BACKUP_LOG_PATH = "/var/log/gitlab-cluster-backup.log";
export const BACKUP_KEY_PATH = "/root/.ssh/gitlab-cluster-backup";
export const RECEIVER_SCRIPT_PATH = "/usr/local/sbin/gitlab-cluster-backup-receive";
/** GitLab's archive suffix, and ours for the /etc/gitlab archive beside it. */
export const GITLAB_ARCHIVE_SUFFIX = "_gitlab_backup.tar";
export const ETC_ARCHIVE_SUFFIX = "_gitlab_etc.tar";

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
    /** Host directory holding GitLab's backups (`<dataRoot>/data/backups`). */
    readonly backupsDir: string;
    /** Host directory mounted as /etc/gitlab. */
    readonly etcDir: string;
    readonly keepDays: number;
    readonly target?: BackupTarget;
}

/** The script cron runs. Prints each step with a timestamp; fails on the first failed step. */
export function renderBackupScript(input: BackupScriptInput): string {
    const dir = shellQuote(input.backupsDir);
    const lines = [
        "#!/bin/sh",
        "# Managed by gitlab-cluster (Pulumi): one GitLab backup, with the /etc/gitlab archive beside it.",
        "set -eu",
        "log() { echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) $*\"; }",
        `container=${shellQuote(input.container)}`,
        `backups=${dir}`,
        `etc=${shellQuote(input.etcDir)}`,
        "exec 9>/run/gitlab-cluster-backup.lock",
        "flock -n 9 || { log 'another backup is running'; exit 1; }",
        "log \"gitlab-backup create in $container\"",
        "docker exec \"$container\" gitlab-backup create CRON=1",
        "# Ids start with the epoch, so the last archive in glob order is the newest.",
        "archive=''",
        `for f in "$backups"/*${GITLAB_ARCHIVE_SUFFIX}; do [ -e "$f" ] && archive=$f; done`,
        "[ -n \"$archive\" ] || { log \"no archive appeared in $backups\"; exit 1; }",
        "archive=${archive##*/}",
        `id=\${archive%${GITLAB_ARCHIVE_SUFFIX}}`,
        "log \"backup $id created\"",
        "umask 077",
        `tar -cf "$backups/\${id}${ETC_ARCHIVE_SUFFIX}.tmp" -C "$etc" ${SHARED_IDENTITY_FILES.join(" ")} gitlab.rb`,
        `chmod 0600 "$backups/\${id}${ETC_ARCHIVE_SUFFIX}.tmp"`,
        `mv -f "$backups/\${id}${ETC_ARCHIVE_SUFFIX}.tmp" "$backups/\${id}${ETC_ARCHIVE_SUFFIX}"`,
        `log "wrote $backups/\${id}${ETC_ARCHIVE_SUFFIX}"`,
        `# GitLab prunes its own archives (backup_keep_time); ours follow the same age.`,
        `find "$backups" -maxdepth 1 -name '*${ETC_ARCHIVE_SUFFIX}' -mtime +${input.keepDays} -print -delete`,
    ];
    if (input.target) {
        const t = input.target;
        const known = t.knownHostsLine
            ? [`printf '%s\\n' ${shellQuote(t.knownHostsLine.trim())} > /root/.ssh/gitlab-cluster-backup.known_hosts`, "strict=yes"]
            : ["strict=accept-new"];
        lines.push(
            ...known,
            `remote() { ssh -i ${BACKUP_KEY_PATH} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=$strict -o UserKnownHostsFile=/root/.ssh/gitlab-cluster-backup.known_hosts -p ${t.port} ${shellQuote(`${t.user}@${t.address}`)} "$@"; }`,
            `for f in "\${id}${GITLAB_ARCHIVE_SUFFIX}" "\${id}${ETC_ARCHIVE_SUFFIX}"; do`,
            `    log "copying $f to ${t.address}:${t.path}"`,
            `    remote put "$f" < "$backups/$f"`,
            "done",
            `remote prune ${input.keepDays}`,
        );
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

/**
 * The forced command on the off-host target: the backup key may only `put <name>` (stdin to a
 * file in the directory) and `prune <days>` there.
 */
export function renderReceiverScript(directory: string): string {
    return `#!/bin/sh
# Managed by gitlab-cluster (Pulumi): forced command of the backup key.
set -eu
dir=${shellQuote(directory)}
umask 077
mkdir -p "$dir"
# shellcheck disable=SC2086 # the client's words, split on purpose and checked below
set -- $SSH_ORIGINAL_COMMAND
case "\${1:-}" in
    put)
        name="\${2:-}"
        case "$name" in
            *_gitlab_backup.tar|*_gitlab_etc.tar) ;;
            *) echo "refused: not a backup archive name" >&2; exit 1 ;;
        esac
        case "$name" in */*|.*) echo "refused: bad name" >&2; exit 1 ;; esac
        cat > "$dir/.$name.part"
        chmod 0600 "$dir/.$name.part"
        mv -f "$dir/.$name.part" "$dir/$name"
        echo "stored $name"
        ;;
    prune)
        days="\${2:-}"
        case "$days" in ''|*[!0-9]*) echo "refused: prune needs a number of days" >&2; exit 1 ;; esac
        find "$dir" -maxdepth 1 -type f \\( -name '*_gitlab_backup.tar' -o -name '*_gitlab_etc.tar' \\) -mtime +"$days" -print -delete
        ;;
    *)
        echo "refused: only 'put <name>' and 'prune <days>' are allowed" >&2
        exit 1
        ;;
esac
`;
}

/** The authorized_keys line that ties the backup key to the receiver. */
export function renderAuthorizedKeyLine(publicKey: string): string {
    const key = publicKey.trim().split(/\s+/).slice(0, 2).join(" ");
    if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(key)) throw new Error(`not an ed25519 public key: ${JSON.stringify(publicKey.slice(0, 40))}`);
    return `restrict,command="${RECEIVER_SCRIPT_PATH}" ${key} gitlab-cluster-backup`;
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
