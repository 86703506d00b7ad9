// Day-2 operations as plans of steps: each step runs one script on one host. Pure: the plans
// are data, executed by execute() through a Runner (SSH, local shell, or a fake in tests).
import type { OpsInventory } from "../../components/cluster";
import {
    BACKUP_SCRIPT_PATH, ETC_ARCHIVE_SUFFIX, etcBackupsDirOf, GITLAB_ARCHIVE_SUFFIX, handArchiveToGitScript, renderBackupScript,
} from "../../components/render/backup";
import { shellQuote } from "../../components/render/quote";
import { readIdentityScript, waitForReadinessScript, writeIdentityScript } from "../../components/render/scripts";

export type HostRef = { readonly name: string; readonly address: string; readonly ssh: OpsInventory["nodes"][number]["ssh"] };

export interface Step {
    /** Printed before the step runs. */
    readonly title: string;
    readonly host: HostRef;
    readonly script: string;
    /** stdin from an earlier step's stdout, by that step's key. */
    readonly stdinFrom?: string;
    /** Other steps refer to this step's stdout by this key. */
    readonly key?: string;
    /** What the cluster looks like if this step fails. */
    readonly stateIfFailed: string;
}

export interface RunResult { readonly code: number; readonly stdout: string; readonly stderr: string }

export interface Runner {
    run(host: HostRef, script: string, stdin?: string): Promise<RunResult>;
}

export class OpsError extends Error {
    constructor(message: string, readonly exitCode: number) {
        super(message);
        this.name = "OpsError";
    }
}

/** A backup id (`<epoch>_<yyyy_mm_dd>_<version>`) and what it says. */
export interface BackupId { readonly id: string; readonly epoch: number; readonly version: string }

export function parseBackupId(id: string): BackupId {
    const m = /^(\d+)_(\d{4}_\d{2}_\d{2})_(\d+\.\d+\.\d+(?:-(?:ce|ee))?)$/.exec(id);
    if (!m) throw new OpsError(`"${id}" is not a GitLab backup id (like 1700000000_2023_11_14_16.5.1-ce)`, 2);
    return { id, epoch: Number(m[1]), version: m[3]! };
}

/** The GitLab version and edition an image runs, from its tag (`gitlab/gitlab-ce:18.4.1-ce.0` -> 18.4.1-ce). */
export function imageVersion(image: string): string {
    const m = /gitlab-(ce|ee)[^:]*:(\d+\.\d+\.\d+)/.exec(image);
    if (!m) throw new OpsError(`cannot tell the GitLab version of image "${image}"`, 2);
    return `${m[2]}-${m[1]}`;
}

/** What the running container says it is: VERSION plus the edition. */
export function runningVersionScript(container: string): string {
    const c = shellQuote(container);
    return `v=$(docker exec ${c} cat /opt/gitlab/embedded/service/gitlab-rails/VERSION)
if docker exec ${c} test -d /opt/gitlab/embedded/service/gitlab-rails/ee; then echo "$v-ee"; else echo "$v-ce"; fi`;
}

function node(inv: OpsInventory, name: string) {
    const n = inv.nodes.find(x => x.name === name);
    if (!n) throw new OpsError(`node "${name}" is not in the stack's outputs (${inv.nodes.map(x => x.name).join(", ")})`, 2);
    return n;
}

export function backupNode(inv: OpsInventory) {
    return node(inv, inv.backupNode);
}

/** The backup node's root-only directory of /etc/gitlab archives (and of off-host copies put back for a restore). */
export function etcBackupsDir(inv: OpsInventory): string {
    return etcBackupsDirOf(backupNode(inv).dataRoot);
}

