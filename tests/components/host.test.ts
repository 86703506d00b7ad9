// L11 (issue 15): the SSH key file the program writes for the Docker provider's `ssh -i`
// (<GITLAB_CLUSTER_KEY_DIR>/<host>.key): its directory is made 0700 whatever it was, a symlink
// or another user's file in its place is refused, and the file goes away with the stack.
// Checked on real files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseClusterConfig } from "../../components/config";
import * as host from "../../components/host";
import { evaluate } from "../../scripts/evaluate";
import { TEST_PRIVATE_KEY, threeNodeConfig } from "../fixtures";
import { directlyDependsOn, str } from "../support/graph";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

const keyDir = tempDir("host-keys");
process.env.GITLAB_CLUSTER_KEY_DIR = keyDir;

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
/** The fixture's secrets (SSH and TLS keys) count as stored encrypted, as a stack holds them. */
const secretFlags = { isSecret: () => true };

/** The module's file writer, looked up at run time so that this test runs (and fails) against a build without it. */
function writePrivateFile(file: string, content: string): void {
    const fn = (host as unknown as Record<string, unknown>).writePrivateFile;
    assert.equal(typeof fn, "function", "components/host.ts exports writePrivateFile");
    (fn as (f: string, c: string) => void)(file, content);
}

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe("the local SSH key file (L11)", () => {
    it("creates the key directory 0700, and makes an existing directory 0700 whatever its mode", () => {
        const fresh = path.join(tempDir("keys-fresh"), "stack");
        writePrivateFile(path.join(fresh, "app1.key"), "KEY");
        assert.equal(mode(fresh), 0o700);
        assert.equal(mode(path.join(fresh, "app1.key")), 0o600);
        assert.equal(fs.readFileSync(path.join(fresh, "app1.key"), "utf8"), "KEY\n");

        const existing = tempDir("keys-open");
        fs.chmodSync(existing, 0o755);
        writePrivateFile(path.join(existing, "app1.key"), "KEY");
        assert.equal(mode(existing), 0o700, "an existing 0755 directory is made 0700");
        // An existing key file with a loose mode is replaced by a 0600 one.
        fs.chmodSync(path.join(existing, "app1.key"), 0o644);
        writePrivateFile(path.join(existing, "app1.key"), "KEY2\n");
        assert.equal(mode(path.join(existing, "app1.key")), 0o600);
        assert.equal(fs.readFileSync(path.join(existing, "app1.key"), "utf8"), "KEY2\n");
        assert.deepEqual(fs.readdirSync(existing), ["app1.key"], "no temp file is left behind");
    });

    it("refuses a symlink planted at the key path, and leaves its target alone", () => {
        const dir = tempDir("keys-link");
        const target = path.join(tempDir("elsewhere"), "victim");
        fs.writeFileSync(target, "original\n", { mode: 0o644 });
        fs.symlinkSync(target, path.join(dir, "app1.key"));
        assert.throws(() => writePrivateFile(path.join(dir, "app1.key"), "KEY"), /app1\.key.*symbolic link/);
        assert.equal(fs.readFileSync(target, "utf8"), "original\n");
        assert.equal(mode(target), 0o644);
        assert.ok(fs.lstatSync(path.join(dir, "app1.key")).isSymbolicLink(), "the link is left for the user to look at");
        // A dangling link (to where the file would be created) is refused as well.
        fs.symlinkSync(path.join(dir, "nowhere"), path.join(dir, "app2.key"));
        assert.throws(() => writePrivateFile(path.join(dir, "app2.key"), "KEY"), /symbolic link/);
        assert.ok(!fs.existsSync(path.join(dir, "nowhere")));
    });

    it("refuses another user's file at the key path, and another user's directory", (t) => {
        if (!isRoot) { t.skip("needs root to make files of another user"); return; }
        const dir = tempDir("keys-other");
        const file = path.join(dir, "app1.key");
        fs.writeFileSync(file, "theirs\n", { mode: 0o600 });
        fs.chownSync(file, NOBODY, NOBODY);
        assert.throws(() => writePrivateFile(file, "KEY"), new RegExp(`app1\\.key.*belongs to uid ${NOBODY}`));
        assert.equal(fs.readFileSync(file, "utf8"), "theirs\n");
        assert.equal(fs.statSync(file).uid, NOBODY);

        const theirDir = tempDir("keys-other-dir");
        fs.chownSync(theirDir, NOBODY, NOBODY);
        fs.chmodSync(theirDir, 0o755);
        assert.throws(() => writePrivateFile(path.join(theirDir, "app1.key"), "KEY"), new RegExp(`keys-other-dir.*belongs to uid ${NOBODY}`));
        assert.deepEqual(fs.readdirSync(theirDir), []);
        assert.equal(mode(theirDir), 0o755, "another user's directory is not changed");
    });

    it("the Docker provider's files are written through the same checks, naming the host", () => {
        const cfg = parseClusterConfig(threeNodeConfig(), secretFlags);
        const dir = tempDir("keys-provider");
        const target = path.join(tempDir("elsewhere"), "victim");
        fs.writeFileSync(target, "original\n");
        fs.symlinkSync(target, path.join(dir, "app1.known_hosts"));
        assert.throws(() => host.dockerProviderArgs(cfg.hosts.app1!, dir), /host "app1".*app1\.known_hosts.*symbolic link/s);
        assert.equal(fs.readFileSync(target, "utf8"), "original\n");
    });
});

