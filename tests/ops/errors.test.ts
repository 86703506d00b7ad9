// What `ops` says when something other than GitLab fails (issue 16, items 7 and 8): a malformed
// inventory, a host SSH cannot reach, a stopped container, a long quiet step, a closed pipe.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import type { OpsInventory } from "../../components/cluster";
import { checkInventory, main, readInventory } from "../../scripts/ops";
import { execute, OpsError, restorePlan, runningVersionScript, type HostRef, type OutputSink, type RunResult, type Runner } from "../../scripts/ops/plan";
import { ShellRunner, sshFailure } from "../../scripts/ops/runner";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");

const ID = "1700000000_2023_11_14_18.4.1-ce";

/** Answers from a table of (host, pattern) -> result; `chunks` are streamed before the result, `delayMs` after them. */
class FakeRunner implements Runner {
    readonly calls: { host: string; script: string }[] = [];
    constructor(private readonly answers: { host?: string; match: RegExp; result: Partial<RunResult>; chunks?: string[]; delayMs?: number }[] = []) {}
    async run(host: HostRef, script: string, _stdin?: string, onOutput?: OutputSink): Promise<RunResult> {
        this.calls.push({ host: host.name, script });
        const a = this.answers.find(x => (x.host === undefined || x.host === host.name) && x.match.test(script));
        for (const c of a?.chunks ?? []) onOutput?.("stdout", c);
        if (a?.delayMs) await new Promise(r => setTimeout(r, a.delayMs));
        return { code: 0, stdout: (a?.chunks ?? []).join(""), stderr: "", ...a?.result };
    }
}

const exit = (code: number, message?: RegExp) => (e: unknown) => e instanceof OpsError && e.exitCode === code && (message === undefined || message.test(e.message));

describe("ops: the inventory", () => {
    let inv: OpsInventory;
    let dir: string;
    before(async () => {
        inv = (await evaluate(threeNodeConfig())).cluster.ops;
        dir = tempDir("ops-inv");
    });
    const file = (name: string, text: string) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };

    it("reads the saved ops output alone (no secrets needed), and a whole outputs file with a note", () => {
        assert.deepEqual(readInventory("prod", file("ops.json", JSON.stringify(inv)), () => assert.fail("no note")), inv);
        const notes: string[] = [];
        assert.deepEqual(readInventory("prod", file("all.json", JSON.stringify({ initialRootPassword: "x", ops: inv })), l => notes.push(l)), inv);
        assert.match(notes.join(), /holds all of the stack's outputs \(initialRootPassword\).*pulumi stack output ops --json --stack prod > ops\.json/);
    });

    it("a file of the wrong shape is exit 2 with what is wrong, never a TypeError", async () => {
        const wrong = file("wrong.json", JSON.stringify({ ops: { ...inv, nodes: "app1" } }));
        assert.throws(() => readInventory("prod", wrong, () => undefined), exit(2, /is not the ops inventory of a stack: ops\.nodes is string, not a list of nodes; save it with: pulumi stack output ops --json/));
        await assert.rejects(main(["status", "--stack", "prod", "--outputs", wrong], () => new FakeRunner(), () => undefined), exit(2));
        assert.throws(() => readInventory("prod", file("list.json", "[1, 2]"), () => undefined), exit(2, /ops is a list, not a map/));
        assert.throws(() => readInventory("prod", file("bad.json", "{ nope"), () => undefined), exit(2, /is not JSON/));
        assert.throws(() => readInventory("prod", path.join(dir, "missing.json"), () => undefined), exit(2, /cannot read --outputs/));
        const noSsh = { ...inv, nodes: inv.nodes.map((n, i) => (i === 1 ? { ...n, ssh: undefined } : n)) };
        assert.throws(() => checkInventory(noSsh, "f", "prod"), exit(2, /ops\.nodes\[1\]\.ssh is undefined, not a map/));
    });

    it("the CLI itself: a wrong-shaped --outputs exits 2 with a message and no stack trace", () => {
        const wrong = file("wrong2.json", JSON.stringify({ ops: { nodes: 3 } }));
        const r = spawnSync(process.execPath, [path.resolve(__dirname, "..", "..", "scripts", "ops.js"), "status", "--stack", "prod", "--outputs", wrong], { encoding: "utf8" });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /^error: .*is not the ops inventory/);
        assert.doesNotMatch(r.stderr, /TypeError|\n\s+at /);
    });
});

