// `npm run ops` talks to hosts over SSH and reads a saved inventory: it needs no Pulumi SDK, and
// must not load one just to compute where the SSH key files are (issue 13, item 6). Their paths
// come from components/sshFiles.ts, which the program (components/host.ts) uses too.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { describe, it } from "node:test";
import * as host from "../../components/host";
import * as sshFiles from "../../components/sshFiles";

const ops = path.resolve(__dirname, "..", "..", "scripts", "ops.js");

/** The packages under node_modules that requiring `file` loads, in a fresh process. */
function packagesLoadedBy(file: string): string[] {
    const probe = `require(${JSON.stringify(file)});
const names = Object.keys(require.cache).map(f => /[\\\\/]node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(f)?.[1]).filter(Boolean);
process.stdout.write(JSON.stringify([...new Set(names.map(n => n.replace(/\\\\/g, "/")))].sort()));`;
    const r = spawnSync(process.execPath, ["-e", probe], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string[];
}

describe("ops loads no Pulumi SDK", () => {
    it("requiring scripts/ops.js loads none of @pulumi/pulumi, @pulumi/docker, @pulumi/command", () => {
        const loaded = packagesLoadedBy(ops);
        assert.deepEqual(loaded.filter(n => n.startsWith("@pulumi/")), [], loaded.join(", "));
        assert.ok(loaded.includes("zod"), `the probe sees packages at all (${loaded.join(", ")})`);
    });

    it("the program and ops compute the SSH files' paths with the same functions", () => {
        assert.equal(host.sshFilesDir, sshFiles.sshFilesDir);
        assert.equal(host.sshFilePaths, sshFiles.sshFilePaths);
        assert.deepEqual(sshFiles.sshFilePaths("/keys", "app1"), { key: "/keys/app1.key", knownHosts: "/keys/app1.known_hosts" });
    });
});
