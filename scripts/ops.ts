// npm run ops -- <command> --stack <name> [--outputs FILE] [--yes] [--verify-integrity]
// Day-2 operations on a deployed cluster: status, backup, backups, restore <id>, cache-clear;
// and preflight, the hosts' prerequisites before the first deploy (from the stack file).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline/promises";
import { parseArgs } from "node:util";
import type { OpsInventory } from "../components/cluster";
import { ConfigError, CONFIG_NAMESPACE, loadClusterConfig } from "../components/config";
import { sshFilesDir } from "../components/sshFiles";
import { shellQuote } from "../components/render/quote";
import { printLine, runMain } from "./cli";
import {
    backupIdFromLog, backupNode, backupPlan, cacheClearPlan, checkRestoreVersion, etcBackupsDir, execute, listBackupsScript, OpsError,
    parseBackupId, parseBackupList, preflightPlan, restorePlan, runningVersionScript, runPreflight, unreachableMessage, type HostRef,
    type PreflightConfig, type Runner,
} from "./ops/plan";
import { ShellRunner } from "./ops/runner";
import { readUpgradeStatus, upgradeStatusReport } from "./ops/upgradeStatus";
import { readStackFile } from "./renderStack";

const USAGE = `usage: npm run ops -- <command> --stack <name> [options]

commands:
  preflight         before the first pulumi up: on each host of Pulumi.<stack>.yaml, over SSH as the
                    stack's user: Docker reachable as that user (docker group), iptables, systemd, time
                    sync, sudo where hosts.<name>.sudo, free disk under each data root, and each port the
                    stack publishes there free (or held by this stack's own container). Prints one line
                    per check and what to do about each one missing. Reads the stack file, not the outputs
  status            each node's container state and /-/readiness, directly and through the balancer
  backup            run a backup now (gitlab-backup create STRATEGY=copy, as the schedule does);
                    prints its id and both archives' paths
  backups           list backups: id, GitLab version, size, date, whether the /etc/gitlab archive is there
  restore <id>      GitLab's restore procedure on the backup node (stops the other nodes meanwhile);
                    restores gitlab-secrets.json and the SSH host keys, never gitlab.rb. An off-host
                    copy of the data archive goes into <dataRoot>/etc-backups beside the other one
                    (the /etc/gitlab archive from backup.secretsTarget's host, or backup.target's)
  cache-clear       gitlab-rake cache:clear on the migration node
  upgrade-status    each node's running GitLab release; on the migration (deploy) node the post-deployment
                    migrations not yet run and the batched background migrations not finished. Exit 0
                    when all run one release with nothing pending (ready for the next upgrade), else 1

options:
  --stack <name>    the Pulumi stack (its inventory read with: pulumi stack output ops --json)
  --outputs <file>  read the inventory from this file instead of the Pulumi CLI. It holds no secret:
                    save only the ops output, pulumi stack output ops --json --stack <name> > ops.json
                    (never --show-secrets: ops needs no secret)
  --yes             do not ask for confirmation (restore)
  --verify-integrity  restore: once every node is ready, also run gitlab-rake gitlab:artifacts:check,
                    gitlab:lfs:check and gitlab:uploads:check (VERBOSE=1) on the backup node; they
                    read every file, so they take a while. Exit 1 if one finds a file missing or
                    not matching its checksum (the files are listed); the cluster keeps serving
  -h, --help        this text

exit codes: 0 done, 1 a step failed or a host could not be reached over SSH (the message says which
and the cluster's state), 2 usage or inventory error (no such file, not JSON, not the ops inventory),
3 refused (version mismatch, not confirmed). preflight: 0 every check passed, 1 something is missing
(or a host could not be reached; each line says what to do), 2 usage or the stack file is invalid`;

const SAVE_INVENTORY = (stack: string) => `save it with: pulumi stack output ops --json --stack ${stack} > ops.json`;

