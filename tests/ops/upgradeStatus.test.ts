// `npm run ops -- upgrade-status`: each node's release and, on the deploy node, the migrations an
// upgrade waits for; through main() with a fake runner, and its script run by sh against a fake docker.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { main } from "../../scripts/ops";
import type { HostRef, Runner, RunResult } from "../../scripts/ops/plan";
import { upgradeStatusScript } from "../../scripts/ops/upgradeStatus";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { shellcheck, tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");

/** Answers each host's status script with the stdout given for that host. */
class StatusRunner implements Runner {
    readonly hosts: string[] = [];
    constructor(private readonly stdout: Record<string, Partial<RunResult>>) {}
    async run(host: HostRef): Promise<RunResult> {
        this.hosts.push(host.name);
        return { code: 0, stdout: "", stderr: "", ...this.stdout[host.name] };
    }
}

describe("ops upgrade-status", () => {
    let outputsFile: string;
    before(async () => {
        const e = await evaluate(threeNodeConfig());
        outputsFile = path.join(tempDir("ops"), "outputs.json");
        fs.writeFileSync(outputsFile, JSON.stringify({ ops: e.cluster.ops }));
    });
    const run = async (answers: Record<string, Partial<RunResult>>) => {
        const log: string[] = [];
        const runner = new StatusRunner(answers);
        const code = await main(["upgrade-status", "--stack", "t", "--outputs", outputsFile], () => runner, l => log.push(l));
        return { code, log, runner };
    };
    const settled = "state=running\nversion=18.5.0\n";

    it("says ready for the next upgrade when every node runs one release and nothing is pending (exit 0)", async () => {
        const r = await run({ app1: { stdout: `${settled}post_deployment_pending=0\nbackground_unfinished=0\n` }, app2: { stdout: settled }, app3: { stdout: settled } });
        assert.equal(r.code, 0);
        assert.deepEqual(r.log, [
            "app1 (deploy node): running, GitLab 18.5.0, post-deployment migrations pending: 0, batched background migrations unfinished: 0",
            "app2: running, GitLab 18.5.0", "app3: running, GitLab 18.5.0", "ready for the next upgrade",
        ]);
        assert.deepEqual(r.runner.hosts.sort(), ["app1", "app2", "app3"]);
    });

    it("shows an upgrade under way: mixed releases, post-deployment migrations and background migrations pending (exit 1)", async () => {
        const r = await run({
            app1: { stdout: `${settled}post_deployment_pending=4\nbackground_unfinished=2\n` }, app2: { stdout: settled },
            app3: { stdout: "state=running\nversion=18.4.1\n" },
        });
        assert.equal(r.code, 1);
        assert.ok(r.log.includes("app3: running, GitLab 18.4.1"));
        assert.ok(r.log.some(l => /different releases \(18\.5\.0, 18\.4\.1\).*pulumi up resumes it/.test(l)), r.log.join("\n"));
        assert.ok(r.log.some(l => /post-deployment migrations pending: pulumi up runs them/.test(l)));
        assert.ok(r.log.some(l => /batched background migrations running: the next upgrade's preflight waits/.test(l)));
    });

    it("names a node it cannot reach or that is not running, and goes on with the others", async () => {
        const r = await run({
            app1: { stdout: `${settled}post_deployment_pending=unknown\nbackground_unfinished=0\n` },
            app2: { unreachable: "Connection refused", code: 255 }, app3: { stdout: "state=exited\n" },
        });
        assert.equal(r.code, 1);
        assert.match(r.log.find(l => l.startsWith("app2"))!, /^app2: unreachable, could not reach app2 .*Connection refused/);
        assert.ok(r.log.includes("app3: exited"));
        assert.ok(r.log.includes("app1 (deploy node): running, GitLab 18.5.0, post-deployment migrations pending: unknown, batched background migrations unfinished: 0"));
        assert.ok(r.log.some(l => /could not read the migrations on the deploy node/.test(l)));
    });

    it("its script passes shellcheck and counts down migrations and unfinished background migrations from a fake docker", () => {
        for (const deploy of [true, false]) assert.equal(shellcheck(`#!/bin/sh\n${upgradeStatusScript("gitlab-gitlab-app1", deploy)}`).status, 0, shellcheck(`#!/bin/sh\n${upgradeStatusScript("gitlab-gitlab-app1", deploy)}`).stdout);
        const dir = tempDir("fake-docker");
        fs.writeFileSync(path.join(dir, "docker"), `#!/bin/sh
case "$*" in
    "inspect -f {{.State.Status}} gitlab-gitlab-app1") echo running ;;
    *"cat /opt/gitlab/embedded/service/gitlab-rails/VERSION") echo 18.5.0 ;;
    *"env -u SKIP_POST_DEPLOYMENT_MIGRATIONS gitlab-rake db:migrate:status") printf 'database: main\\n Status   Migration ID    Migration Name\\n   up     20250101000000  A\\n  down    20250901000000  B\\n  down    20250902000000  C\\n' ;;
    *"gitlab-rake gitlab:background_migrations:status") printf 'Database: main\\nstatus | migration\\nfinished | X\\nactive | Y\\n' ;;
    *) echo "unexpected: $*" >&2; exit 2 ;;
esac
`, { mode: 0o755 });
        const r = spawnSync("sh", ["-c", upgradeStatusScript("gitlab-gitlab-app1", true)], { encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "state=running\nversion=18.5.0\npost_deployment_pending=2\nbackground_unfinished=1\n");
    });
});
