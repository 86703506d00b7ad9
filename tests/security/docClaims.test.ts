// Small checks of SECURITY.md claims that no other test proved: install scripts in the lock
// file, no firewall on a local (dev) host, the backup node's pruning of /etc/gitlab archives, and
// what a deploy-key rotation touches with and without ssh-agent, the Docker bridge range admitted
// to the data services when a GitLab node shares their host, the default images named there, and
// what replacing each generated password changes (the Gitaly layout's token and gitlab-shell
// secret too), and that no workflow step reads a stack output. And the file's own convention:
// every test it names exists, in the file it names.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { DEFAULT_IMAGES } from "../../components/config";
import { etcBackupsDirOf, renderBackupScript } from "../../components/render/backup";
import { classify } from "../../scripts/bench/blastRadius";
import { evaluate } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { gitalyConfig, threeNodeConfig } from "../fixtures";
import { dependsOn, ofType, REMOTE_COMMAND, str } from "../support/graph";
import { tempDir } from "../support/readers";
import { BACKUP_ID, dockerDouble, nodeLayout } from "./dockerDouble";

const root = path.join(__dirname, "..", "..", "..");
process.env.GITLAB_CLUSTER_KEY_DIR ??= tempDir("doc-claims-keys");

/**
 * The tests SECURITY.md names: each `tests/<file>.ts`, with the names quoted right after it (in the
 * same parentheses, or the same sentence outside them), up to the next file or `itest`. Inline code
 * other than a test file is not a name; a new paragraph, list item or table row ends a citation.
 */
function citedTests(markdown: string): { readonly file: string; readonly names: string[] }[] {
    const text = markdown
        .replace(/`([^`]*)`/g, (all, code: string) => (/^tests\/\S+\.ts$/.test(code) ? all : code.replace(/"/g, "")))
        .replace(/\n\s*\n|\n\s*[-|]\s|\n#+\s/g, " \u00b6 ")
        .replace(/\s+/g, " ");
    const cited: { file: string; names: string[] }[] = [];
    const open: ({ file: string; names: string[] } | "itest" | undefined)[] = [];
    let depth = 0;
    for (const m of text.matchAll(/`(tests\/[^`]+\.ts)`|\bitest\b|"([^"]*)"|\(|\)|\u00b6|\.\s(?=[A-Z*])/g)) {
        const token = m[0];
        if (token === "(") open[++depth] = undefined;
        else if (token === ")") { open[depth] = undefined; depth = Math.max(0, depth - 1); }
        else if (token === "\u00b6") { depth = 0; open.length = 0; }
        else if (token.startsWith(".")) { if (depth === 0) open[0] = undefined; }
        else if (m[1] !== undefined) { const c = { file: m[1], names: [] }; cited.push(c); open[depth] = c; }
        else if (token === "itest") open[depth] = "itest";
        else if (m[2] !== undefined) { const c = open[depth]; if (c !== undefined && c !== "itest") c.names.push(m[2]); }
    }
    return cited;
}