/** Checks that `value` has the shape of the ops inventory; names the first thing that is wrong. */
export function checkInventory(value: unknown, source: string, stack: string): OpsInventory {
    const problems: string[] = [];
    const kind = (v: unknown) => (Array.isArray(v) ? "a list" : v === null ? "null" : typeof v);
    const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
    const need = (obj: Record<string, unknown>, at: string, fields: Record<string, "string" | "number" | "boolean">) => {
        for (const [k, t] of Object.entries(fields)) if (typeof obj[k] !== t) problems.push(`${at}.${k} is ${kind(obj[k])}, not a ${t}`);
    };
    const sshOf = (obj: Record<string, unknown>, at: string) => {
        if (!isObj(obj.ssh)) problems.push(`${at}.ssh is ${kind(obj.ssh)}, not a map`);
        else need(obj.ssh, `${at}.ssh`, { user: "string", port: "number", local: "boolean" });
    };
    if (!isObj(value)) problems.push(`ops is ${kind(value)}, not a map`);
    else {
        need(value, "ops", { gitlabImage: "string", backupNode: "string", backupsDir: "string" });
        if (!Array.isArray(value.nodes) || value.nodes.length === 0) problems.push(`ops.nodes is ${kind(value.nodes)}, not a list of nodes`);
        else value.nodes.forEach((n: unknown, i) => {
            if (!isObj(n)) { problems.push(`ops.nodes[${i}] is ${kind(n)}, not a map`); return; }
            need(n, `ops.nodes[${i}]`, { name: "string", address: "string", container: "string", dataRoot: "string", migrationNode: "boolean" });
            sshOf(n, `ops.nodes[${i}]`);
        });
        if (value.gitaly !== undefined) {
            if (!isObj(value.gitaly)) problems.push(`ops.gitaly is ${kind(value.gitaly)}, not a map`);
            else {
                need(value.gitaly, "ops.gitaly", { name: "string", address: "string", container: "string", port: "number" });
                sshOf(value.gitaly, "ops.gitaly");
            }
        }
        if (!isObj(value.balancer)) problems.push(`ops.balancer is ${kind(value.balancer)}, not a map`);
        else {
            need(value.balancer, "ops.balancer", { name: "string", address: "string", container: "string", httpPort: "number", httpsPort: "number", tls: "boolean", serverName: "string" });
            sshOf(value.balancer, "ops.balancer");
        }
    }
    if (problems.length > 0) {
        throw new OpsError(`${source} is not the ops inventory of a stack: ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""}; ${SAVE_INVENTORY(stack)}`, 2);
    }
    return value as unknown as OpsInventory;
}

/**
 * The stack's ops inventory: `pulumi stack output ops --json` (no secret in it), or a saved copy of
 * it. A saved copy of all the outputs (`{ "ops": ... }`) is read too, with a note: it may hold secrets.
 */