describe("ops: hosts SSH cannot reach, containers that are not running", () => {
    let outputs: string;
    before(async () => {
        outputs = path.join(tempDir("ops-ssh"), "ops.json");
        fs.writeFileSync(outputs, JSON.stringify((await evaluate(threeNodeConfig())).cluster.ops));
    });
    const refused = { code: 255, stdout: "", stderr: "ssh: connect to host 10.0.0.12 port 22: Connection refused\r\n", unreachable: "ssh: connect to host 10.0.0.12 port 22: Connection refused" };

    it("the SSH runner tells ssh's own failure (255 and its message) from a script's exit", () => {
        assert.equal(sshFailure("ssh: connect to host 10.0.0.12 port 22: Connection refused\r\n"), "ssh: connect to host 10.0.0.12 port 22: Connection refused");
        assert.equal(sshFailure("root@10.0.0.12: Permission denied (publickey).\n"), "root@10.0.0.12: Permission denied (publickey).");
        assert.equal(sshFailure("some script said this\n"), undefined);
    });

    it("status says SSH failed, and to which host, instead of `not ready (?)`", async () => {
        const runner = new FakeRunner([
            { host: "app2", match: /readiness/, result: refused },
            { match: /readiness/, result: { stdout: "running/healthy\n200\n" } },
        ]);
        const log: string[] = [];
        assert.equal(await main(["status", "--stack", "t", "--outputs", outputs], () => runner, l => log.push(l)), 1);
        const text = log.join("\n");
        assert.match(text, /app2 .*unknown: could not reach app2 \(root@10\.0\.0\.12, port 22\) over SSH: ssh: connect to host 10\.0\.0\.12 port 22: Connection refused/);
        assert.doesNotMatch(text, /not ready \(\?\)/);
    });

    it("a step on a host SSH cannot reach fails saying so, with the cluster's state", async () => {
        const inv = JSON.parse(fs.readFileSync(outputs, "utf8")) as OpsInventory;
        const runner = new FakeRunner([{ host: "app2", match: /docker stop/, result: refused }]);
        await assert.rejects(execute(restorePlan(inv, ID), runner, () => undefined), exit(1, /^step 3 failed: stop app2: could not reach app2 .* over SSH: .*Connection refused\ncluster state: /));
    });

    it("restore with a stopped container says it is stopped (exit 1, nothing changed), not a version mismatch", async () => {
        const runner = new FakeRunner([{ match: /gitlab-rails\/VERSION/, result: { code: 4, stderr: "container gitlab-gitlab-app1 is exited, not running: start it (docker start gitlab-gitlab-app1, or pulumi up) and run the restore again\n" } }]);
        await assert.rejects(main(["restore", ID, "--yes", "--stack", "t", "--outputs", outputs], () => runner, () => undefined),
            (e: unknown) => exit(1, /is exited, not running.*\ncluster state: nothing was changed/s)(e) && !/refused|version/.test((e as Error).message.split("\n")[0]!.replace("GitLab version", "")));
        assert.equal(runner.calls.length, 1);
        const unreadable = new FakeRunner([{ match: /gitlab-rails\/VERSION/, result: { stdout: "-ce\n" } }]);
        await assert.rejects(main(["restore", ID, "--yes", "--stack", "t", "--outputs", outputs], () => unreadable, () => undefined), exit(1, /could not read the GitLab version on app1: the container said "-ce"/));
    });

    it("the version script stops at a stopped or missing container (run against a docker stand-in)", () => {
        const bin = tempDir("fake-docker");
        fs.writeFileSync(path.join(bin, "docker"), "#!/bin/sh\nif [ \"$1\" = inspect ]; then echo \"$FAKE_STATE\"; [ -n \"$FAKE_STATE\" ]; exit; fi\necho 'Error response from daemon: container is not running' >&2; exit 1\n", { mode: 0o755 });
        const run = (state: string) => spawnSync("sh", ["-c", runningVersionScript("gitlab-gitlab-app1")], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_STATE: state } });
        const stopped = run("exited");
        assert.equal(stopped.status, 4);
        assert.match(stopped.stderr, /gitlab-gitlab-app1 is exited, not running/);
        assert.equal(stopped.stdout, "");
        assert.equal(run("").status, 4);
    });
});