/** Runs the installed backup script, or the same script inline when no schedule installed it. */
export function backupPlan(inv: OpsInventory, timeoutSeconds = 7200): Step[] {
    const n = backupNode(inv);
    const inline = renderBackupScript({
        container: n.container, backupsDir: inv.backupsDir, etcBackupsDir: etcBackupsDir(inv), etcDir: `${n.dataRoot}/config`, keepDays: 3650,
    });
    return [{
        title: `backup on ${n.name} (${n.container})`,
        host: n,
        script: `if [ -x ${BACKUP_SCRIPT_PATH} ]; then exec timeout ${timeoutSeconds} ${BACKUP_SCRIPT_PATH}; fi\n${inline}`,
        key: "backup",
        stateIfFailed: "nothing was changed; a partial archive may be left in the backups directory",
    }];
}

/** The id a backup run printed (`backup <id> done`). */
export function backupIdFromLog(log: string): string {
    const m = /backup (\S+) done\s*$/m.exec(log);
    if (!m) throw new OpsError("the backup ran but printed no backup id", 1);
    return m[1]!;
}

export interface ArchiveInfo { readonly id: string; readonly version: string; readonly bytes: number; readonly date: string; readonly etcArchive: boolean }

/**
 * Lists GitLab's archives in the backups directory, and the /etc/gitlab archives (and data
 * archives put back from off-host) in the root-only directory; symlinks are not archives.
 */
export function listBackupsScript(backupsDir: string, etcDir: string): string {
    const list = (dir: string, patterns: string) =>
        `(cd ${shellQuote(dir)} 2>/dev/null && for f in ${patterns}; do [ -f "$f" ] && [ ! -L "$f" ] && stat -c '%n %s %Y' "$f"; done)`;
    return `${list(backupsDir, `*${GITLAB_ARCHIVE_SUFFIX}`)}\n${list(etcDir, `*${GITLAB_ARCHIVE_SUFFIX} *${ETC_ARCHIVE_SUFFIX}`)}\ntrue`;
}

/** Parses `name bytes mtime` lines into archives, newest first (an archive listed twice counts once). */
export function parseBackupList(text: string): ArchiveInfo[] {
    const seen = new Set<string>();
    const rows = text.split("\n").map(l => l.trim().split(" ")).filter(p => p.length === 3)
        .filter(([n]) => !seen.has(n!) && seen.add(n!));
    const etc = new Set(rows.filter(([n]) => n!.endsWith(ETC_ARCHIVE_SUFFIX)).map(([n]) => n!.slice(0, -ETC_ARCHIVE_SUFFIX.length)));
    return rows.filter(([n]) => n!.endsWith(GITLAB_ARCHIVE_SUFFIX)).map(([n, size, mtime]) => {
        const id = n!.slice(0, -GITLAB_ARCHIVE_SUFFIX.length);
        let version = "?";
        try { version = parseBackupId(id).version; } catch { /* a foreign file name: listed, version unknown */ }
        return { id, version, bytes: Number(size), date: new Date(Number(mtime) * 1000).toISOString(), etcArchive: etc.has(id) };
    }).sort((a, b) => b.id.localeCompare(a.id));
}

/** GitLab's integrity checks of the files a restore brings back, against the checksums in the database. */
export const INTEGRITY_CHECKS = ["gitlab:artifacts:check", "gitlab:lfs:check", "gitlab:uploads:check"] as const;

/**
 * Runs each integrity check with VERBOSE=1 (the failing files are listed) and fails when one
 * reports a failure: the tasks print "- <ids>: Failures: <n>" per batch and exit 0 either way.
 */
export function integrityCheckScript(container: string): string {
    const c = shellQuote(container);
    return `status=0
for task in ${INTEGRITY_CHECKS.join(" ")}; do
    out=$(docker exec -e VERBOSE=1 ${c} gitlab-rake "$task") || { printf '%s\n' "$out"; echo "$task did not run to the end" >&2; status=1; continue; }
    printf '%s\n' "$out"
    if printf '%s\n' "$out" | grep -Eq 'Failures: [1-9]'; then echo "$task: files missing or not matching their checksum (listed above)" >&2; status=1; fi
done
exit "$status"`;
}

export interface RestoreOptions {
    /** After every node is ready, GitLab's integrity checks of artifacts, LFS objects and uploads. */
    readonly verifyIntegrity?: boolean;
}