export function readInventory(stack: string, outputsFile: string | undefined, warn: (l: string) => void = l => console.error(l)): OpsInventory {
    let text: string;
    const source = outputsFile ?? `the "ops" output of stack "${stack}"`;
    if (outputsFile !== undefined) {
        try {
            text = fs.readFileSync(outputsFile, "utf8");
        } catch (err) {
            throw new OpsError(`cannot read --outputs ${outputsFile}: ${(err as Error).message}; ${SAVE_INVENTORY(stack)}`, 2);
        }
    } else {
        try {
            text = execFileSync("pulumi", ["stack", "output", "ops", "--json", "--stack", stack], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        } catch (err) {
            throw new OpsError(`could not read the "ops" output of stack "${stack}" with the Pulumi CLI (${(err as Error).message.split("\n")[0]}): ` +
                `check pulumi login and the stack name, run pulumi up with this version first, or pass --outputs FILE (${SAVE_INVENTORY(stack)})`, 2);
        }
    }
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch (err) {
        throw new OpsError(`${source} is not JSON (${(err as Error).message}); ${SAVE_INVENTORY(stack)}`, 2);
    }
    if (value !== null && typeof value === "object" && "ops" in value && !("nodes" in value)) {
        const keys = Object.keys(value).filter(k => k !== "ops");
        if (keys.length > 0) warn(`note: ${source} holds all of the stack's outputs (${keys.join(", ")}); ops reads only "ops". Keep no secrets in files: ${SAVE_INVENTORY(stack)}`);
        value = (value as { ops: unknown }).ops;
    }
    return checkInventory(value, source, stack);
}

function table(rows: string[][]): string {
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map(r => r[i]!.length)));
    return rows.map(r => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

async function status(inv: OpsInventory, runner: Runner, log: (l: string) => void): Promise<number> {
    const rows = [["node", "container", "state", "readiness"]];
    let bad = 0;
    for (const n of inv.nodes) {
        const c = shellQuote(n.container);
        const r = await runner.run(n, `docker inspect -f '{{.State.Status}}{{if .State.Health}}/{{.State.Health.Status}}{{end}}' ${c} 2>/dev/null || echo missing
docker exec ${c} curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1/-/readiness 2>/dev/null || echo unreachable`);
        const [state = "?", code = "?"] = r.stdout.trim().split("\n");
        if (r.unreachable !== undefined || code !== "200") bad++;
        const label = `${n.name}${n.migrationNode ? " (migration)" : ""}`;
        if (r.unreachable !== undefined) rows.push([label, n.container, "?", `unknown: ${unreachableMessage(n, r.unreachable)}`]);
        else rows.push([label, n.container, state, code === "200" ? "ready" : `not ready (${code})`]);
    }
    if (inv.gitaly !== undefined) {
        // The GitLab nodes' /-/readiness does not check Gitaly (only ?all=1 does): ask the Gitaly node itself.
        const g = inv.gitaly;
        const c = shellQuote(g.container);
        const r = await runner.run(g as HostRef, `docker inspect -f '{{.State.Status}}{{if .State.Health}}/{{.State.Health.Status}}{{end}}' ${c} 2>/dev/null || echo missing
if docker exec ${c} gitlab-ctl status gitaly 2>/dev/null | grep -q '^run: gitaly:'; then echo run; else echo down; fi`);
        const [state = "?", gitaly = "?"] = r.stdout.trim().split("\n");
        if (r.unreachable !== undefined || gitaly !== "run") bad++;
        rows.push([`gitaly ${g.name}`, g.container, r.unreachable !== undefined ? "?" : state,
            r.unreachable !== undefined ? `unknown: ${unreachableMessage(g as HostRef, r.unreachable)}` : gitaly === "run" ? "Gitaly running" : "Gitaly down"]);
    }
    const b = inv.balancer;
    const scheme = b.tls ? "https" : "http";
    const port = b.tls ? b.httpsPort : b.httpPort;
    // From inside the balancer's container the caller is 127.0.0.1, which GitLab's monitoring allowlist admits.
    const r = await runner.run(b as HostRef, `docker exec ${shellQuote(b.container)} curl -sk -o /dev/null -w '%{http_code}' --max-time 10 -H ${shellQuote(`Host: ${b.serverName}`)} ${scheme}://127.0.0.1:${port}/-/readiness 2>/dev/null || echo unreachable`);
    const code = r.stdout.trim();
    if (r.unreachable !== undefined || code !== "200") bad++;
    rows.push([`balancer ${b.name}`, b.container, "", r.unreachable !== undefined ? `unknown: ${unreachableMessage(b as HostRef, r.unreachable)}` : code === "200" ? "ready" : `not ready (${code})`]);
    log(table(rows));
    return bad === 0 ? 0 : 1;
}

/** The stack file's configuration, parsed as `pulumi up` would parse it (defaults applied). */
function stackConfig(stack: string, root = path.resolve(__dirname, "..", "..")): PreflightConfig {
    const file = path.join(root, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) throw new OpsError(`Pulumi.${stack}.yaml does not exist in ${root}`, 2);
    try {
        const { config, secretKeys } = readStackFile(file);
        const flat = Object.fromEntries(Object.entries(config).map(([k, v]) => [`${CONFIG_NAMESPACE}:${k}`, JSON.stringify(v)]));
        return loadClusterConfig(flat, k => secretKeys.includes(k.slice(CONFIG_NAMESPACE.length + 1)));
    } catch (e) {
        if (e instanceof ConfigError) throw new OpsError(`Pulumi.${stack}.yaml: ${e.message}`, 2);
        throw new OpsError(`cannot read Pulumi.${stack}.yaml: ${e instanceof Error ? e.message : String(e)}`, 2);
    }
}

async function preflight(stack: string, runner: Runner, log: (l: string) => void): Promise<number> {
    const hosts = preflightPlan(stackConfig(stack));
    const results = await runPreflight(hosts, runner);
    for (const h of hosts) {
        log(`${h.host.name} (${h.roles.join(", ")})`);
        for (const r of results.filter(x => x.host === h.host.name)) log(`  ${r.ok ? "ok     " : "MISSING"} ${r.check}: ${r.detail}`);
    }
    const missing = results.filter(r => !r.ok);
    log(missing.length === 0 ? `preflight: every check passed on ${hosts.length} host(s)` : `preflight: ${missing.length} missing: ${missing.map(r => `${r.host} ${r.check}`).join(", ")}`);
    return missing.length === 0 ? 0 : 1;
}

async function confirm(question: string, yes: boolean): Promise<void> {
    if (yes) return;
    if (!process.stdin.isTTY) throw new OpsError("refused: restore needs confirmation; pass --yes to run without a terminal", 3);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`${question} Type "yes" to go on: `);
    rl.close();
    if (answer.trim() !== "yes") throw new OpsError("refused: not confirmed", 3);
}

