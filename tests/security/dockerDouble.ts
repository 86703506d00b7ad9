// Test double for the docker CLI, shared by the backup and restore tests: the GitLab container
// is two host directories (its /var/opt/gitlab and /etc/gitlab) and its `git` user is uid 998,
// as in the Omnibus image. `gitlab-backup create` drops an archive the way GitLab does (as git,
// 0600) and then runs an optional hostile hook as git; `gitlab-backup restore` checks what
// GitLab checks; `gitlab-rake` answers with an optional hook (silence and success by default);
// any other command (sh, chown, test, ...) runs for real, as root or, with `-u git`, as uid 998,
// with the container's paths mapped to the directories. Every call is recorded. Everything the
// script under test does besides calling docker is real.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { OpsInventory } from "../../components/cluster";
import type { HostRef, RunResult, Runner } from "../../scripts/ops/plan";

export const GIT_UID = 998;
export const BACKUP_ID = "1700000000_2023_11_14_18.4.1-ce";

/** Runs `argv` as uid/gid 998 with no supplementary groups: the container's git user. */
export function asGit(argv: readonly string[]): string[] {
    return ["setpriv", `--reuid=${GIT_UID}`, `--regid=${GIT_UID}`, "--clear-groups", "--", ...argv];
}

/** `sh -c script` as git; throws with its stderr when it fails. */
export function shAsGit(script: string, env: Record<string, string> = {}): string {
    const [cmd, ...args] = asGit(["sh", "-c", script]);
    const r = spawnSync(cmd!, args, { encoding: "utf8", env: { ...process.env, ...env } });
    if (r.status !== 0) throw new Error(`as git: ${script}\n${r.stderr}`);
    return r.stdout;
}

/** What marks a secret in these tests: any file holding it must stay unreadable to git. */
export const SECRET = "SECRET-do-not-leak";

export interface NodeLayout {
    /** Stands for `<gitlab.dataRoot>`: root's, 0755. */
    readonly dataRoot: string;
    /** `<dataRoot>/config`, the container's /etc/gitlab: root's, with gitlab.rb, secrets and host keys. */
    readonly config: string;
    /** `<dataRoot>/data`, the container's /var/opt/gitlab. */
    readonly data: string;
    /** `<dataRoot>/data/backups`: git's, 0700, as Omnibus makes it. */
    readonly backups: string;
    /** A root-owned directory outside the node's tree, with a root-only file `victim` in it. */
    readonly outside: string;
    /** A directory of git's own, outside the node's tree, where git would collect what leaks. */
    readonly gitHome: string;
}

/** The files of /etc/gitlab a backup archives. */
export const ETC_FILES = ["gitlab.rb", "gitlab-secrets.json", "ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub", "ssh_host_ed25519_key",
    "ssh_host_ed25519_key.pub", "ssh_host_rsa_key", "ssh_host_rsa_key.pub"];

