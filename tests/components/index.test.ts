// index.ts, the program the engine runs: run here under the SDK's mocks in a child process (its
// config comes from PULUMI_CONFIG, as the engine passes it), to check what only its wiring does:
// print the config warnings, and turn a config error into a message naming the key.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { flatConfig } from "../../scripts/evaluate";
import { gitalyConfig, threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";

const DIST = path.join(__dirname, "..", "..");

/** Runs dist/index.js under mocks with this flat config; returns its exit status and stderr. */
function runProgram(flat: Record<string, string>): { status: number | null; stderr: string } {
    const runner = path.join(tempDir("index-runner"), "run.js");
    fs.writeFileSync(runner, `
const pulumi = require(${JSON.stringify(require.resolve("@pulumi/pulumi"))});
pulumi.runtime.setMocks({
    newResource: a => ({ id: a.name + "-id", state: a.type === "random:index/randomPassword:RandomPassword" ? { ...a.inputs, result: "pw-" + a.name } : { ...a.inputs, stdout: "", stderr: "" } }),
    call: a => a.inputs,
}, "gitlab-cluster", "test", false);
require(${JSON.stringify(path.join(DIST, "index.js"))});
`);
    const r = spawnSync(process.execPath, [runner], {
        encoding: "utf8", timeout: 60_000,
        env: {
            ...process.env, PULUMI_CONFIG: JSON.stringify(flat), GITLAB_CLUSTER_KEY_DIR: tempDir("index-keys"),
            PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(["gitlab-cluster:ssh", "gitlab-cluster:hosts", "gitlab-cluster:loadBalancer"]),
        },
    });
    return { status: r.status, stderr: r.stderr };
}

describe("index.ts under mocks", () => {
    it("warns about a key under a misspelled namespace, naming the key it was probably meant as", () => {
        const r = runProgram({ ...flatConfig(gitalyConfig()), "gitlab-clustr:roles": "{}" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /warning: .*gitlab-clustr:roles: is ignored: its namespace "gitlab-clustr" is not "gitlab-cluster".*did you mean gitlab-cluster:roles\?/);
        assert.doesNotMatch(r.stderr, /roles\.gitaly: is not set/, "the Gitaly layout gets no storage warning");
    });

    it("prints the configuration's warnings (here: repositories on NFS without roles.gitaly)", () => {
        const r = runProgram(flatConfig(threeNodeConfig()));
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /warning: .*gitlab-cluster:roles\.gitaly: is not set, so the Git repositories are on the NFS share/);
        assert.doesNotMatch(r.stderr, /is ignored/);
    });

    it("a config error fails the run as a RunError naming the key (the language host prints a RunError's message without a stack)", () => {
        const raw = gitalyConfig();
        raw.roles.gitaly = "app2";
        const r = runProgram(flatConfig(raw));
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /^RunError: gitlab-cluster:roles\.gitaly: "app2" is also in gitlab-cluster:roles\.gitlab/m);
        assert.match(r.stderr, /__pulumiRunError: true/, "thrown as pulumi.RunError, not a plain Error");
    });
});
