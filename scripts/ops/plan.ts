// Day-2 operations as plans of steps: each step runs one script on one host. Pure: the plans
// are data, executed by execute() through a Runner (SSH, local shell, or a fake in tests).
import type { OpsInventory } from "../../components/cluster";
import {
    BACKUP_SCRIPT_PATH, ETC_ARCHIVE_SUFFIX, etcBackupsDirOf, GITLAB_ARCHIVE_SUFFIX, handArchiveToGitScript, renderBackupScript,
} from "../../components/render/backup";
import { shellQuote } from "../../components/render/quote";
import { GITLAB_RAILS_DIR, GITLAB_VERSION_FILE } from "../../components/render/upgrade";
import { readIdentityScript, waitForReadinessScript, writeIdentityScript } from "../../components/render/scripts";
import { CliError } from "../cli";

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

export interface RunResult {
    readonly code: number; readonly stdout: string; readonly stderr: string;
    /** Set when the script never ran because the host could not be reached (ssh's own failure): what ssh said. */
    readonly unreachable?: string;
}

/** Output of a running script as it comes (a chunk of stdout or stderr). */
export type OutputSink = (stream: "stdout" | "stderr", chunk: string) => void;

export interface Runner {
    /** `onOutput`, when given, receives the output as it comes; the result still holds all of it. */
    run(host: HostRef, script: string, stdin?: string, onOutput?: OutputSink): Promise<RunResult>;
}

/** What to tell the user when a host could not be reached. */
export function unreachableMessage(host: HostRef, why: string): string {
    return `could not reach ${host.name} (${host.ssh.user}@${host.address}, port ${host.ssh.port}) over SSH: ${why}`;
}