describe("ops: long steps and closed pipes", () => {
    let inv: OpsInventory;
    before(async () => { inv = (await evaluate(threeNodeConfig())).cluster.ops; });

    it("streams each step's output as it comes, not at the end", async () => {
        const log: string[] = [];
        let seenBeforeEnd = false;
        const runner: Runner = {
            async run(_h, script, _stdin, onOutput) {
                if (/gitlab-backup restore/.test(script)) {
                    onOutput?.("stdout", "Restoring database ...\nUnpacking");
                    seenBeforeEnd = log.includes("    Restoring database ...");
                    onOutput?.("stdout", " repositories\n");
                    onOutput?.("stderr", "warning: slow disk\n");
                    return { code: 0, stdout: "Restoring database ...\nUnpacking repositories\n", stderr: "warning: slow disk\n" };
                }
                return { code: 0, stdout: "", stderr: "" };
            },
        };
        await execute(restorePlan(inv, ID), runner, l => log.push(l));
        assert.ok(seenBeforeEnd, "the first line is printed while the step still runs");
        const at = log.findIndex(l => /gitlab-backup restore/.test(l));
        assert.deepEqual(log.slice(at + 1, at + 4), ["    Restoring database ...", "    Unpacking repositories", "    ! warning: slow disk"]);
        assert.equal(log.filter(l => l === "    Restoring database ...").length, 1, "printed once");
    });

    it("prints a heartbeat while a step is quiet", async () => {
        const log: string[] = [];
        const runner = new FakeRunner([{ match: /gitlab-backup restore/, result: {}, delayMs: 120 }]);
        await execute(restorePlan(inv, ID), runner, l => log.push(l), { heartbeatMs: 30 });
        assert.ok(log.some(l => /^ {4}\.\.\. still running: gitlab-backup restore BACKUP=\S+ on app1 \(0m00s\)$/.test(l)), log.join("\n"));
    });

    it("never streams the identity bundle (it holds secrets)", async () => {
        const log: string[] = [];
        const runner = new FakeRunner([{ match: /tar -cf "\$bundle\/identity\.tar"/, result: {}, chunks: ["SECRETBUNDLE"] }]);
        await execute(restorePlan(inv, ID), runner, l => log.push(l));
        assert.ok(!log.some(l => l.includes("SECRETBUNDLE")));
    });

    it("a runner that throws still ends with the cluster's state", async () => {
        const runner: Runner = { run: async (_h, script) => { if (/docker stop/.test(script)) throw new Error("spawn ssh ENOENT"); return { code: 0, stdout: "", stderr: "" }; } };
        await assert.rejects(execute(restorePlan(inv, ID), runner, () => undefined), exit(1, /step 3 failed: stop app2 \(spawn ssh ENOENT\)\ncluster state: /));
    });

    it("the SSH runner survives a script that exits without reading its stdin (no EPIPE crash)", async () => {
        const host = { name: "local", address: "127.0.0.1", ssh: { user: "root", port: 22, local: true } };
        const r = await new ShellRunner(tempDir("ops-epipe")).run(host, "exit 3", "x".repeat(4 * 1024 * 1024));
        assert.equal(r.code, 3);
        const streamed: string[] = [];
        const s = await new ShellRunner(tempDir("ops-stream")).run(host, "echo one; echo two >&2", undefined, (stream, chunk) => streamed.push(`${stream}:${chunk}`));
        assert.equal(s.stdout, "one\n");
        assert.deepEqual(streamed.sort(), ["stderr:two\n", "stdout:one\n"]);
    });

    it("ops with its stdout closed early still finishes and prints the state line (on stderr)", () => {
        const dir = tempDir("ops-pipe");
        const outputs = path.join(dir, "ops.json");
        // Every host local: the scripts run here (no network), and find no such containers.
        const local = { ...inv, nodes: inv.nodes.map(n => ({ ...n, ssh: { ...n.ssh, local: true } })), balancer: { ...inv.balancer, ssh: { ...inv.balancer.ssh, local: true } } };
        fs.writeFileSync(outputs, JSON.stringify(local));
        const ops = path.resolve(__dirname, "..", "..", "scripts", "ops.js");
        // `| head -c1`: the pipe closes after one byte; status prints a table.
        const r = spawnSync("sh", ["-c", `node ${JSON.stringify(ops)} status --stack t --outputs ${JSON.stringify(outputs)} | head -c1 >/dev/null; echo "exit=\${PIPESTATUS:-done}"`], { encoding: "utf8", timeout: 60_000 });
        assert.doesNotMatch(r.stderr, /EPIPE|\n\s+at /, r.stderr);
    });
});