describe("SECURITY.md claims", () => {
    it("every test SECURITY.md names exists: each file, and each name quoted after it (\u2026 stands for words left out)", () => {
        const cited = citedTests(fs.readFileSync(path.join(root, "SECURITY.md"), "utf8"));
        assert.ok(cited.length > 50 && cited.filter(c => c.names.length > 0).length > 40, `${cited.length} citations`);
        const problems: string[] = [];
        for (const { file, names } of cited) {
            const at = path.join(root, file);
            if (!fs.existsSync(at)) { problems.push(`${file}: no such file`); continue; }
            const source = fs.readFileSync(at, "utf8").replace(/\\(["'`\\])/g, "$1").replace(/\s+/g, " ");
            for (const name of names) {
                const parts = name.split("\u2026").map(p => p.trim()).filter(Boolean);
                if (parts.length === 0 || parts.some(p => !source.includes(p))) problems.push(`${file}: no test "${name}"`);
            }
        }
        assert.deepEqual(problems, []);
        // The reader itself: a planted citation of a test that does not exist is found.
        const planted = citedTests("A claim (`tests/security/exposure.test.ts` \"runs no container privileged, \u2026\", \"a test nobody wrote\"; itest \"1 redis: x\").");
        assert.deepEqual(planted, [{ file: "tests/security/exposure.test.ts", names: ["runs no container privileged, \u2026", "a test nobody wrote"] }]);
    });

    it("package-lock.json: only @pulumi/command and protobufjs have install scripts", () => {
        const lock = JSON.parse(fs.readFileSync(path.join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { hasInstallScript?: boolean }> };
        const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript === true).map(([name]) => name).sort();
        assert.deepEqual(withScripts, ["node_modules/@pulumi/command", "node_modules/protobufjs"]);
    });

    it("a local (dev) host gets no firewall", async () => {
        const stack = readStackFile(path.join(root, "Pulumi.dev.yaml"));
        const e = await evaluate(stack.config, { stack: "dev", secretKeys: stack.secretKeys });
        assert.ok(e.resources.length > 0);
        assert.deepEqual(e.resources.filter(r => /firewall/i.test(r.name) || /iptables/.test(JSON.stringify(r.inputs))).map(r => r.name), []);
    });

    it("the backup script prunes /etc/gitlab archives older than keepDays, in etc-backups and in GitLab's backups directory, and keeps newer ones", () => {
        const node = nodeLayout(tempDir("doc-claims-prune"));
        const etcBackups = etcBackupsDirOf(node.dataRoot);
        fs.mkdirSync(etcBackups, { recursive: true, mode: 0o700 });
        const old = [path.join(etcBackups, "1600000000_2020_09_13_13.0.0-ce_gitlab_etc.tar"), path.join(node.backups, "1600000001_2020_09_13_13.0.0-ce_gitlab_etc.tar")];
        const fresh = path.join(etcBackups, "1699999999_2023_11_14_18.4.1-ce_gitlab_etc.tar");
        for (const f of [...old, fresh]) fs.writeFileSync(f, "archive", { mode: 0o600 });
        for (const f of old) fs.utimesSync(f, new Date("2020-09-13"), new Date("2020-09-13"));
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        const script = renderBackupScript({ container: "gitlab-gitlab-app1", backupsDir: node.backups, etcBackupsDir: etcBackups, etcDir: node.config, keepDays: 7 });
        const r = spawnSync("sh", ["-c", script], { encoding: "utf8", env: { ...process.env, ...docker.env } });
        assert.equal(r.status, 0, r.stderr + r.stdout);
        for (const f of old) assert.ok(!fs.existsSync(f), `${f} was not pruned`);
        assert.ok(fs.existsSync(fresh));
        assert.ok(fs.existsSync(path.join(etcBackups, `${BACKUP_ID}_gitlab_etc.tar`)));
    });

    it("with ssh.useAgent no command's connection holds a key; with ssh.privateKey a new key replaces every remote command", async () => {
        const agent = threeNodeConfig();
        agent.ssh = { user: "root", useAgent: true };
        const viaAgent = await evaluate(agent);
        const commands = ofType(viaAgent, REMOTE_COMMAND);
        assert.ok(commands.length > 10);
        for (const c of commands) assert.equal((c.inputs.connection as { privateKey?: string }).privateKey, undefined, c.name);
        const before = await evaluate(threeNodeConfig());
        const rotated = threeNodeConfig();
        rotated.ssh.privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-KEY-NOT-REAL-ROTATED\n-----END OPENSSH PRIVATE KEY-----";
        const after = await evaluate(rotated);
        const ops = classify(before.resources, after.resources).resources.filter(r => r.type === REMOTE_COMMAND);
        assert.ok(ops.length > 10);
        assert.deepEqual(ops.filter(r => r.op !== "replace").map(r => r.name), []);
    });

    it("a GitLab node on the data host: its Docker bridge range is admitted by pg_hba.conf and the firewall, besides the GitLab hosts", async () => {
        const cfg = threeNodeConfig();
        cfg.roles.redis = "app2";
        cfg.roles.postgres = "app2";
        const e = await evaluate(cfg);
        const bridge = "172.17.0.0/16"; // hosts.<name>.dockerBridgeSubnet's default
        const hba = str(e.byName("gitlab-postgres-hba"), "stdin").split("\n").filter(l => /^host/.test(l)).map(l => l.split(/\s+/)[3]).sort();
        assert.deepEqual(hba, ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32", bridge].sort());
        for (const name of ["gitlab-postgres-firewall", "gitlab-redis-firewall"]) {
            const sources = [...str(e.byName(name), "create").matchAll(/-A GLC-[A-Z]+ -s (\S+) -j RETURN/g)].map(m => m[1]).sort();
            assert.deepEqual(sources, ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32", bridge].sort(), name);
        }
    });

    it("the default images are the ones SECURITY.md names", () => {
        const doc = fs.readFileSync(path.join(root, "SECURITY.md"), "utf8");
        for (const image of Object.values(DEFAULT_IMAGES)) assert.ok(doc.includes(`\`${image}\``), image);
    });

    it("replacing a generated password updates only the commands SECURITY.md's Rotation names, and no container", async () => {
        const before = await evaluate(threeNodeConfig(), { passwordFor: n => `pw-${n}` });
        const nodes = (suffix: string) => ["app1", "app2", "app3"].map(n => `gitlab-gitlab-${n}-${suffix}`);
        const expected: Record<string, string[]> = {
            "gitlab-postgres-password": ["gitlab-postgres-gitlab-role", ...nodes("gitlab-rb"), ...nodes("rollout")],
            "gitlab-redis-password": ["gitlab-redis-config", ...nodes("gitlab-rb"), ...nodes("rollout")],
            "gitlab-postgres-superuser-password": ["gitlab-postgres-superuser-password"],
            "gitlab-initial-root-password": ["gitlab-gitlab-app1-gitlab-rb", "gitlab-gitlab-app1-rollout"],
        };
        for (const [password, names] of Object.entries(expected)) {
            const after = await evaluate(threeNodeConfig(), { passwordFor: n => (n === password ? `pw-${n}-rotated` : `pw-${n}`) });
            const changed = classify(before.resources, after.resources).resources.filter(r => r.op !== "same");
            assert.deepEqual(changed.filter(r => r.op !== "update").map(r => r.name), [], `${password}: only updates`);
            assert.deepEqual(changed.map(r => r.name).sort(), [...names].sort(), password);
        }
    });

    it("replacing the Gitaly token or gitlab-shell's secret updates only the gitlab.rb pushes and rollouts of the Gitaly node and every GitLab node, Gitaly first, and no container", async () => {
        const before = await evaluate(gitalyConfig(), { passwordFor: n => `pw-${n}` });
        const nodes = ["gitaly", "gitlab-app1", "gitlab-app2", "gitlab-app3"];
        const expected = [...nodes.map(n => `gitlab-${n}-gitlab-rb`), ...nodes.map(n => `gitlab-${n}-rollout`)].sort();
        for (const password of ["gitlab-gitaly-token", "gitlab-gitaly-shell-secret"]) {
            const after = await evaluate(gitalyConfig(), { passwordFor: n => (n === password ? `pw-${n}-rotated` : `pw-${n}`) });
            const changed = classify(before.resources, after.resources).resources.filter(r => r.op !== "same");
            assert.deepEqual(changed.filter(r => r.op !== "update").map(r => r.name), [], `${password}: only updates`);
            assert.deepEqual(changed.map(r => r.name).sort(), expected, password);
        }
        // The Gitaly node reconfigures first; each GitLab node's rollout waits for it.
        const gitaly = before.byName("gitlab-gitaly-rollout");
        for (const n of ["app1", "app2", "app3"]) {
            const node = before.byName(`gitlab-gitlab-${n}-rollout`);
            assert.ok(dependsOn(before, node, gitaly) && !dependsOn(before, gitaly, node), n);
        }
    });

    it("no workflow reads a stack output: the only step output read is pulumi/actions' `output` (the command's text)", () => {
        const dir = path.join(root, ".github", "workflows");
        const read = fs.readdirSync(dir).filter(f => f.endsWith(".yml")).flatMap(f =>
            [...fs.readFileSync(path.join(dir, f), "utf8").matchAll(/\b(?:steps|needs)\.[\w-]+\.outputs\.([\w-]+)/g)].map(m => m[1]));
        assert.ok(read.length > 0, "the previews read their text");
        assert.deepEqual([...new Set(read)], ["output"]);
    });
});
