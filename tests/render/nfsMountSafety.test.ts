// M7 (issue 15): the NFS mounts of the GitLab hosts carry `nosuid,nodev`, so root in one GitLab
// container cannot plant a setuid program or a device node on the share that works on another
// node. Checked on the rendered fstab line, on the configuration that feeds it, and for real on
// a mount with the line's options.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, parseClusterConfig } from "../../components/config";
import { renderFstabLine } from "../../components/render/nfs";
import { threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";

/** The fixture's secrets (SSH and TLS keys) count as stored encrypted, as a stack holds them. */
const secretFlags = { isSecret: () => true };

/** The options field (4th) of an fstab line. */
function fstabOptions(line: string): string[] {
    const options = line.split(/\s+/)[3];
    assert.ok(options, `no options field in ${JSON.stringify(line)}`);
    return options.split(",");
}

function defaultFstabLine(): string {
    const cfg = parseClusterConfig(threeNodeConfig(), secretFlags);
    return renderFstabLine("10.0.0.11", cfg.nfs.path, cfg.nfs.mountOptions);
}

describe("NFS mounts: nosuid,nodev (M7)", () => {
    it("the default mount options render an fstab line with nosuid and nodev, and GitLab's options kept", () => {
        const options = fstabOptions(defaultFstabLine());
        for (const o of ["nosuid", "nodev", "vers=4.1", "hard", "lookupcache=positive", "_netdev"]) assert.ok(options.includes(o), `${o} in ${options.join(",")}`);
    });

    it("the configuration refuses mount options without nosuid or nodev, or undoing them, naming the key", () => {
        for (const mountOptions of [["vers=4.1", "hard"], ["vers=4.1", "hard", "nosuid"], ["hard", "nodev"], ["hard", "nosuid", "nodev", "suid"], ["hard", "nosuid", "nodev", "dev"], ["hard", "nosuid", "nodev", "defaults"]]) {
            const raw = threeNodeConfig();
            raw.nfs = { mountOptions };
            assert.throws(() => parseClusterConfig(raw, secretFlags), (err: unknown) => {
                assert.ok(err instanceof ConfigError, String(err));
                assert.match(err.message, /gitlab-cluster:nfs\.mountOptions: .*nosuid.*nodev/);
                return true;
            }, mountOptions.join(","));
        }
        const raw = threeNodeConfig();
        raw.nfs = { mountOptions: ["vers=4.2", "hard", "nosuid", "nodev"] };
        assert.deepEqual(parseClusterConfig(raw, secretFlags).nfs.mountOptions, ["vers=4.2", "hard", "nosuid", "nodev"]);
    });

    it("the fstab renderer refuses options without nosuid and nodev too (a caller that skipped the config)", () => {
        assert.throws(() => renderFstabLine("10.0.0.11", "/srv/gitlab-nfs", ["vers=4.1", "hard"]), /gitlab-cluster:nfs\.mountOptions.*nosuid.*nodev/);
        assert.throws(() => renderFstabLine("10.0.0.11", "/srv/gitlab-nfs", ["hard", "nosuid", "nodev", "suid"]), /suid/);
    });

    // This kernel cannot mount NFS: a bind mount of a local directory, remounted with the
    // rendered line's generic (VFS) options in a private mount namespace (`unshare -m`), stands
    // in for the NFS mount. nosuid and nodev are enforced by the VFS for every filesystem type,
    // NFS included, so the stand-in shows what the options do.
    it("for real: with the rendered options, a setuid-root program does not elevate and a device node does not open", (t) => {
        if (process.getuid?.() !== 0 || spawnSync("unshare", ["-m", "true"]).status !== 0) {
            t.skip("needs root and unshare -m");
            return;
        }
        const vfsFlags = new Set(["nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "ro", "rw"]);
        const applied = fstabOptions(defaultFstabLine()).filter(o => vfsFlags.has(o));
        const share = tempDir("nfs-share");
        fs.chmodSync(share, 0o755);
        // What root in another GitLab container could plant on the share: a setuid-root program
        // and a device node (here /dev/null's numbers, harmless), owned by root.
        const setuidId = path.join(share, "id");
        fs.copyFileSync("/usr/bin/id", setuidId);
        fs.chmodSync(setuidId, 0o4755);
        assert.equal(spawnSync("mknod", [path.join(share, "devnull"), "c", "1", "3"]).status, 0, "mknod");
        const probe = [
            "set -eu",
            `mount --bind "$1" "$1"`,
            `mount -o "remount,bind,$2" "$1"`,
            `findmnt -n -o OPTIONS -T "$1"`,
            // An unprivileged user (nobody) runs the setuid program: on a suid mount it reports euid=0.
            `setpriv --reuid=65534 --regid=65534 --clear-groups "$1/id"`,
            `if (: > "$1/devnull") 2>/dev/null; then echo "device: opened"; else echo "device: refused"; fi`,
        ].join("\n");
        const run = (options: string[]) => {
            const r = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", probe, "probe", share, options.join(",")], { encoding: "utf8", timeout: 20_000 });
            assert.equal(r.status, 0, r.stderr);
            return r.stdout;
        };
        // The check can fail: the same share with suid,dev elevates and opens the device.
        const open = run(["suid", "dev"]);
        assert.match(open, /euid=0\(root\)/);
        assert.match(open, /device: opened/);
        const out = run(applied);
        assert.match(out.split("\n")[0]!, /\bnosuid\b.*\bnodev\b|\bnodev\b.*\bnosuid\b/, out);
        assert.doesNotMatch(out, /euid=0/, "setuid bit ignored");
        assert.match(out, /^uid=65534/m);
        assert.match(out, /device: refused/);
    });
});
