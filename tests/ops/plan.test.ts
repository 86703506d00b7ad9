import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import type { OpsInventory } from "../../components/cluster";
import { main } from "../../scripts/ops";
import {
    backupPlan, checkRestoreVersion, execute, imageVersion, INTEGRITY_CHECKS, listBackupsScript, OpsError, parseBackupId, parseBackupList, restorePlan,
    type HostRef, type RunResult, type Runner,
} from "../../scripts/ops/plan";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { BACKUP_ID, dockerDouble, localInventory, LocalRunner, nodeLayout } from "../security/dockerDouble";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");

/** Records every script; answers from a table of (host, pattern) -> result. */
class FakeRunner implements Runner {
    readonly calls: { host: string; script: string; stdin?: string }[] = [];
    constructor(private readonly answers: { host?: string; match: RegExp; result: Partial<RunResult> }[] = []) {}
    async run(host: HostRef, script: string, stdin?: string): Promise<RunResult> {
        this.calls.push({ host: host.name, script, stdin });
        const a = this.answers.find(x => (x.host === undefined || x.host === host.name) && x.match.test(script));
        return { code: 0, stdout: "", stderr: "", ...a?.result };
    }
}

describe("ops command", () => {
    let inv: OpsInventory;
    let outputsFile: string;
    before(async () => {
        const e = await evaluate(threeNodeConfig());
        inv = e.cluster.ops;
        outputsFile = path.join(tempDir("ops"), "outputs.json");
        fs.writeFileSync(outputsFile, JSON.stringify({ url: e.cluster.url, ops: inv }));
    });

    it("parses backup ids and image versions", () => {
        assert.deepEqual(parseBackupId("1700000000_2023_11_14_18.4.1-ce"), { id: "1700000000_2023_11_14_18.4.1-ce", epoch: 1700000000, version: "18.4.1-ce" });
        assert.throws(() => parseBackupId("../../etc"), (e: unknown) => e instanceof OpsError && e.exitCode === 2);
        assert.equal(imageVersion("gitlab/gitlab-ce:18.4.1-ce.0"), "18.4.1-ce");
        assert.equal(imageVersion("registry.local/gitlab/gitlab-ee:17.11.2-ee.0"), "17.11.2-ee");
    });

    it("refuses a restore onto another version or edition", () => {
        assert.doesNotThrow(() => checkRestoreVersion("18.4.1-ce", "18.4.1-ce\n"));
        assert.throws(() => checkRestoreVersion("18.4.1-ce", "18.4.2-ce"), (e: unknown) => e instanceof OpsError && e.exitCode === 3 && /refused/.test(e.message));
        assert.throws(() => checkRestoreVersion("18.4.1-ee", "18.4.1-ce"), /refused/);
    });

    it("plans GitLab's restore: others stopped, /etc/gitlab first, puma and sidekiq stopped, restore, checks, others started one by one", () => {
        const titles = restorePlan(inv, "1700000000_2023_11_14_18.4.1-ce").map(s => `${s.host.name}: ${s.title}`);
        assert.deepEqual(titles, [
            "app1: check both archives of 1700000000_2023_11_14_18.4.1-ce exist on app1",
            "app1: hand 1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar to git on app1",
            "app2: stop app2",
            "app3: stop app3",
            "app1: restore gitlab-secrets.json and the SSH host keys on app1 (gitlab.rb stays the program's) and reconfigure",
            "app1: stop puma and sidekiq on app1",
            "app1: gitlab-backup restore BACKUP=1700000000_2023_11_14_18.4.1-ce on app1",
            "app1: restart app1 and wait for /-/readiness",
            "app1: gitlab-rake gitlab:check SANITIZE=true and gitlab:doctor:secrets on app1",
            "app1: read the restored secrets and host keys on app1",
            "app2: write the restored secrets and host keys on app2",
            "app2: start app2 and wait for /-/readiness",
            "app3: write the restored secrets and host keys on app3",
            "app3: start app3 and wait for /-/readiness",
        ]);
        const plan = restorePlan(inv, "1700000000_2023_11_14_18.4.1-ce");
        assert.equal(plan[6]!.script, "docker exec -e GITLAB_ASSUME_YES=1 gitlab-gitlab-app1 gitlab-backup restore BACKUP=1700000000_2023_11_14_18.4.1-ce");
        assert.match(plan[0]!.script, /\/srv\/gitlab\/etc-backups\/1700000000_2023_11_14_18\.4\.1-ce_gitlab_etc\.tar/, "the /etc/gitlab archive comes from the root-only directory");
        assert.match(plan[4]!.script, /^archive='?\/srv\/gitlab\/etc-backups\/1700000000_2023_11_14_18\.4\.1-ce_gitlab_etc\.tar'?$/m);
        for (const step of plan) {
            assert.ok(!/\bchown\b/.test(step.script), `${step.title}: root chowns nothing`);
            assert.ok(!/tar -xf \S*_gitlab_etc\.tar -C/.test(step.script), `${step.title}: no tar straight into /etc/gitlab`);
            assert.equal(shSyntax(step.script).status, 0, step.title);
        }
    });

    it("with verifyIntegrity, runs GitLab's integrity checks last, once every node is ready", () => {
        const plain = restorePlan(inv, "1700000000_2023_11_14_18.4.1-ce");
        const verified = restorePlan(inv, "1700000000_2023_11_14_18.4.1-ce", 1200, { verifyIntegrity: true });
        assert.deepEqual(verified.slice(0, -1), plain, "the same restore before it");
        const last = verified.at(-1)!;
        assert.equal(last.host.name, "app1");
        assert.equal(last.title, "integrity checks on app1: gitlab-rake gitlab:artifacts:check, gitlab:lfs:check, gitlab:uploads:check");
        assert.match(last.stateIfFailed, /^every node is restored and serving/);
        assert.ok(!plain.some(s => /:check\b.*(artifacts|lfs|uploads)|(artifacts|lfs|uploads):check/.test(s.script)), "not without the flag");
        assert.equal(shSyntax(last.script).status, 0);
        const lint = shellcheck(`#!/bin/sh\n${last.script}`);
        assert.equal(lint.status, 0, lint.stdout);
    });

    it("the integrity step, run against the docker double: passes on clean checks, fails naming the check that reports failures", async () => {
        const node = nodeLayout(tempDir("ops-integrity"));
        const checkOutput = (failing: string) => `echo "Checking integrity of $1 (VERBOSE=$VERBOSE)"
if [ "$1" = ${failing} ]; then echo "- 1..200: Failures: 2"; echo "  - LFS object: 7: Checksum mismatch"; else echo "- 1..200: Failures: 0"; fi
echo "Done!"`;
        const step = restorePlan(localInventory(node), BACKUP_ID, 5, { verifyIntegrity: true }).at(-1)!;
        const clean = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config, onRake: checkOutput("none") });
        const log: string[] = [];
        await execute([step], new LocalRunner(clean.env), l => log.push(l));
        assert.deepEqual(clean.calls(), INTEGRITY_CHECKS.map(t => `exec -e VERBOSE=1 gitlab-gitlab-app1 gitlab-rake ${t}`));
        assert.ok(log.includes("    Checking integrity of gitlab:uploads:check (VERBOSE=1)"), log.join("\n"));
        const corrupt = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config, onRake: checkOutput("gitlab:lfs:check") });
        const failed: string[] = [];
        await assert.rejects(execute([step], new LocalRunner(corrupt.env), l => failed.push(l)), (e: unknown) => {
            assert.ok(e instanceof OpsError && e.exitCode === 1);
            assert.match(e.message, /^step 1 failed: integrity checks on app1: .*\ncluster state: every node is restored and serving; a check found/);
            return true;
        });
        assert.equal(corrupt.calls().length, 3, "every check runs, even after one reports failures");
        assert.ok(failed.includes("      - LFS object: 7: Checksum mismatch"), failed.join("\n"));
        assert.ok(failed.includes("    ! gitlab:lfs:check: files missing or not matching their checksum (listed above)"), failed.join("\n"));
        const broken = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config, onRake: "echo 'rake aborted!'; exit 1" });
        await assert.rejects(execute([step], new LocalRunner(broken.env), () => undefined), /step 1 failed/);
    });

    it("stops at a failed step and says which, and the cluster's state", async () => {
        const runner = new FakeRunner([{ match: /gitlab-backup restore/, result: { code: 5, stderr: "boom" } }]);
        const log: string[] = [];
        await assert.rejects(execute(restorePlan(inv, "1700000000_2023_11_14_18.4.1-ce"), runner, l => log.push(l)), (e: unknown) => {
            assert.ok(e instanceof OpsError);
            assert.equal(e.exitCode, 1);
            assert.match(e.message, /^step 7 failed: gitlab-backup restore BACKUP=\S+ on app1 \(exit 5\)\ncluster state: app2, app3 stopped; puma and sidekiq stopped on app1/);
            return true;
        });
        assert.equal(runner.calls.length, 7, "nothing runs after the failed step");
        assert.ok(log.includes("    ! boom"));
    });

    it("hands the restored identity from the backup node to the others without printing it", async () => {
        const runner = new FakeRunner([{ match: /tar -cf "\$bundle\/identity\.tar" -- gitlab-secrets\.json/, result: { stdout: "SECRETBUNDLE" } }]);
        const log: string[] = [];
        await execute(restorePlan(inv, "1700000000_2023_11_14_18.4.1-ce"), runner, l => log.push(l));
        const writes = runner.calls.filter(c => /base64 -d/.test(c.script));
        assert.deepEqual(writes.map(w => [w.host, w.stdin]), [["app2", "SECRETBUNDLE"], ["app3", "SECRETBUNDLE"]]);
        assert.ok(!log.some(l => l.includes("SECRETBUNDLE")));
    });

    it("restore refuses a version mismatch before changing anything", async () => {
        const runner = new FakeRunner([{ match: /gitlab-rails\/VERSION/, result: { stdout: "18.5.0-ce\n" } }]);
        await assert.rejects(main(["restore", "1700000000_2023_11_14_18.4.1-ce", "--stack", "t", "--outputs", outputsFile, "--yes"], () => runner, () => undefined),
            (e: unknown) => e instanceof OpsError && e.exitCode === 3);
        assert.equal(runner.calls.length, 1, "only the version was read");
    });

    it("restore asks for confirmation; without a terminal and --yes it refuses", async () => {
        const runner = new FakeRunner([{ match: /gitlab-rails\/VERSION/, result: { stdout: "18.4.1-ce\n" } }]);
        await assert.rejects(main(["restore", "1700000000_2023_11_14_18.4.1-ce", "--stack", "t", "--outputs", outputsFile], () => runner, () => undefined),
            (e: unknown) => e instanceof OpsError && e.exitCode === 3 && /--yes/.test(e.message));
        assert.equal(runner.calls.length, 1);
    });

    it("backup runs gitlab-backup create with STRATEGY=copy (the inline script, run against the docker double)", async () => {
        const node = nodeLayout(tempDir("ops-backup"));
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        const plan = backupPlan(localInventory(node));
        assert.match(plan[0]!.script, /^if \[ -x \/usr\/local\/sbin\/gitlab-cluster-backup \]; then exec timeout 7200 /);
        // This machine has no installed backup script: the step runs the same script inline.
        assert.ok(!fs.existsSync("/usr/local/sbin/gitlab-cluster-backup"));
        const outputs = await execute(plan, new LocalRunner(docker.env), () => undefined);
        assert.deepEqual(docker.calls(), ["exec gitlab-gitlab-app1 gitlab-backup create STRATEGY=copy CRON=1"]);
        assert.match(outputs.get("backup")!, new RegExp(`backup ${BACKUP_ID.replace(/\./g, "\\.")} done`));
    });

    it("restore --verify-integrity adds the integrity step; the flag goes with restore only", async () => {
        const runner = new FakeRunner([{ match: /gitlab-rails\/VERSION/, result: { stdout: "18.4.1-ce\n" } }]);
        const log: string[] = [];
        assert.equal(await main(["restore", "1700000000_2023_11_14_18.4.1-ce", "--verify-integrity", "--yes", "--stack", "t", "--outputs", outputsFile], () => runner, l => log.push(l)), 0);
        const last = runner.calls.at(-1)!;
        assert.equal(last.host, "app1");
        for (const t of INTEGRITY_CHECKS) assert.ok(last.script.includes(t), t);
        assert.match(log.join("\n"), /^ {2}15\. integrity checks on app1: /m);
        assert.match(log.at(-2)!, /every node is ready; the integrity checks found no problem$/);
        assert.match(log.at(-1)!, /^cluster state: /);
        await assert.rejects(main(["backup", "--verify-integrity", "--stack", "t", "--outputs", outputsFile], () => new FakeRunner(), () => undefined),
            (e: unknown) => e instanceof OpsError && e.exitCode === 2 && /--verify-integrity goes with restore only/.test(e.message));
    });

    it("backup prints the id and both archives' paths", async () => {
        const runner = new FakeRunner([{ match: /gitlab-backup create/, result: { stdout: "2026-01-01T00:00:00Z backup 1700000000_2023_11_14_18.4.1-ce done\n" } }]);
        const log: string[] = [];
        assert.equal(await main(["backup", "--stack", "t", "--outputs", outputsFile], () => runner, l => log.push(l)), 0);
        assert.match(log.join("\n"), /backup id: 1700000000_2023_11_14_18\.4\.1-ce\n {2}\/srv\/gitlab\/data\/backups\/1700000000_2023_11_14_18\.4\.1-ce_gitlab_backup\.tar\n {2}\/srv\/gitlab\/etc-backups\/1700000000_2023_11_14_18\.4\.1-ce_gitlab_etc\.tar/);
    });

    it("backups lists id, version, size, date and the /etc/gitlab archive", async () => {
        const listing = "1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar 10485760 1700000000\n1700000000_2023_11_14_18.4.1-ce_gitlab_etc.tar 20480 1700000001\n1600000000_2020_09_13_18.3.0-ce_gitlab_backup.tar 5 1600000000\n";
        assert.deepEqual(parseBackupList(listing).map(a => [a.id, a.version, a.bytes, a.etcArchive]), [
            ["1700000000_2023_11_14_18.4.1-ce", "18.4.1-ce", 10485760, true],
            ["1600000000_2020_09_13_18.3.0-ce", "18.3.0-ce", 5, false],
        ]);
        const log: string[] = [];
        await main(["backups", "--stack", "t", "--outputs", outputsFile], () => new FakeRunner([{ match: /stat -c/, result: { stdout: listing } }]), l => log.push(l));
        assert.match(log.join("\n"), /1600000000_2020_09_13_18\.3\.0-ce\s+18\.3\.0-ce\s+0\.0 MiB\s+2020-09-13T\S+\s+MISSING/);
    });

    it("backups looks for /etc/gitlab archives in the root-only directory only, and lists no symlink", () => {
        const root = tempDir("ops-list");
        const backups = path.join(root, "data", "backups");
        const etc = path.join(root, "etc-backups");
        fs.mkdirSync(backups, { recursive: true });
        fs.mkdirSync(etc);
        const id = "1700000000_2023_11_14_18.4.1-ce";
        fs.writeFileSync(path.join(backups, `${id}_gitlab_backup.tar`), "data");
        fs.writeFileSync(path.join(backups, `${id}_gitlab_etc.tar`), "left by an earlier version, or planted by git");
        fs.symlinkSync("/etc/hostname", path.join(backups, "1800000000_2027_01_15_18.4.1-ce_gitlab_backup.tar"));
        const listed = () => parseBackupList(spawnSync("sh", ["-c", listBackupsScript(backups, etc)], { encoding: "utf8" }).stdout);
        assert.deepEqual(listed().map(a => [a.id, a.etcArchive]), [[id, false]]);
        fs.writeFileSync(path.join(etc, `${id}_gitlab_etc.tar`), "etc");
        fs.writeFileSync(path.join(etc, `${id}_gitlab_backup.tar`), "off-host copy put back");
        assert.deepEqual(listed().map(a => [a.id, a.etcArchive]), [[id, true]]);
    });

    it("status shows each node and the balancer, and fails when one is not ready", async () => {
        const runner = new FakeRunner([
            { host: "app2", match: /readiness/, result: { stdout: "running/unhealthy\n503\n" } },
            { match: /readiness/, result: { stdout: "running/healthy\n200\n" } },
        ]);
        const log: string[] = [];
        assert.equal(await main(["status", "--stack", "t", "--outputs", outputsFile], () => runner, l => log.push(l)), 1);
        const text = log.join("\n");
        assert.match(text, /app1 \(migration\)\s+gitlab-gitlab-app1\s+running\/healthy\s+ready/);
        assert.match(text, /app2\s+gitlab-gitlab-app2\s+running\/unhealthy\s+not ready \(503\)/);
        assert.match(text, /balancer edge1\s+gitlab-lb\s+not ready/);
    });

    it("usage errors exit 2", async () => {
        await assert.rejects(main(["frobnicate", "--stack", "t", "--outputs", outputsFile], () => new FakeRunner(), () => undefined), (e: unknown) => e instanceof OpsError && e.exitCode === 2);
        await assert.rejects(main(["status"], () => new FakeRunner(), () => undefined), (e: unknown) => e instanceof OpsError && e.exitCode === 2);
        const log: string[] = [];
        assert.equal(await main(["--help"], () => new FakeRunner(), l => log.push(l)), 0);
        assert.match(log[0]!, /restore <id>/);
        assert.match(log[0]!, /--verify-integrity +restore: .*gitlab-rake gitlab:artifacts:check,\n\s+gitlab:lfs:check and gitlab:uploads:check/);
        assert.match(log[0]!, /backup +run a backup now \(gitlab-backup create STRATEGY=copy/);
    });
});

