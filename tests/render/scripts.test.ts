import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import * as scripts from "../../components/render/scripts";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

const everyScript: Record<string, string> = {
    writeFile: scripts.writeFileScript({ path: "/srv/gitlab/config/gitlab.rb", mode: "0600" }, scripts.restartIfRunningScript("c")),
    writeFileOwned: scripts.writeFileScript({ path: "/srv/x y/redis.conf", mode: "0600", owner: "999:999" }),
    removeFile: scripts.removeFileScript("/srv/x", "echo removed"),
    ensureDirs: scripts.ensureDirsScript(["/srv/a", "/srv/b"]),
    nfsExport: scripts.nfsExportScript({ exportPath: "/srv/gitlab-nfs", directories: ["git-data", "uploads"], exportsFile: "/etc/exports.d/gitlab-cluster.exports", exportsContent: "/srv/gitlab-nfs 10.0.0.12(rw)\n" }),
    nfsUnexport: scripts.nfsUnexportScript("/etc/exports.d/gitlab-cluster.exports"),
    nfsMount: scripts.nfsMountScript({ mountPath: "/srv/gitlab-nfs", fstabLine: "10.0.0.11:/srv/gitlab-nfs /srv/gitlab-nfs nfs hard 0 0" }),
    nfsUnmount: scripts.nfsUnmountScript("/srv/gitlab-nfs"),
    waitForReadiness: scripts.waitForReadinessScript("gitlab-gitlab-app1", 900),
    reconfigure: scripts.reconfigureScript("gitlab-gitlab-app1", 900),
    readIdentity: scripts.readIdentityScript("/srv/gitlab/config"),
    writeIdentity: scripts.writeIdentityScript("/srv/gitlab/config"),
};