/** An ops failure: the CLI prints its message (no stack) and exits with its code. */
export class OpsError extends CliError {
    constructor(message: string, exitCode: number) {
        super(message, exitCode);
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
    // A stopped or missing container is said as such (exit 4), never read as an empty version.
    return `state=$(docker inspect -f '{{.State.Status}}' ${c} 2>/dev/null) || { echo "container ${container} does not exist on this host: pulumi up first" >&2; exit 4; }
[ "$state" = running ] || { echo "container ${container} is $state, not running: start it (docker start ${container}, or pulumi up) and run the restore again" >&2; exit 4; }
v=$(docker exec ${c} cat ${GITLAB_VERSION_FILE}) || { echo "could not read ${GITLAB_VERSION_FILE} in ${container}" >&2; exit 1; }
if docker exec ${c} test -d ${GITLAB_RAILS_DIR}/ee; then echo "$v-ee"; else echo "$v-ce"; fi`;
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

export interface ExecuteOptions {
    /** A "still running" line after this long without output (default 30 s). */
    readonly heartbeatMs?: number;
}

/** Splits streamed chunks into lines; `flush` gives the last, unterminated one. */
function lineSplitter(emit: (line: string) => void): { push(chunk: string): void; flush(): void } {
    let pending = "";
    return {
        push(chunk) {
            const parts = (pending + chunk).split("\n");
            pending = parts.pop() ?? "";
            for (const l of parts) if (l !== "") emit(l);
        },
        flush() { if (pending !== "") emit(pending); pending = ""; },
    };
}

/**
 * Runs steps in order, printing each and streaming its output as it comes (the identity bundle
 * excepted: it holds secrets), with a heartbeat line while a step is quiet; stops at the first
 * failure and says what state the cluster is in.
 */
export async function execute(steps: readonly Step[], runner: Runner, log: (line: string) => void, options: ExecuteOptions = {}): Promise<Map<string, string>> {
    const outputs = new Map<string, string>();
    const heartbeatMs = options.heartbeatMs ?? 30_000;
    for (const [i, step] of steps.entries()) {
        log(`[${i + 1}/${steps.length}] ${step.title}`);
        const stdin = step.stdinFrom !== undefined ? outputs.get(step.stdinFrom) : undefined;
        const quiet = step.key === "identity";
        let streamed = false;
        const started = Date.now();
        let lastOutput = started;
        const out = lineSplitter(l => log(`    ${l}`)), err = lineSplitter(l => log(`    ! ${l}`));
        const heartbeat = setInterval(() => {
            if (Date.now() - lastOutput < heartbeatMs) return;
            const s = Math.round((Date.now() - started) / 1000);
            log(`    ... still running: ${step.title} (${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s)`);
            lastOutput = Date.now();
        }, Math.max(10, Math.min(heartbeatMs, 5_000)));
        let result: RunResult;
        try {
            result = await runner.run(step.host, step.script, stdin, (stream, chunk) => {
                lastOutput = Date.now();
                if (quiet) return;
                streamed = true;
                (stream === "stdout" ? out : err).push(chunk);
            });
        } catch (e) {
            throw new OpsError(`step ${i + 1} failed: ${step.title} (${e instanceof Error ? e.message : String(e)})\ncluster state: ${step.stateIfFailed}`, 1);
        } finally {
            clearInterval(heartbeat);
        }
        out.flush();
        err.flush();
        if (!streamed && !quiet) {
            for (const line of result.stdout.split("\n").filter(Boolean)) log(`    ${line}`);
        }
        if (result.unreachable !== undefined) {
            throw new OpsError(`step ${i + 1} failed: ${step.title}: ${unreachableMessage(step.host, result.unreachable)}\ncluster state: ${step.stateIfFailed}`, 1);
        }
        if (result.code !== 0) {
            if (!streamed) for (const line of result.stderr.split("\n").filter(Boolean)) log(`    ! ${line}`);
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

// ---- preflight: what each host needs before the first `pulumi up` (README, "Checklist")

/** One port the stack publishes on a host, and the container of ours that may already hold it. */
export interface PublishedPort { readonly port: number; readonly what: string; readonly container: string }

export interface PreflightHost {
    readonly host: HostRef;
    /** The roles this host plays (for the report). */
    readonly roles: readonly string[];
    readonly sudo: boolean;
    readonly ports: readonly PublishedPort[];
    /** Directories the stack keeps data in on this host, with the free space each needs (GiB). */
    readonly dataRoots: readonly { readonly path: string; readonly minFreeGiB: number }[];
}

/** The configuration preflight reads (a parsed stack config's fields). */
export interface PreflightConfig {
    readonly hosts: Readonly<Record<string, { readonly name: string; readonly address: string; readonly local: boolean; readonly sudo: boolean; readonly ssh: { readonly user: string; readonly port: number } }>>;
    readonly roles: { readonly redis: string; readonly postgres: string; readonly gitlab: readonly string[]; readonly nfsServer?: string; readonly gitaly?: string; readonly loadBalancer: string };
    readonly gitlab: { readonly dataRoot: string; readonly nodeSshPort: number };
    readonly gitaly: { readonly port: number; readonly dataRoot: string };
    readonly postgres: { readonly port: number; readonly dataRoot: string };
    readonly redis: { readonly port: number; readonly dataRoot: string };
    readonly loadBalancer: { readonly httpPort: number; readonly httpsPort: number; readonly sshPort: number; readonly tls?: unknown };
}

/** Free space asked of a GitLab host (the Omnibus image alone is ~3 GB) and of the others. */
export const PREFLIGHT_MIN_FREE_GIB = { gitlab: 20, other: 5 } as const;

/** What to check on each host of a stack: its ports, its data directories, its roles. */
export function preflightPlan(cfg: PreflightConfig, clusterName = "gitlab"): PreflightHost[] {
    const byHost = new Map<string, { roles: string[]; ports: PublishedPort[]; dataRoots: { path: string; minFreeGiB: number }[] }>();
    const at = (h: string) => {
        let e = byHost.get(h);
        if (!e) byHost.set(h, e = { roles: [], ports: [], dataRoots: [] });
        return e;
    };
    for (const g of cfg.roles.gitlab) {
        const e = at(g);
        e.roles.push("gitlab");
        const container = `${clusterName}-gitlab-${g}`;
        e.ports.push({ port: 80, what: "GitLab HTTP (from the balancer)", container }, { port: cfg.gitlab.nodeSshPort, what: "GitLab SSH (gitlab.nodeSshPort)", container });
        e.dataRoots.push({ path: cfg.gitlab.dataRoot, minFreeGiB: PREFLIGHT_MIN_FREE_GIB.gitlab });
    }
    const pg = at(cfg.roles.postgres);
    pg.roles.push("postgres");
    pg.ports.push({ port: cfg.postgres.port, what: "PostgreSQL (postgres.port)", container: `${clusterName}-postgres` });
    pg.dataRoots.push({ path: cfg.postgres.dataRoot, minFreeGiB: PREFLIGHT_MIN_FREE_GIB.other });
    const redis = at(cfg.roles.redis);
    redis.roles.push("redis");
    redis.ports.push({ port: cfg.redis.port, what: "Redis (redis.port)", container: `${clusterName}-redis` });
    redis.dataRoots.push({ path: cfg.redis.dataRoot, minFreeGiB: PREFLIGHT_MIN_FREE_GIB.other });
    const lb = at(cfg.roles.loadBalancer);
    lb.roles.push("loadBalancer");
    const lbContainer = `${clusterName}-lb`;
    lb.ports.push({ port: cfg.loadBalancer.httpPort, what: "balancer HTTP (loadBalancer.httpPort)", container: lbContainer });
    if (cfg.loadBalancer.tls !== undefined) lb.ports.push({ port: cfg.loadBalancer.httpsPort, what: "balancer HTTPS (loadBalancer.httpsPort)", container: lbContainer });
    lb.ports.push({ port: cfg.loadBalancer.sshPort, what: "balancer git over SSH (loadBalancer.sshPort)", container: lbContainer });
    if (cfg.roles.gitaly !== undefined) {
        const gitaly = at(cfg.roles.gitaly);
        gitaly.roles.push("gitaly");
        gitaly.ports.push({ port: cfg.gitaly.port, what: "Gitaly (gitaly.port, from the GitLab hosts)", container: `${clusterName}-gitaly` });
        gitaly.dataRoots.push({ path: cfg.gitaly.dataRoot, minFreeGiB: PREFLIGHT_MIN_FREE_GIB.gitlab });
    }
    if (cfg.roles.nfsServer !== undefined) at(cfg.roles.nfsServer).roles.push("nfsServer");
    return [...byHost].map(([name, e]) => {
        const h = cfg.hosts[name];
        if (!h) throw new OpsError(`roles name host "${name}", which is not in hosts`, 2);
        const seen = new Set<string>();
        return {
            host: { name, address: h.address, ssh: { user: h.ssh.user, port: h.ssh.port, local: h.local } },
            roles: e.roles, sudo: h.sudo,
            ports: e.ports.filter(p => !seen.has(`port ${p.port}`) && seen.add(`port ${p.port}`)),
            dataRoots: e.dataRoots.filter(d => !seen.has(`dir ${d.path}`) && seen.add(`dir ${d.path}`)),
        };
    });
}

/**
 * The checks on one host, as a POSIX sh script run as the SSH user: one line per check,
 * `ok <check>: <detail>` or `missing <check>: <what to do>`. Always exits 0: the lines say it all.
 */
export function preflightScript(h: PreflightHost): string {
    // A storage host that only exports NFS runs no container.
    const needsDocker = h.roles.some(r => r !== "nfsServer");
    const lines = [
        "say() { printf '%s %s: %s\\n' \"$1\" \"$2\" \"$3\"; }",
        "user=$(id -un)",
    ];
    // The Docker provider runs `docker` over SSH as this user: sudo does not help it.
    if (needsDocker) lines.push(
        `if v=$(docker version --format '{{.Server.Version}}' 2>/dev/null); then say ok docker "Docker $v, reachable as $user"; ` +
        `elif command -v docker >/dev/null 2>&1; then say missing docker "docker is installed but its daemon is not reachable as $user: add $user to the docker group (sudo usermod -aG docker $user, then log in again), or connect as root; is the daemon running (systemctl status docker)?"; ` +
        `else say missing docker "docker is not installed: install Docker Engine (https://docs.docker.com/engine/install/)"; fi`);
    lines.push(
        "if command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || [ -x /sbin/iptables ]; then say ok iptables present; " +
        "else say missing iptables \"iptables is not installed: the host firewalls are iptables rules (apt-get install iptables, or dnf install iptables)\"; fi",
        "if [ -d /run/systemd/system ]; then say ok systemd running; else say missing systemd \"systemd is not running: the firewall rules are restored at boot by a systemd unit\"; fi",
        "if command -v timedatectl >/dev/null 2>&1; then s=$(timedatectl show -p NTPSynchronized --value 2>/dev/null); " +
        "if [ \"$s\" = yes ]; then say ok time-sync \"clock synchronized\"; else say missing time-sync \"clock not synchronized (timedatectl: NTPSynchronized=$s): enable NTP (timedatectl set-ntp true, or chrony)\"; fi; " +
        "else say missing time-sync \"cannot tell whether the clock is synchronized (no timedatectl): check NTP or chrony\"; fi",
    );
    if (h.sudo) {
        lines.push("if sudo -n true 2>/dev/null; then say ok sudo \"passwordless sudo for $user\"; else say missing sudo \"hosts.<name>.sudo is set but sudo -n fails for $user: allow it passwordless sudo (a file in /etc/sudoers.d)\"; fi");
    }
    for (const d of h.dataRoots) {
        const q = shellQuote(d.path);
        // The nearest directory that exists: the data root itself is created by the first deploy.
        lines.push(`d=${q}; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; ` +
            `free=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}'); ` +
            `if [ -z "$free" ]; then say missing disk "cannot read the free space under ${d.path}"; ` +
            `elif [ "$free" -ge ${d.minFreeGiB} ]; then say ok disk "${d.path}: $free GiB free (on $d)"; ` +
            `else say missing disk "${d.path}: only $free GiB free on $d, ${d.minFreeGiB} GiB wanted: free space or put the data root elsewhere"; fi`);
    }
    for (const p of h.ports) {
        const c = shellQuote(p.container);
        lines.push(`if command -v ss >/dev/null 2>&1; then used=$(ss -Hltn "( sport = :${p.port} )" 2>/dev/null | head -n 1); ` +
            `if [ -z "$used" ]; then say ok port-${p.port} "free (${p.what})"; ` +
            `elif docker ps --filter publish=${p.port} --format '{{.Names}}' 2>/dev/null | grep -qx ${c}; then say ok port-${p.port} "held by ${p.container}, this stack's own (${p.what})"; ` +
            `else say missing port-${p.port} "port ${p.port} is in use by another program, and the stack publishes ${p.what} on it: stop that program or change the port (ss -ltnp 'sport = :${p.port}')"; fi; ` +
            `else say missing port-${p.port} "cannot check whether port ${p.port} is free (no ss): install iproute2"; fi`);
    }
    lines.push("exit 0");
    return `${lines.join("\n")}\n`;
}

export interface PreflightResult { readonly host: string; readonly check: string; readonly ok: boolean; readonly detail: string }

/** Parses the lines preflightScript prints; a host with no line at all is reported as such. */
export function parsePreflight(host: string, output: string): PreflightResult[] {
    return output.split("\n").flatMap(l => {
        const m = /^(ok|missing) ([a-z0-9-]+): (.*)$/.exec(l.trim());
        return m ? [{ host, check: m[2]!, ok: m[1] === "ok", detail: m[3]! }] : [];
    });
}

/** Runs the checks on every host; returns every result (a host SSH cannot reach is one `ssh` result). */
export async function runPreflight(hosts: readonly PreflightHost[], runner: Runner): Promise<PreflightResult[]> {
    const results: PreflightResult[] = [];
    for (const h of hosts) {
        const r = await runner.run(h.host, preflightScript(h));
        if (r.unreachable !== undefined) {
            results.push({ host: h.host.name, check: "ssh", ok: false, detail: `${unreachableMessage(h.host, r.unreachable)}: check the address, hosts.${h.host.name}.ssh (user, port, hostKey) and that your key is in the agent (ssh-add -l)` });
            continue;
        }
        const parsed = parsePreflight(h.host.name, r.stdout);
        if (r.code !== 0 || parsed.length === 0) {
            results.push({ host: h.host.name, check: "ssh", ok: false, detail: `the checks did not run (exit ${r.code}): ${r.stderr.trim().split("\n")[0] ?? ""}` });
            continue;
        }
        results.push({ host: h.host.name, check: "ssh", ok: true, detail: h.host.ssh.local ? "local host" : `${h.host.ssh.user}@${h.host.address}:${h.host.ssh.port}` }, ...parsed);
    }
    return results;
}