/**
 * GitLab's documented restore, on the backup node, with the other nodes stopped:
 * gitlab-secrets.json and the SSH host keys first (gitlab.rb stays the program's), reconfigure,
 * stop puma and sidekiq, restore, restart, check; then the other nodes get the restored secrets
 * and start one by one; optionally, GitLab's integrity checks last. The /etc/gitlab archive comes
 * from the root-only directory; the data archive is handed to git without root writing or
 * chowning anything git can redirect.
 */
export function restorePlan(inv: OpsInventory, backupId: string, readinessTimeoutSeconds = 1200, options: RestoreOptions = {}): Step[] {
    const id = parseBackupId(backupId).id;
    const n = backupNode(inv);
    const c = shellQuote(n.container);
    const others = inv.nodes.filter(x => x.name !== n.name);
    const etcDir = etcBackupsDir(inv);
    const etcArchive = `${etcDir}/${id}${ETC_ARCHIVE_SUFFIX}`;
    const dataName = `${id}${GITLAB_ARCHIVE_SUFFIX}`;
    const stoppedOthers = others.length ? `${others.map(o => o.name).join(", ")} stopped` : "no other nodes";
    const regular = (p: string) => `{ [ -f ${shellQuote(p)} ] && [ ! -L ${shellQuote(p)} ]; }`;
    const steps: Step[] = [{
        title: `check both archives of ${id} exist on ${n.name}`,
        host: n,
        script: `${regular(`${inv.backupsDir}/${dataName}`)} || ${regular(`${etcDir}/${dataName}`)} || { echo "missing ${dataName} in ${inv.backupsDir} (or, put back from off-host, in ${etcDir})" >&2; exit 1; }
${regular(etcArchive)} || { echo "missing ${id}${ETC_ARCHIVE_SUFFIX} in ${etcDir}: without it the restore cannot decrypt secrets" >&2; exit 1; }
echo ok`,
        stateIfFailed: "nothing was changed",
    }, {
        title: `hand ${dataName} to git on ${n.name}`,
        host: n,
        script: handArchiveToGitScript({ container: n.container, id, etcBackupsDir: etcDir }),
        stateIfFailed: `nothing was changed but, at most, git's copy of ${dataName} in ${inv.backupsDir}`,
    }];
    for (const o of others) {
        steps.push({ title: `stop ${o.name}`, host: o, script: `docker stop ${shellQuote(o.container)}`, stateIfFailed: `some other nodes may be stopped; start them with: docker start ${o.container}` });
    }
    steps.push(
        {
            title: `restore gitlab-secrets.json and the SSH host keys on ${n.name} (gitlab.rb stays the program's) and reconfigure`,
            host: n,
            script: `${writeIdentityScript(`${n.dataRoot}/config`, { archive: etcArchive })}docker exec ${c} gitlab-ctl reconfigure\n`,
            stateIfFailed: `${stoppedOthers}; ${n.name} may have a partly restored /etc/gitlab`,
        },
        {
            title: `stop puma and sidekiq on ${n.name}`,
            host: n,
            script: `docker exec ${c} gitlab-ctl stop puma\ndocker exec ${c} gitlab-ctl stop sidekiq\ndocker exec ${c} gitlab-ctl status || true`,
            stateIfFailed: `${stoppedOthers}; ${n.name} runs with /etc/gitlab restored, database not yet restored`,
        },
        {
            title: `gitlab-backup restore BACKUP=${id} on ${n.name}`,
            host: n,
            script: `docker exec -e GITLAB_ASSUME_YES=1 ${c} gitlab-backup restore BACKUP=${id}`,
            stateIfFailed: `${stoppedOthers}; puma and sidekiq stopped on ${n.name}; the database and repositories may be partly restored: run the restore again`,
        },
        {
            title: `restart ${n.name} and wait for /-/readiness`,
            host: n,
            script: `docker restart ${c}\n${waitForReadinessScript(n.container, readinessTimeoutSeconds)}`,
            stateIfFailed: `${stoppedOthers}; data restored on ${n.name}, which is not ready: see docker logs ${n.container}`,
        },
        {
            title: `gitlab-rake gitlab:check SANITIZE=true and gitlab:doctor:secrets on ${n.name}`,
            host: n,
            script: `docker exec ${c} gitlab-rake gitlab:check SANITIZE=true\ndocker exec ${c} gitlab-rake gitlab:doctor:secrets`,
            stateIfFailed: `${stoppedOthers}; ${n.name} serves the restored data but a check failed: read its output before starting the others`,
        },
    );
    if (others.length > 0) {
        steps.push({
            title: `read the restored secrets and host keys on ${n.name}`, host: n, key: "identity",
            script: readIdentityScript(`${n.dataRoot}/config`), stateIfFailed: `${stoppedOthers}; ${n.name} is restored and serving`,
        });
    }
    for (const o of others) {
        steps.push(
            { title: `write the restored secrets and host keys on ${o.name}`, host: o, stdinFrom: "identity", script: writeIdentityScript(`${o.dataRoot}/config`), stateIfFailed: `${o.name} and the nodes after it are stopped; ${n.name} is restored and serving` },
            { title: `start ${o.name} and wait for /-/readiness`, host: o, script: `docker start ${shellQuote(o.container)}\n${waitForReadinessScript(o.container, readinessTimeoutSeconds)}`, stateIfFailed: `${o.name} is not ready and the nodes after it are stopped; ${n.name} is restored and serving` },
        );
    }
    if (options.verifyIntegrity) {
        // Last: the checks read every file, and only read; the cluster serves meanwhile.
        steps.push({
            title: `integrity checks on ${n.name}: gitlab-rake ${INTEGRITY_CHECKS.join(", ")}`,
            host: n,
            script: integrityCheckScript(n.container),
            stateIfFailed: "every node is restored and serving; a check found artifacts, LFS objects or uploads missing or corrupt (listed above), or did not finish",
        });
    }
    return steps;
}

