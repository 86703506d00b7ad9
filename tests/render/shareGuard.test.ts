// A GitLab node with shared storage starts only where the share's sentinel file is: after a
// reboot whose NFS mount failed (`nofail`), the mount point is an empty local directory, and
// Omnibus would create fresh, empty storage there. The entrypoint is run here with sh, against a
// sentinel in a temp directory and a stand-in for the image's /assets/wrapper.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { SHARE_SENTINEL, SHARE_SENTINEL_FILE, SHARE_SENTINEL_IN_CONTAINER, shareGuardEntrypoint } from "../../components/render/nfs";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { CONTAINER, ofType, str } from "../support/graph";
import { shellcheck, tempDir } from "../support/readers";

function start(sentinel: string, wrapper: string) {
    const [shell, flag, script] = shareGuardEntrypoint("/srv/gitlab-nfs", sentinel, wrapper);
    const r = spawnSync(shell!, [flag!, script!], { encoding: "utf8", timeout: 10_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the share guard in front of Omnibus", () => {
    const dir = tempDir("guard");
    const wrapper = path.join(dir, "wrapper");
    fs.writeFileSync(wrapper, "#!/bin/sh\necho 'omnibus started'\n", { mode: 0o755 });

    it("starts Omnibus (exec, so its SIGTERM handler is PID 1) when the sentinel is a file", () => {
        const sentinel = path.join(dir, "present");
        fs.writeFileSync(sentinel, "gitlab-cluster shared storage\n");
        const r = start(sentinel, wrapper);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "omnibus started\n");
        assert.match(shareGuardEntrypoint("/srv/gitlab-nfs")[2]!, /\nexec \/assets\/wrapper$/);
    });

    it("refuses, saying why and what to do, when the share is not mounted (no sentinel)", () => {
        const r = start(path.join(dir, "missing"), wrapper);
        assert.equal(r.status, 1);
        assert.equal(r.stdout, "", "Omnibus never ran");
        assert.match(r.stderr, /shared storage is not mounted on this host \(\/srv\/gitlab-nfs\/\.gitlab-cluster-share\/this-is-the-shared-storage is missing\).*mount \/srv\/gitlab-nfs/);
    });

    it("refuses when the marker directory is the empty one Docker made at the missing bind source", () => {
        fs.mkdirSync(path.join(dir, "made-by-docker"));
        const sentinel = path.join(dir, "made-by-docker", SHARE_SENTINEL_FILE);
        const r = start(sentinel, wrapper);
        assert.equal(r.status, 1);
        assert.equal(r.stdout, "");
    });

    it("passes shellcheck", () => {
        const lint = shellcheck(`#!/bin/sh\n${shareGuardEntrypoint("/srv/gitlab-nfs")[2]!}\n`);
        assert.equal(lint.status, 0, lint.stdout);
    });
});

describe("the three-node cluster guards its shared storage", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(threeNodeConfig()); });

    it("every node mounts the sentinel read-only and starts through the guard; the export creates the sentinel", () => {
        for (const c of ofType(e, CONTAINER).filter(r => r.name.startsWith("gitlab-gitlab-"))) {
            const volumes = c.inputs.volumes as { hostPath?: string; containerPath: string; readOnly?: boolean }[];
            const sentinel = volumes.find(v => v.containerPath === SHARE_SENTINEL_IN_CONTAINER);
            assert.deepEqual(sentinel, { hostPath: `/srv/gitlab-nfs/${SHARE_SENTINEL}`, containerPath: SHARE_SENTINEL_IN_CONTAINER, readOnly: true }, c.name);
            assert.match(shareGuardEntrypoint("/srv/gitlab-nfs")[2]!, new RegExp(`-f ${SHARE_SENTINEL_IN_CONTAINER}/${SHARE_SENTINEL_FILE} `));
            assert.deepEqual(c.inputs.entrypoints, shareGuardEntrypoint("/srv/gitlab-nfs"), c.name);
        }
        assert.match(str(e.byName("gitlab-nfs-export"), "create"), /\[ -f \/srv\/gitlab-nfs\/\.gitlab-cluster-share\/this-is-the-shared-storage \] \|\| printf/);
    });

    it("a single node without shared storage keeps the image's own start", async () => {
        const cfg = threeNodeConfig();
        cfg.roles.gitlab = ["app1"];
        delete cfg.roles.nfsServer;
        const single = await evaluate(cfg);
        const node = single.byName("gitlab-gitlab-app1");
        assert.equal(node.inputs.entrypoints, undefined);
        assert.ok(!(node.inputs.volumes as { containerPath: string }[]).some(v => v.containerPath === SHARE_SENTINEL_IN_CONTAINER));
    });
});
