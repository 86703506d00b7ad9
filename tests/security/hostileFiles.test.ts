// Security review, issue 15, H2 and L9: the root scripts around backups, restore and the shared
// identity, run for real (sh, tar, find, setpriv) against files a hostile container `git` user
// (uid 998) plants in the directories it can write. Each test plants as git, runs the real
// script as root, and checks that nothing leaked to git and nothing outside was touched.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { etcBackupsDirOf, renderBackupScript, renderReceiverScript } from "../../components/render/backup";
import { readIdentityScript, SHARED_IDENTITY_FILES, writeIdentityScript } from "../../components/render/scripts";
import { execute, restorePlan } from "../../scripts/ops/plan";
import { shellcheck, shSyntax, tempDir } from "../support/readers";
import {
    BACKUP_ID, dockerDouble, ETC_FILES, fileState, GIT_UID, LocalRunner, localInventory, nodeLayout, SECRET, secretsReadableByGit, shAsGit, type NodeLayout,
} from "./dockerDouble";

function sh(script: string, env: Record<string, string> = {}, input?: string, argv0: string[] = []) {
    const [cmd, ...args] = [...argv0, "sh", "-c", script];
    const r = spawnSync(cmd!, args, { encoding: "utf8", env: { ...process.env, ...env }, input });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every entry under `dir` (recursively, symlinks not followed) with its owner and type. */
function entries(dir: string): { path: string; uid: number; symlink: boolean }[] {
    const out: { path: string; uid: number; symlink: boolean }[] = [];
    for (const name of fs.readdirSync(dir)) {
        const p = path.join(dir, name);
        const st = fs.lstatSync(p);
        out.push({ path: p, uid: st.uid, symlink: st.isSymbolicLink() });
        if (st.isDirectory()) out.push(...entries(p));
    }
    return out;
}

function backupScript(node: NodeLayout): string {
    return renderBackupScript({ container: "gitlab-gitlab-app1", backupsDir: node.backups, etcBackupsDir: etcBackupsDirOf(node.dataRoot), etcDir: node.config, keepDays: 7 });
}

describe("H2: the backup cron job (root) never writes where git can", () => {
    it("passes sh -n and shellcheck", () => {
        const node = nodeLayout(tempDir("h2-lint"));
        assert.equal(shSyntax(backupScript(node)).status, 0);
        const lint = shellcheck(backupScript(node));
        assert.equal(lint.status, 0, lint.stdout);
    });

    it("a symlink git plants at the /etc/gitlab archive's names overwrites and chmods no host file", () => {
        const node = nodeLayout(tempDir("h2-backup-victim"));
        const victim = path.join(node.outside, "victim");
        const before = fileState(victim);
        // GitLab runs as git: right after its archive appears, git points the names root would write at a host file.
        const docker = dockerDouble(node.dataRoot, {
            dataDir: node.data, etcDir: node.config,
            onCreate: `for n in "$1_gitlab_etc.tar.tmp" "$1_gitlab_etc.tar"; do ln -s ${victim} "$BACKUPS/$n"; done`,
        });
        const r = sh(backupScript(node), docker.env);
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.deepEqual(fileState(victim), before, "the host file outside was overwritten or chmod-ed through git's symlink");
        const etcArchive = path.join(etcBackupsDirOf(node.dataRoot), `${BACKUP_ID}_gitlab_etc.tar`);
        const st = fs.lstatSync(etcArchive);
        assert.ok(st.isFile() && st.uid === 0 && (st.mode & 0o777) === 0o600, "the /etc/gitlab archive is root's, 0600, in the root-only directory");
        const dir = fs.statSync(etcBackupsDirOf(node.dataRoot));
        assert.equal(dir.uid, 0);
        assert.equal(dir.mode & 0o777, 0o700);
        assert.deepEqual(entries(node.backups).filter(e => e.uid !== GIT_UID), [], "root wrote into git's backups directory");
    });

    it("a symlink git plants to a file of its own collects no secret", () => {
        const node = nodeLayout(tempDir("h2-backup-loot"));
        const loot = path.join(node.gitHome, "loot");
        const docker = dockerDouble(node.dataRoot, {
            dataDir: node.data, etcDir: node.config,
            onCreate: `: > ${loot}; chmod 666 ${loot}; ln -s ${loot} "$BACKUPS/$1_gitlab_etc.tar.tmp"`,
        });
        const r = sh(backupScript(node), docker.env);
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.deepEqual(secretsReadableByGit(path.dirname(node.dataRoot)), [], "git can read a file that holds a secret");
    });

    it("an archive git swaps for a symlink is not read, so no host file goes off-host", () => {
        const node = nodeLayout(tempDir("h2-backup-offhost"));
        const hostSecret = path.join(node.outside, "host-secret");
        fs.writeFileSync(hostSecret, `${SECRET} host file\n`, { mode: 0o600 });
        const store = path.join(path.dirname(node.dataRoot), "target-store");
        const docker = dockerDouble(node.dataRoot, {
            dataDir: node.data, etcDir: node.config,
            onCreate: `rm "$BACKUPS/$1_gitlab_backup.tar"; ln -s ${hostSecret} "$BACKUPS/$1_gitlab_backup.tar"`,
        });
        const ssh = sshToReceiver(node.dataRoot, store);
        const script = renderBackupScript({
            container: "gitlab-gitlab-app1", backupsDir: node.backups, etcBackupsDir: etcBackupsDirOf(node.dataRoot), etcDir: node.config, keepDays: 7,
            target: { address: "10.0.0.21", user: "root", port: 22, path: store },
        });
        const r = sh(script, { ...docker.env, PATH: `${ssh}:${docker.env.PATH}` });
        const stored = fs.existsSync(store) ? fs.readdirSync(store).map(f => fs.readFileSync(path.join(store, f), "utf8")) : [];
        assert.ok(!stored.some(c => c.includes("host file")), "a host file was copied off-host through git's symlink");
        assert.notEqual(r.status, 0, "the backup went on with a symlink for an archive");
        assert.match(r.stdout, /no archive appeared/);
    });
});

/**
 * An `ssh` test double that hands the remote command to the real receiver script, as sshd does
 * with a forced command: a real round trip between the backup script and the receiver.
 */
function sshToReceiver(root: string, store: string): string {
    const bin = path.join(root, "ssh-double-bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "receiver"), renderReceiverScript(store), { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "ssh"), `#!/bin/sh
# ssh test double: skips the options up to user@host, runs the receiver with the rest as SSH_ORIGINAL_COMMAND.
while [ "$#" -gt 0 ]; do case "$1" in *@*) shift; break ;; *) shift ;; esac; done
SSH_ORIGINAL_COMMAND="$*" exec sh ${bin}/receiver
`, { mode: 0o755 });
    return bin;
}


/** A /etc/gitlab archive made as the backup made it (root's, 0600), from files labelled `label`. */
function etcArchive(label: string, dest: string): void {
    const src = tempDir("etc-src");
    for (const f of ETC_FILES) fs.writeFileSync(path.join(src, f), f === "gitlab.rb" ? `# gitlab.rb in the archive (${label})\n` : `${SECRET} ${label} ${f}\n`);
    fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
    const r = spawnSync("tar", ["-cf", dest, "-C", src, ...ETC_FILES], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    fs.chmodSync(dest, 0o600);
}

describe("H2: restore trusts nothing git can write", () => {
    it("its scripts pass sh -n and shellcheck", () => {
        const node = nodeLayout(tempDir("h2-restore-lint"));
        for (const step of restorePlan(localInventory(node), BACKUP_ID, 5)) {
            assert.equal(shSyntax(step.script).status, 0, step.title);
            const lint = shellcheck(step.script.startsWith("#!") ? step.script : `#!/bin/sh\n${step.script}`);
            assert.equal(lint.status, 0, `${step.title}\n${lint.stdout}`);
        }
    });

    it("ignores the /etc/gitlab archive git swapped, and chowns nothing through git's symlink", async () => {
        const node = nodeLayout(tempDir("h2-restore-hostile"), "running");
        const victim = path.join(node.outside, "victim");
        const before = fileState(victim);
        const renderedRb = fs.readFileSync(path.join(node.config, "gitlab.rb"), "utf8");
        // The backup's own archive, where this version keeps it and where earlier ones did.
        etcArchive("backup", path.join(etcBackupsDirOf(node.dataRoot), `${BACKUP_ID}_gitlab_etc.tar`));
        etcArchive("backup", path.join(node.backups, `${BACKUP_ID}_gitlab_etc.tar`));
        // git swaps the /etc/gitlab archive for one of its own (code in gitlab.rb, its secrets, a
        // symlink for a host key) and the data archive for a symlink to a host file.
        shAsGit(`set -e; cd ${node.gitHome}; mkdir crafted; cd crafted
for f in ${SHARED_IDENTITY_FILES.join(" ")}; do echo "git's $f" > "$f"; done
echo "system('id > /tmp/pwned')" > gitlab.rb
rm ssh_host_rsa_key.pub; ln -s ${victim} ssh_host_rsa_key.pub
rm -f ${node.backups}/${BACKUP_ID}_gitlab_etc.tar ${node.backups}/${BACKUP_ID}_gitlab_backup.tar
tar -cf ${node.backups}/${BACKUP_ID}_gitlab_etc.tar gitlab.rb ${SHARED_IDENTITY_FILES.join(" ")}
ln -s ${victim} ${node.backups}/${BACKUP_ID}_gitlab_backup.tar`);
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        await execute(restorePlan(localInventory(node), BACKUP_ID, 5), new LocalRunner(docker.env), () => undefined).catch(() => undefined);
        assert.deepEqual(fileState(victim), before, "the host file was chowned or changed through git's symlink");
        assert.equal(fs.readFileSync(path.join(node.config, "gitlab.rb"), "utf8"), renderedRb, "gitlab.rb was taken from an archive");
        const config = entries(node.config);
        assert.deepEqual(config.filter(e => e.symlink).map(e => e.path), [], "a symlink was extracted into /etc/gitlab");
        assert.deepEqual(config.filter(e => e.uid !== 0).map(e => e.path), [], "a file in /etc/gitlab is not root's");
        assert.ok(!fs.readFileSync(path.join(node.config, "gitlab-secrets.json"), "utf8").includes("git's"), "git's secrets were restored");
    });

    it("restores gitlab-secrets.json and the host keys from the root-only archive, keeps the program's gitlab.rb, reconfigures", async () => {
        const node = nodeLayout(tempDir("h2-restore"), "running");
        const renderedRb = fs.readFileSync(path.join(node.config, "gitlab.rb"), "utf8");
        etcArchive("backup", path.join(etcBackupsDirOf(node.dataRoot), `${BACKUP_ID}_gitlab_etc.tar`));
        // Where earlier versions kept it, so that they too find an archive to restore.
        etcArchive("backup", path.join(node.backups, `${BACKUP_ID}_gitlab_etc.tar`));
        shAsGit(`umask 077; echo "gitlab data" > ${node.backups}/${BACKUP_ID}_gitlab_backup.tar`);
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        const log: string[] = [];
        await execute(restorePlan(localInventory(node), BACKUP_ID, 5), new LocalRunner(docker.env), l => log.push(l));
        assert.equal(fs.readFileSync(path.join(node.config, "gitlab.rb"), "utf8"), renderedRb, "gitlab.rb is the program's, not the archive's");
        for (const f of SHARED_IDENTITY_FILES) {
            const st = fs.lstatSync(path.join(node.config, f));
            assert.equal(fs.readFileSync(path.join(node.config, f), "utf8"), `${SECRET} backup ${f}\n`, f);
            assert.ok(st.isFile() && st.uid === 0, f);
            assert.equal(st.mode & 0o777, f.endsWith(".pub") ? 0o644 : 0o600, f);
        }
        const calls = docker.calls();
        const reconfigure = calls.findIndex(c => c.endsWith("gitlab-ctl reconfigure"));
        const restore = calls.findIndex(c => c.endsWith(`gitlab-backup restore BACKUP=${BACKUP_ID}`));
        assert.ok(reconfigure >= 0 && restore > reconfigure, calls.join("\n"));
        assert.equal(fs.readFileSync(path.join(node.data, "restored-from"), "utf8"), "gitlab data\n");
        assert.ok(!calls.some(c => /\bchown\b/.test(c)), "nothing is chowned");
    });

    it("hands an off-host copy put back in the root-only directory to git, written by git; git's symlink for it leads nowhere", async () => {
        const node = nodeLayout(tempDir("h2-restore-staged"));
        const victim = path.join(node.outside, "victim");
        const before = fileState(victim);
        const etcBackups = etcBackupsDirOf(node.dataRoot);
        etcArchive("backup", path.join(etcBackups, `${BACKUP_ID}_gitlab_etc.tar`));
        fs.writeFileSync(path.join(etcBackups, `${BACKUP_ID}_gitlab_backup.tar`), "off-host copy\n", { mode: 0o600 });
        shAsGit(`ln -s ${victim} ${node.backups}/${BACKUP_ID}_gitlab_backup.tar.part`);
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        await assert.rejects(execute(restorePlan(localInventory(node), BACKUP_ID, 5), new LocalRunner(docker.env), () => undefined), /step 2 failed: hand/);
        assert.deepEqual(fileState(victim), before);
        shAsGit(`rm ${node.backups}/${BACKUP_ID}_gitlab_backup.tar.part`);
        await execute(restorePlan(localInventory(node), BACKUP_ID, 5), new LocalRunner(docker.env), () => undefined);
        const handed = fs.lstatSync(path.join(node.backups, `${BACKUP_ID}_gitlab_backup.tar`));
        assert.ok(handed.isFile() && handed.uid === GIT_UID, "the archive is git's own");
        assert.equal(fs.readFileSync(path.join(node.data, "restored-from"), "utf8"), "off-host copy\n");
    });
});

/** The identity bundle (base64 tar) as git would craft it: `tweak` runs as git in the bundle's directory first. */
function craftedBundle(node: NodeLayout, tweak: string): string {
    return shAsGit(`set -e; d=$(mktemp -d ${node.gitHome}/bundle.XXXXXX); cd "$d"
for f in ${SHARED_IDENTITY_FILES.join(" ")}; do echo "bundle $f" > "$f"; done
${tweak}
tar -cf - ${SHARED_IDENTITY_FILES.join(" ")} | base64 | tr -d '\\n'`);
}

describe("H2: identity sync refuses symlinks, in the bundle and in /etc/gitlab", () => {
    it("passes sh -n and shellcheck (both sources)", () => {
        for (const s of [writeIdentityScript("/srv/gitlab/config"), writeIdentityScript("/srv/gitlab/config", { archive: "/srv/gitlab/etc-backups/x_gitlab_etc.tar" }), readIdentityScript("/srv/gitlab/config")]) {
            assert.equal(shSyntax(s).status, 0);
            const lint = shellcheck(s);
            assert.equal(lint.status, 0, lint.stdout);
        }
    });

    it("a symlink in the bundle is not chmod-ed through nor moved into place", () => {
        const node = nodeLayout(tempDir("h2-identity-bundle"));
        const victim = path.join(node.outside, "victim");
        const before = fileState(victim);
        const configBefore = ETC_FILES.map(f => fileState(path.join(node.config, f)));
        const bundle = craftedBundle(node, `rm ssh_host_rsa_key.pub; ln -s ${victim} ssh_host_rsa_key.pub`);
        const r = sh(writeIdentityScript(node.config), {}, bundle);
        assert.deepEqual(fileState(victim), before, "the host file was chmod-ed through the bundle's symlink");
        assert.deepEqual(ETC_FILES.map(f => fileState(path.join(node.config, f))), configBefore, "/etc/gitlab changed");
        assert.notEqual(r.status, 0, "a bundle with a symlink was accepted");
    });

    it("a symlink to a directory in /etc/gitlab does not carry a key out of it", () => {
        const node = nodeLayout(tempDir("h2-identity-dest"));
        const outsideBefore = fs.readdirSync(node.outside);
        // git could write /etc/gitlab for a moment: it leaves a symlink behind for a host key.
        fs.chownSync(node.config, GIT_UID, GIT_UID);
        shAsGit(`cd ${node.config} && mv ssh_host_ed25519_key ssh_host_ed25519_key.old && ln -s ${node.outside} ssh_host_ed25519_key`);
        const bundle = craftedBundle(node, "");
        const whileGits = sh(writeIdentityScript(node.config), {}, bundle);
        assert.deepEqual(fs.readdirSync(node.outside), outsideBefore, "a key landed outside /etc/gitlab");
        assert.notEqual(whileGits.status, 0, "wrote into a directory another user can write");
        fs.chownSync(node.config, 0, 0);
        const r = sh(writeIdentityScript(node.config), {}, bundle);
        assert.deepEqual(fs.readdirSync(node.outside), outsideBefore, "a key landed outside /etc/gitlab");
        assert.notEqual(r.status, 0, "wrote through a symlink in /etc/gitlab");
        assert.match(r.stderr, /refused: .*ssh_host_ed25519_key is not a regular file/);
    });

    it("with a clean bundle and destination, writes 0600/0644 root files and leaves gitlab.rb alone", () => {
        const node = nodeLayout(tempDir("h2-identity-ok"));
        const rb = fileState(path.join(node.config, "gitlab.rb"));
        const r = sh(writeIdentityScript(node.config), {}, craftedBundle(node, "echo 'not taken' > gitlab.rb"));
        assert.equal(r.status, 0, r.stderr);
        for (const f of SHARED_IDENTITY_FILES) {
            const st = fs.lstatSync(path.join(node.config, f));
            assert.equal(fs.readFileSync(path.join(node.config, f), "utf8"), `bundle ${f}\n`);
            assert.ok(st.isFile() && st.uid === 0 && (st.mode & 0o777) === (f.endsWith(".pub") ? 0o644 : 0o600), f);
        }
        assert.deepEqual(fileState(path.join(node.config, "gitlab.rb")), rb);
    });
});

describe("L9: read-identity prints the secrets whole or not at all", () => {
    it("a failure midway (an unreadable key) prints nothing on stdout and no secret on stderr", () => {
        const node = nodeLayout(tempDir("l9-read"));
        // Run as a user who cannot read one key: tar fails after it has archived gitlab-secrets.json.
        for (const f of fs.readdirSync(node.config)) fs.chownSync(path.join(node.config, f), GIT_UID, GIT_UID);
        fs.chownSync(node.config, GIT_UID, GIT_UID);
        fs.chmodSync(path.join(node.config, "ssh_host_rsa_key"), 0o000);
        const r = sh(readIdentityScript(node.config), {}, undefined, ["setpriv", `--reuid=${GIT_UID}`, `--regid=${GIT_UID}`, "--clear-groups", "--"]);
        assert.equal(r.stdout, "", "part of the bundle was printed");
        assert.notEqual(r.status, 0, "the read reported success");
        assert.ok(!r.stderr.includes(SECRET) && !r.stderr.includes(Buffer.from(SECRET).toString("base64").slice(0, 12)), r.stderr);
    });

    it("a symlink among the files is refused, not archived", () => {
        const node = nodeLayout(tempDir("l9-read-symlink"));
        fs.rmSync(path.join(node.config, "gitlab-secrets.json"));
        fs.symlinkSync(path.join(node.outside, "victim"), path.join(node.config, "gitlab-secrets.json"));
        const r = sh(readIdentityScript(node.config));
        assert.equal(r.stdout, "", "a bundle with a symlink in it was printed");
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /refused: gitlab-secrets\.json .* is a symlink/);
    });
});