/** A GitLab node's host directories as the program lays them out, under `root` (made traversable for git). */
export function nodeLayout(root: string, label = "node"): NodeLayout {
    fs.chmodSync(root, 0o755);
    const dataRoot = path.join(root, "srv-gitlab");
    const config = path.join(dataRoot, "config");
    const data = path.join(dataRoot, "data");
    const backups = path.join(data, "backups");
    const outside = path.join(root, "outside");
    const gitHome = path.join(root, "git-home");
    for (const d of [dataRoot, config, data, backups, outside, gitHome]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    for (const f of ETC_FILES) {
        const content = f === "gitlab.rb" ? `# rendered gitlab.rb of ${label}: db_password ${SECRET}\n` : f.endsWith(".pub") ? `public ${label} ${f}\n` : `${SECRET} ${label} ${f}\n`;
        fs.writeFileSync(path.join(config, f), content, { mode: f.endsWith(".pub") ? 0o644 : 0o600 });
    }
    fs.chownSync(backups, GIT_UID, GIT_UID);
    fs.chmodSync(backups, 0o700);
    fs.chownSync(gitHome, GIT_UID, GIT_UID);
    fs.writeFileSync(path.join(outside, "victim"), "a host file only root may touch\n", { mode: 0o600 });
    return { dataRoot, config, data, backups, outside, gitHome };
}

export interface FileState { readonly mode: number; readonly uid: number; readonly content: string }

/** A file's mode, owner and content, to compare before and after. */
export function fileState(file: string): FileState {
    const st = fs.lstatSync(file);
    return { mode: st.mode, uid: st.uid, content: st.isFile() ? fs.readFileSync(file, "utf8") : `-> ${fs.readlinkSync(file)}` };
}

/** Files under `dir` that git can read and that hold the secret marker (found by grep, as git). */
export function secretsReadableByGit(dir: string): string[] {
    const [cmd, ...args] = asGit(["grep", "-rlsF", "--", SECRET, dir]);
    const r = spawnSync(cmd!, args, { encoding: "utf8" });
    return r.stdout.split("\n").filter(Boolean);
}

export interface DockerDouble {
    /** Put first on PATH. */
    readonly bin: string;
    /** The environment the double reads; pass it to the script under test. */
    readonly env: Record<string, string>;
    /** Every `docker ...` call so far, one line each. */
    calls(): string[];
}

export interface DockerDoubleInput {
    /** Host directory standing for the container's /var/opt/gitlab. */
    readonly dataDir: string;
    /** Host directory standing for the container's /etc/gitlab. */
    readonly etcDir: string;
    /** Shell run as git right after `gitlab-backup create` made its archive ($1: the id, $BACKUPS: the directory). */
    readonly onCreate?: string;
    /** Shell run as root for `gitlab-rake <args>` ("$@": the args, `-e` variables exported); its output and exit code are the task's. */
    readonly onRake?: string;
    readonly backupId?: string;
}

const SCRIPT = `#!/bin/sh
# docker CLI test double (tests/security/dockerDouble.ts)
set -eu
printf '%s\\n' "$*" >> "$DOUBLE_LOG"
[ "$1" = exec ] || exit 0
shift
user=root
while :; do
    case "$1" in
        -i|-t|-it) shift ;;
        -u) user=$2; shift 2 ;;
        -e) export "$2"; shift 2 ;;
        *) break ;;
    esac
done
shift # the container
n=$#
for a in "$@"; do
    case "$a" in
        /var/opt/gitlab|/var/opt/gitlab/*) a="$DOUBLE_DATA\${a#/var/opt/gitlab}" ;;
        /etc/gitlab|/etc/gitlab/*) a="$DOUBLE_ETC\${a#/etc/gitlab}" ;;
        git:git) a=${GIT_UID}:${GIT_UID} ;;
    esac
    set -- "$@" "$a"
done
shift "$n"
as_git() { setpriv --reuid=${GIT_UID} --regid=${GIT_UID} --clear-groups -- "$@"; }
case "$1 \${2:-}" in
    "gitlab-backup create")
        BACKUPS="$DOUBLE_DATA/backups" as_git sh -c 'umask 077; echo "gitlab data $1" > "$BACKUPS/$1_gitlab_backup.tar"' sh "$DOUBLE_ID"
        if [ -n "\${DOUBLE_ON_CREATE:-}" ]; then BACKUPS="$DOUBLE_DATA/backups" as_git sh -c "$DOUBLE_ON_CREATE" sh "$DOUBLE_ID"; fi
        exit 0 ;;
    "gitlab-backup restore")
        id=\${3#BACKUP=}
        f="$DOUBLE_DATA/backups/\${id}_gitlab_backup.tar"
        [ "\${GITLAB_ASSUME_YES:-}" = 1 ] || { echo "double: no GITLAB_ASSUME_YES" >&2; exit 3; }
        [ -f "$f" ] && [ ! -L "$f" ] && [ "$(stat -c %u "$f")" = ${GIT_UID} ] || { echo "double: $f is not git's regular file" >&2; exit 4; }
        as_git cat "$f" > "$DOUBLE_DATA/restored-from"
        exit 0 ;;
    gitlab-rake*)
        shift
        if [ -n "\${DOUBLE_ON_RAKE:-}" ]; then exec sh -c "$DOUBLE_ON_RAKE" sh "$@"; fi
        exit 0 ;;
    gitlab-ctl*|curl*) exit 0 ;;
esac
if [ "$user" = git ]; then exec setpriv --reuid=${GIT_UID} --regid=${GIT_UID} --clear-groups -- "$@"; fi
exec "$@"
`;

export function dockerDouble(root: string, input: DockerDoubleInput): DockerDouble {
    const bin = path.join(root, "docker-double-bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "docker"), SCRIPT, { mode: 0o755 });
    const log = path.join(bin, "calls.log");
    fs.writeFileSync(log, "");
    return {
        bin,
        env: {
            PATH: `${bin}:${process.env.PATH}`,
            DOUBLE_LOG: log, DOUBLE_DATA: input.dataDir, DOUBLE_ETC: input.etcDir,
            DOUBLE_ID: input.backupId ?? BACKUP_ID, DOUBLE_ON_CREATE: input.onCreate ?? "", DOUBLE_ON_RAKE: input.onRake ?? "",
        },
        calls: () => fs.readFileSync(log, "utf8").split("\n").filter(Boolean),
    };
}

/** Runs each ops step's script locally (sh -c) in `env`: the docker double first on PATH. */
export class LocalRunner implements Runner {
    constructor(private readonly env: Record<string, string>) {}
    async run(_host: HostRef, script: string, stdin?: string): Promise<RunResult> {
        const r = spawnSync("sh", ["-c", script], { encoding: "utf8", env: { ...process.env, ...this.env }, input: stdin ?? "" });
        return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
    }
}

/** The ops inventory of a one-node cluster laid out by nodeLayout, every host local. */
export function localInventory(node: NodeLayout): OpsInventory {
    const ssh = { user: "root", port: 22, local: true };
    return {
        gitlabImage: "gitlab/gitlab-ce:18.4.1-ce.0",
        nodes: [{ name: "app1", address: "127.0.0.1", container: "gitlab-gitlab-app1", dataRoot: node.dataRoot, migrationNode: true, ssh }],
        backupNode: "app1",
        backupsDir: node.backups,
        balancer: { name: "edge1", address: "127.0.0.1", container: "gitlab-lb", httpPort: 80, httpsPort: 443, tls: false, serverName: "x", ssh },
    };
}