export function cacheClearPlan(inv: OpsInventory): Step[] {
    const n = inv.nodes.find(x => x.migrationNode) ?? inv.nodes[0]!;
    return [{ title: `gitlab-rake cache:clear on ${n.name}`, host: n, script: `docker exec ${shellQuote(n.container)} gitlab-rake cache:clear`, stateIfFailed: "the cache may be partly cleared; it is safe to run again" }];
}

/** Runs steps in order, printing each; stops at the first failure and says what state the cluster is in. */
export async function execute(steps: readonly Step[], runner: Runner, log: (line: string) => void): Promise<Map<string, string>> {
    const outputs = new Map<string, string>();
    for (const [i, step] of steps.entries()) {
        log(`[${i + 1}/${steps.length}] ${step.title}`);
        const stdin = step.stdinFrom !== undefined ? outputs.get(step.stdinFrom) : undefined;
        const result = await runner.run(step.host, step.script, stdin);
        if (step.key === undefined || step.key !== "identity") {
            for (const line of result.stdout.split("\n").filter(Boolean)) log(`    ${line}`);
        }
        if (result.code !== 0) {
            for (const line of result.stderr.split("\n").filter(Boolean)) log(`    ! ${line}`);
            throw new OpsError(`step ${i + 1} failed: ${step.title} (exit ${result.code})\ncluster state: ${step.stateIfFailed}`, 1);
        }
        if (step.key !== undefined) outputs.set(step.key, result.stdout);
    }
    return outputs;
}

/** Refuses a restore onto another GitLab version or edition, as GitLab requires. */
export function checkRestoreVersion(backupVersion: string, runningVersion: string): void {
    const [bBase, bEdition] = backupVersion.split("-");
    const [rBase, rEdition] = runningVersion.trim().split("-");
    if (bBase !== rBase || (bEdition !== undefined && rEdition !== undefined && bEdition !== rEdition)) {
        throw new OpsError(`refused: the backup was made by GitLab ${backupVersion} and the cluster runs ${runningVersion.trim()}; ` +
            "GitLab restores only onto the same version and edition (set gitlab.image to that release, pulumi up, then restore)", 3);
    }
}