function runSh(script: string, input?: string): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync("sh", ["-c", script], { input, encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("host scripts", () => {
    for (const [name, script] of Object.entries(everyScript)) {
        it(`${name}: sh -n and shellcheck accept it`, () => {
            const syntax = shSyntax(script);
            assert.equal(syntax.status, 0, syntax.stderr);
            const lint = shellcheck(script);
            assert.equal(lint.status, 0, lint.stdout);
        });
    }

    it("shellcheck finds a planted fault (the check can fail)", () => {
        assert.notEqual(shellcheck("#!/bin/sh\nrm -rf $1/*\n").status, 0);
    });

    it("writeFileScript writes stdin with its mode, and a second run changes nothing", () => {
        const file = path.join(tempDir("write"), "conf dir", "gitlab.rb");
        const script = scripts.writeFileScript({ path: file, mode: "0600" }, "echo CHANGED");
        const content = "secret = 'x'\n$(id) `id`\n";
        const first = runSh(script, content);
        assert.equal(first.status, 0, first.stderr);
        assert.match(first.stdout, /written: .*CHANGED/s);
        assert.equal(fs.readFileSync(file, "utf8"), content);
        assert.equal(fs.statSync(file).mode & 0o777, 0o600);
        // A service in a container (uid 999) must traverse the bind-mounted directory.
        assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o755);
        const inode = fs.statSync(file).ino;
        const second = runSh(script, content);
        assert.equal(second.status, 0, second.stderr);
        assert.match(second.stdout, /^unchanged: /);
        assert.doesNotMatch(second.stdout, /CHANGED/);
        assert.equal(fs.statSync(file).ino, inode, "an unchanged file is left in place");
        assert.deepEqual(fs.readdirSync(path.dirname(file)), ["gitlab.rb"], "no temp file is left behind");
        fs.chmodSync(file, 0o644);
        assert.match(runSh(script, content).stdout, /written: /, "a wrong mode is repaired");
        assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    });

    it("the identity scripts carry secrets and host keys from one node to another, byte for byte", () => {
        const source = tempDir("id-src");
        for (const f of scripts.SHARED_IDENTITY_FILES) fs.writeFileSync(path.join(source, f), `${f} content\n\u00fc`);
        const read = runSh(scripts.readIdentityScript(source));
        assert.equal(read.status, 0, read.stderr);
        const target = path.join(tempDir("id-dst"), "config");
        const write = runSh(scripts.writeIdentityScript(target), read.stdout);
        assert.equal(write.status, 0, write.stderr);
        assert.match(write.stdout, /written/);
        for (const f of scripts.SHARED_IDENTITY_FILES) {
            assert.equal(fs.readFileSync(path.join(target, f), "utf8"), `${f} content\n\u00fc`);
            assert.equal(fs.statSync(path.join(target, f)).mode & 0o777, f.endsWith(".pub") ? 0o644 : 0o600, f);
        }
        assert.match(runSh(scripts.writeIdentityScript(target), read.stdout).stdout, /unchanged/);
        fs.rmSync(path.join(source, "gitlab-secrets.json"));
        const missing = runSh(scripts.readIdentityScript(source));
        assert.notEqual(missing.status, 0);
        assert.match(missing.stderr, /gitlab-secrets\.json is missing/);
    });

    it("a reconfigure prints no line of gitlab-ctl's output (Chef's diffs hold secrets); on failure, its last lines without the diffs", () => {
        const bin = tempDir("bin");
        const secret = "S3cr3t-token-in-a-diff";
        // A stand-in docker: `exec ... gitlab-ctl reconfigure` prints what Chef prints for a changed
        // template, and fails when $FAIL is set; `exec ... curl` (the readiness probe) answers at once.
        fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh
case "$*" in
  *"gitlab-ctl reconfigure"*)
    printf '%s\\n' "  * template[/var/opt/gitlab/gitaly/config.toml] action create" "    - update content in file /var/opt/gitlab/gitaly/config.toml" \
      "    --- /var/opt/gitlab/gitaly/config.toml" "    +++ /var/opt/gitlab/gitaly/.chef-config.toml" "    @@ -1,3 +1,3 @@" \
      "    -token = 'old-${secret}'" "    +token = '${secret}'" "Running handlers:"
    if [ -n "\${FAIL:-}" ]; then echo "There was an error running gitlab-ctl reconfigure" >&2; exit 1; fi ;;
  *) exit 0 ;;
esac
`, { mode: 0o755 });
        const script = `PATH=${bin}:$PATH\n${scripts.reconfigureScript("gitlab-x", 5, "gitlab.rb sha256 0")}`;
        const ok = runSh(script);
        assert.equal(ok.status, 0, ok.stderr);
        assert.doesNotMatch(ok.stdout + ok.stderr, new RegExp(secret));
        assert.match(ok.stdout, /^gitlab-x: gitlab-ctl reconfigure done \(8 lines of output not shown/m);
        assert.match(ok.stdout, /^gitlab-x is ready$/m);
        const failed = runSh(`FAIL=1\nexport FAIL\n${script}`);
        assert.equal(failed.status, 1);
        assert.doesNotMatch(failed.stdout + failed.stderr, new RegExp(secret));
        assert.match(failed.stderr, /gitlab-ctl reconfigure failed; its last lines, file diffs left out/);
        assert.match(failed.stderr, /^ {2}\* template\[\/var\/opt\/gitlab\/gitaly\/config\.toml\] action create$/m);
        assert.match(failed.stderr, /^There was an error running gitlab-ctl reconfigure$/m);
        assert.doesNotMatch(failed.stdout, /is ready/, "no readiness wait after a failed reconfigure");
    });

    it("the readiness wait gives up after its timeout with a clear message", () => {
        const bin = tempDir("bin");
        fs.writeFileSync(path.join(bin, "docker"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
        const script = `PATH=${bin}:$PATH\n${scripts.waitForReadinessScript("gitlab-x", 1).replace("sleep 5", "sleep 1")}`;
        const r = runSh(script);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /gitlab-x did not answer \/-\/readiness within 1s/);
    });
});