/**
 * The CLI; returns the exit code, throws OpsError for a failure the user can act on. Lines go to
 * `log`: stdout, or stderr once stdout is closed (`| head`), so a restore never dies half way.
 */
export async function main(argv: readonly string[], runnerFor: (stack: string) => Runner = s => new ShellRunner(sshFilesDir(s)), log: (l: string) => void = printLine): Promise<number> {
    let parsed;
    try {
        parsed = parseArgs({
            args: [...argv], allowPositionals: true,
            options: {
                stack: { type: "string" }, outputs: { type: "string" }, yes: { type: "boolean" }, "verify-integrity": { type: "boolean" },
                help: { type: "boolean", short: "h" },
            },
        });
    } catch (e) {
        throw new OpsError(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`, 2);
    }
    const { values, positionals } = parsed;
    if (values.help) { log(USAGE); return 0; }
    const [command, ...rest] = positionals;
    if (command === undefined || values.stack === undefined) throw new OpsError(`${command === undefined ? "no command" : "--stack is required"}\n\n${USAGE}`, 2);
    if (values["verify-integrity"] && command !== "restore") throw new OpsError(`--verify-integrity goes with restore only\n\n${USAGE}`, 2);
    if (command === "preflight") return preflight(values.stack, runnerFor(values.stack), log);
    const inv = readInventory(values.stack, values.outputs);
    const runner = runnerFor(values.stack);
    switch (command) {
        case "status":
            return status(inv, runner, log);
        case "backup": {
            const outputs = await execute(backupPlan(inv), runner, log);
            const id = backupIdFromLog(outputs.get("backup") ?? "");
            log(`backup id: ${id}\n  ${inv.backupsDir}/${id}_gitlab_backup.tar\n  ${etcBackupsDir(inv)}/${id}_gitlab_etc.tar\n  (on ${inv.backupNode})`);
            return 0;
        }
        case "backups": {
            const r = await runner.run(backupNode(inv), listBackupsScript(inv.backupsDir, etcBackupsDir(inv)));
            if (r.code !== 0) throw new OpsError(`could not list ${inv.backupsDir} on ${inv.backupNode}: ${r.stderr.trim()}`, 1);
            const list = parseBackupList(r.stdout);
            log(list.length === 0 ? `no backups in ${inv.backupsDir} on ${inv.backupNode}` : table([
                ["id", "version", "size", "date", "/etc/gitlab archive"],
                ...list.map(a => [a.id, a.version, `${(a.bytes / 1048576).toFixed(1)} MiB`, a.date, a.etcArchive ? "yes" : "MISSING"]),
            ]));
            return 0;
        }
        case "restore": {
            const id = rest[0];
            if (id === undefined) throw new OpsError("restore needs a backup id (see: npm run ops -- backups)", 2);
            const backup = parseBackupId(id);
            const n = backupNode(inv);
            const running = await runner.run(n, runningVersionScript(n.container));
            if (running.unreachable !== undefined) throw new OpsError(`${unreachableMessage(n, running.unreachable)}\ncluster state: nothing was changed`, 1);
            if (running.code !== 0) throw new OpsError(`could not read the GitLab version on ${n.name}: ${running.stderr.trim() || `exit ${running.code}`}\ncluster state: nothing was changed`, 1);
            if (!/^\d+\.\d+\.\d+-(ce|ee)$/.test(running.stdout.trim())) {
                throw new OpsError(`could not read the GitLab version on ${n.name}: the container said "${running.stdout.trim()}"\ncluster state: nothing was changed`, 1);
            }
            checkRestoreVersion(backup.version, running.stdout);
            const steps = restorePlan(inv, id, undefined, { verifyIntegrity: values["verify-integrity"] === true });
            log(`restore ${id} (GitLab ${backup.version}) on ${n.name}; the other nodes are stopped until it is done:`);
            for (const [i, s] of steps.entries()) log(`  ${i + 1}. ${s.title}`);
            await confirm("This replaces the database, repositories and uploads with the backup's.", values.yes === true);
            await execute(steps, runner, log);
            log(`restored ${id}; every node is ready${values["verify-integrity"] ? "; the integrity checks found no problem" : ""}`);
            log(`cluster state: ${id} restored on every node, all serving`);
            return 0;
        }
        case "cache-clear":
            await execute(cacheClearPlan(inv), runner, log);
            return 0;
        case "upgrade-status": {
            const report = upgradeStatusReport(await readUpgradeStatus(inv, runner));
            for (const l of report.lines) log(l);
            return report.code;
        }
        default:
            throw new OpsError(`unknown command "${command}"\n\n${USAGE}`, 2);
    }
}

runMain(module, main);
