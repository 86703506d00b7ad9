// npm run ops -- <command> --stack <name> [--outputs FILE] [--yes] [--verify-integrity]
// Day-2 operations on a deployed cluster: status, backup, backups, restore <id>, cache-clear.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { createInterface } from "node:readline/promises";
import { parseArgs } from "node:util";
import type { OpsInventory } from "../components/cluster";
import { sshFilesDir } from "../components/host";
import { shellQuote } from "../components/render/quote";
import {
    backupIdFromLog, backupNode, backupPlan, cacheClearPlan, checkRestoreVersion, etcBackupsDir, execute, listBackupsScript, OpsError,
    parseBackupId, parseBackupList, restorePlan, runningVersionScript, type HostRef, type Runner,
} from "./ops/plan";
import { ShellRunner } from "./ops/runner";

const USAGE = `usage: npm run ops -- <command> --stack <name> [options]

commands:
  status            each node's container state and /-/readiness, directly and through the balancer
  backup            run a backup now (gitlab-backup create STRATEGY=copy, as the schedule does);
                    prints its id and both archives' paths
  backups           list backups: id, GitLab version, size, date, whether the /etc/gitlab archive is there
  restore <id>      GitLab's restore procedure on the backup node (stops the other nodes meanwhile);
                    restores gitlab-secrets.json and the SSH host keys, never gitlab.rb. An off-host
                    copy of the data archive goes into <dataRoot>/etc-backups beside the other one
                    (the /etc/gitlab archive from backup.secretsTarget's host, or backup.target's)
  cache-clear       gitlab-rake cache:clear on the migration node

options:
  --stack <name>    the Pulumi stack (outputs read with: pulumi stack output --json --show-secrets)
  --outputs <file>  read the stack's outputs from this JSON file instead of the Pulumi CLI
  --yes             do not ask for confirmation (restore)
  --verify-integrity  restore: once every node is ready, also run gitlab-rake gitlab:artifacts:check,
                    gitlab:lfs:check and gitlab:uploads:check (VERBOSE=1) on the backup node; they
                    read every file, so they take a while. Exit 1 if one finds a file missing or
                    not matching its checksum (the files are listed); the cluster keeps serving
  -h, --help        this text

exit codes: 0 done, 1 a step failed (the message says which and the cluster's state), 2 usage or
inventory error, 3 refused (version mismatch, not confirmed)`;

export function readInventory(stack: string, outputsFile: string | undefined): OpsInventory {
    let text: string;
    if (outputsFile !== undefined) {
        text = fs.readFileSync(outputsFile, "utf8");
    } else {
        try {
            text = execFileSync("pulumi", ["stack", "output", "--json", "--show-secrets", "--stack", stack], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        } catch (err) {
            throw new OpsError(`could not read the outputs of stack "${stack}" with the Pulumi CLI (${(err as Error).message.split("\n")[0]}); pass --outputs FILE`, 2);
        }
    }
    const outputs = JSON.parse(text) as { ops?: OpsInventory };
    if (!outputs.ops) throw new OpsError(`the outputs of stack "${stack}" have no "ops" inventory: run pulumi up with this version first`, 2);
    return outputs.ops;
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
        if (code !== "200") bad++;
        rows.push([`${n.name}${n.migrationNode ? " (migration)" : ""}`, n.container, state, code === "200" ? "ready" : `not ready (${code})`]);
    }
    const b = inv.balancer;
    const scheme = b.tls ? "https" : "http";
    const port = b.tls ? b.httpsPort : b.httpPort;
    // From inside the balancer's container the caller is 127.0.0.1, which GitLab's monitoring allowlist admits.
    const r = await runner.run(b as HostRef, `docker exec ${shellQuote(b.container)} curl -sk -o /dev/null -w '%{http_code}' --max-time 10 -H ${shellQuote(`Host: ${b.serverName}`)} ${scheme}://127.0.0.1:${port}/-/readiness 2>/dev/null || echo unreachable`);
    const code = r.stdout.trim();
    if (code !== "200") bad++;
    rows.push([`balancer ${b.name}`, b.container, "", code === "200" ? "ready" : `not ready (${code})`]);
    log(table(rows));
    return bad === 0 ? 0 : 1;
}

async function confirm(question: string, yes: boolean): Promise<void> {
    if (yes) return;
    if (!process.stdin.isTTY) throw new OpsError("refused: restore needs confirmation; pass --yes to run without a terminal", 3);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`${question} Type "yes" to go on: `);
    rl.close();
    if (answer.trim() !== "yes") throw new OpsError("refused: not confirmed", 3);
}

export async function main(argv: string[], runnerFor: (stack: string) => Runner = s => new ShellRunner(sshFilesDir(s)), log: (l: string) => void = console.log): Promise<number> {
    const { values, positionals } = parseArgs({
        args: argv, allowPositionals: true,
        options: {
            stack: { type: "string" }, outputs: { type: "string" }, yes: { type: "boolean" }, "verify-integrity": { type: "boolean" },
            help: { type: "boolean", short: "h" },
        },
    });
    if (values.help) { log(USAGE); return 0; }
    const [command, ...rest] = positionals;
    if (command === undefined || values.stack === undefined) throw new OpsError(`${command === undefined ? "no command" : "--stack is required"}\n\n${USAGE}`, 2);
    if (values["verify-integrity"] && command !== "restore") throw new OpsError(`--verify-integrity goes with restore only\n\n${USAGE}`, 2);
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
            if (running.code !== 0) throw new OpsError(`could not read the GitLab version on ${n.name}: ${running.stderr.trim()}`, 1);
            checkRestoreVersion(backup.version, running.stdout);
            const steps = restorePlan(inv, id, undefined, { verifyIntegrity: values["verify-integrity"] === true });
            log(`restore ${id} (GitLab ${backup.version}) on ${n.name}; the other nodes are stopped until it is done:`);
            for (const [i, s] of steps.entries()) log(`  ${i + 1}. ${s.title}`);
            await confirm("This replaces the database, repositories and uploads with the backup's.", values.yes === true);
            await execute(steps, runner, log);
            log(`restored ${id}; every node is ready${values["verify-integrity"] ? "; the integrity checks found no problem" : ""}`);
            return 0;
        }
        case "cache-clear":
            await execute(cacheClearPlan(inv), runner, log);
            return 0;
        default:
            throw new OpsError(`unknown command "${command}"\n\n${USAGE}`, 2);
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(code => process.exit(code), err => {
        if (err instanceof OpsError) {
            console.error(`error: ${err.message}`);
            process.exit(err.exitCode);
        }
        console.error(err);
        process.exit(1);
    });
}