describe("ops SSH runner", () => {
    it("uses the key and pinned known_hosts the program wrote, else trusts on first use", async () => {
        const { ShellRunner } = await import("../../scripts/ops/runner");
        const dir = tempDir("ops-ssh");
        const host = { name: "app1", address: "10.0.0.11", ssh: { user: "root", port: 2200, local: false } };
        const bare = new ShellRunner(dir).argv(host, "echo 'hi'");
        assert.deepEqual(bare.slice(-2), ["root@10.0.0.11", "sh -c 'echo '\\''hi'\\'''"]);
        assert.ok(bare.includes("StrictHostKeyChecking=accept-new") && !bare.includes("-i"));
        fs.writeFileSync(path.join(dir, "app1.key"), "k");
        fs.writeFileSync(path.join(dir, "app1.known_hosts"), "x");
        const pinned = new ShellRunner(dir).argv(host, "true");
        assert.deepEqual(pinned.slice(pinned.indexOf("-i"), pinned.indexOf("-i") + 2), ["-i", path.join(dir, "app1.key")]);
        assert.ok(pinned.includes("StrictHostKeyChecking=yes") && pinned.includes(`UserKnownHostsFile=${path.join(dir, "app1.known_hosts")}`));
        assert.deepEqual(new ShellRunner(dir).argv({ ...host, ssh: { ...host.ssh, local: true } }, "true"), ["sh", "-c", "true"]);
        const r = await new ShellRunner(dir).run({ ...host, ssh: { ...host.ssh, local: true } }, "cat; echo err >&2; exit 4", "in");
        assert.deepEqual(r, { code: 4, stdout: "in", stderr: "err\n" });
    });
});
