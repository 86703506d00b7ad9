// `ops status` in the Gitaly layout: the GitLab nodes' /-/readiness does not ask Gitaly (real
// GitLab checks it only with ?all=1), so the Gitaly node gets a row of its own.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import type { OpsInventory } from "../../components/cluster";
import { checkInventory, main } from "../../scripts/ops";
import type { HostRef, RunResult, Runner } from "../../scripts/ops/plan";
import { evaluate } from "../../scripts/evaluate";
import { gitalyConfig, threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");

class FakeRunner implements Runner {
    constructor(private readonly answer: (host: HostRef, script: string) => Partial<RunResult>) {}
    async run(host: HostRef, script: string): Promise<RunResult> {
        return { code: 0, stdout: "", stderr: "", ...this.answer(host, script) };
    }
}

describe("ops status with a Gitaly node", () => {
    let outputs: string;
    let inventory: OpsInventory;
    before(async () => {
        inventory = (await evaluate(gitalyConfig())).cluster.ops;
        outputs = path.join(tempDir("ops-gitaly"), "ops.json");
        fs.writeFileSync(outputs, JSON.stringify(inventory));
    });

    it("the inventory names the Gitaly node (host, container, port); the NFS layout has none", async () => {
        assert.deepEqual({ ...inventory.gitaly, ssh: undefined }, { name: "gitaly1", address: "10.0.0.31", container: "gitlab-gitaly", port: 8075, ssh: undefined });
        assert.equal((await evaluate(threeNodeConfig())).cluster.ops.gitaly, undefined);
        assert.throws(() => checkInventory({ ...inventory, gitaly: { ...inventory.gitaly, port: "8075" } }, "ops.json", "prod"), /ops\.gitaly\.port is string, not a number/);
    });

    // The GitLab nodes print their state and readiness code; the balancer prints its code.
    const nodesReady = (h: HostRef, script: string) => (h.name === "gitaly1" || !/readiness/.test(script) ? {}
        : { stdout: h.name === "edge1" ? "200\n" : "running/healthy\n200\n" });

    it("a running Gitaly: a row saying so, exit 0", async () => {
        const log: string[] = [];
        const runner = new FakeRunner((h, s) => (h.name === "gitaly1" && /gitlab-ctl status gitaly/.test(s) ? { stdout: "running/healthy\nrun\n" } : nodesReady(h, s)));
        assert.equal(await main(["status", "--stack", "t", "--outputs", outputs], () => runner, l => log.push(l)), 0);
        assert.match(log.join("\n"), /^gitaly gitaly1 +gitlab-gitaly +running\/healthy +Gitaly running$/m);
    });

    it("Gitaly down while every GitLab node answers ready: exit 1, the row says Gitaly is down", async () => {
        const log: string[] = [];
        const runner = new FakeRunner((h, s) => (h.name === "gitaly1" && /gitlab-ctl status gitaly/.test(s) ? { stdout: "running/unhealthy\ndown\n" } : nodesReady(h, s)));
        assert.equal(await main(["status", "--stack", "t", "--outputs", outputs], () => runner, l => log.push(l)), 1);
        assert.match(log.join("\n"), /^gitaly gitaly1 +gitlab-gitaly +running\/unhealthy +Gitaly down$/m);
        assert.match(log.join("\n"), /^app1 \(migration\) +gitlab-gitlab-app1 +running\/healthy +ready$/m);
    });
});
