// The duration table maps each kind of step, and the installed @pulumi/command still forces a
// replace on `triggers` (the blast-radius table relies on it).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { durationOf } from "../../scripts/bench/durations";

const REMOTE = "command:remote:Command";

describe("duration table", () => {
    it("tells the migration node's first start from the others'", () => {
        const m = durationOf(REMOTE, "gitlab-gitlab-app1-ready", "create", "gitlab-gitlab-app1");
        const o = durationOf(REMOTE, "gitlab-gitlab-app2-ready", "create", "gitlab-gitlab-app1");
        assert.ok(m.seconds > o.seconds, `${m.seconds} > ${o.seconds}`);
        assert.match(m.rule!.step, /migration node/);
    });

    it("a rollout's update is a reconfigure and readiness wait, its create an echo", () => {
        assert.ok(durationOf(REMOTE, "gitlab-gitlab-app2-rollout", "update", "gitlab-gitlab-app1").seconds >= 60);
        assert.ok(durationOf(REMOTE, "gitlab-gitlab-app2-rollout", "replace", "gitlab-gitlab-app1").seconds <= 2);
    });

    it("unchanged and deleted resources cost nothing on the critical path", () => {
        assert.equal(durationOf(REMOTE, "gitlab-nfs-export", "same", "x").seconds, 0);
        assert.equal(durationOf(REMOTE, "gitlab-nfs-export", "delete", "x").seconds, 0);
        assert.ok(durationOf(REMOTE, "gitlab-nfs-export", "create", "x").seconds > durationOf(REMOTE, "gitlab-nfs-mount-app2", "create", "x").seconds);
    });
});

describe("@pulumi/command replace-on-change, as installed", () => {
    it("registers a remote Command with replaceOnChanges triggers[*]", async () => {
        const seen: string[][] = [];
        await pulumi.runtime.setMocks({ newResource: a => ({ id: `${a.name}-id`, state: a.inputs }), call: a => a.inputs }, "bench", "bench", false);
        const monitor = (pulumi.runtime as unknown as { getMonitor(): { registerResource(req: { getReplaceonchangesList(): string[] }, cb: unknown): void } }).getMonitor();
        const register = monitor.registerResource.bind(monitor);
        monitor.registerResource = (req, cb) => { seen.push(req.getReplaceonchangesList()); register(req, cb); };
        const cmd = new command.remote.Command("probe", { connection: { host: "h" }, create: "true", update: "true", triggers: ["x"] });
        await new Promise<void>(resolve => cmd.urn.apply(() => resolve()));
        assert.deepEqual(seen[0], ["triggers[*]"]);
    });
});