describe("the key file goes with the stack (L11)", () => {
    it("each host with a key file has a local command whose delete step removes it; the Docker provider waits for it", async () => {
        const e = await evaluate(threeNodeConfig());
        for (const name of ["app1", "app2", "app3", "data1", "edge1"]) {
            const owner = e.byName(`gitlab-${name}-ssh-key`);
            assert.equal(owner.type, "command:local:Command");
            const provider = e.byName(`gitlab-${name}-docker`);
            // Destroy deletes in reverse dependency order: every container on the host, then
            // the provider, then this command. The provider still has its key while it works.
            assert.ok(directlyDependsOn(provider, owner), `${name}: the provider depends on its ssh-key command`);
            assert.deepEqual(owner.inputs.environment, { GITLAB_CLUSTER_SSH_KEY_FILE: host.sshFilePaths(keyDir, name).key });
            for (const script of [str(owner, "create"), str(owner, "delete")]) {
                assert.equal(shSyntax(script).status, 0);
                assert.equal(shellcheck(script).status, 0, shellcheck(script).stdout);
                assert.ok(!script.includes(keyDir), "the path travels in the environment: the same script on every machine");
                assert.ok(!script.includes("TEST-KEY-NOT-REAL"));
            }
        }
    });

    it("the delete step, run for real, removes the key file, leaves what is not ours, and removes the emptied directory", async () => {
        const dir = path.join(tempDir("keys-destroy"), "stack");
        process.env.GITLAB_CLUSTER_KEY_DIR = dir;
        try {
            const e = await evaluate(threeNodeConfig());
            const app1 = host.sshFilePaths(dir, "app1");
            assert.equal(fs.readFileSync(app1.key, "utf8"), `${TEST_PRIVATE_KEY}\n`);
            const runDelete = (name: string) => {
                const r = e.byName(`gitlab-${name}-ssh-key`);
                const env = r.inputs.environment as Record<string, string>;
                const out = spawnSync("/bin/sh", ["-c", str(r, "delete")], { env: { ...process.env, ...env }, encoding: "utf8" });
                assert.equal(out.status, 0, out.stderr);
                return out;
            };
            assert.match(runDelete("app1").stdout, /removed .*app1\.key/);
            assert.ok(!fs.existsSync(app1.key));
            assert.ok(fs.existsSync(dir), "the directory stays while other hosts' files are in it");
            // A symlink in the key's place is left alone (and so is what it points to).
            const app2 = host.sshFilePaths(dir, "app2");
            const victim = path.join(tempDir("elsewhere"), "victim");
            fs.writeFileSync(victim, "keep\n");
            fs.rmSync(app2.key);
            fs.symlinkSync(victim, app2.key);
            assert.match(runDelete("app2").stderr, /left .*app2\.key/);
            assert.equal(fs.readFileSync(victim, "utf8"), "keep\n");
            fs.rmSync(app2.key);
            if (isRoot) {
                const app3 = host.sshFilePaths(dir, "app3");
                fs.chownSync(app3.key, NOBODY, NOBODY);
                assert.match(runDelete("app3").stderr, /left .*app3\.key/);
                assert.ok(fs.existsSync(app3.key), "another user's file is not removed");
                fs.rmSync(app3.key);
            }
            for (const name of ["app3", "data1", "edge1"]) runDelete(name);
            // What is left is the hosts' known_hosts files (no secret); once they are gone too,
            // the directory goes with the last delete.
            assert.deepEqual(fs.readdirSync(dir).sort(), ["app1", "app2", "app3", "data1", "edge1"].map(h => `${h}.known_hosts`));
            for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
            assert.match(runDelete("app1").stdout, /already gone/, "a second run succeeds");
            assert.ok(!fs.existsSync(dir), "the emptied key directory is removed");
        } finally {
            process.env.GITLAB_CLUSTER_KEY_DIR = keyDir;
        }
    });

    it("with the SSH agent there is no key file and no command", async () => {
        const cfg = threeNodeConfig();
        cfg.ssh = { user: "root", useAgent: true };
        const e = await evaluate(cfg);
        assert.deepEqual(e.resources.filter(r => r.name.endsWith("-ssh-key")).map(r => r.name), []);
    });
});
