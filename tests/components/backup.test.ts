import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { etcBackupsDirOf, renderAuthorizedKeyLine, renderBackupScript, renderReceiverScript, renderTargetPruneCron } from "../../components/render/backup";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { str } from "../support/graph";
import { loadGitlabRb, shellcheck, shSyntax, tempDir } from "../support/readers";
import { BACKUP_ID, dockerDouble, ETC_FILES, GIT_UID, nodeLayout } from "../security/dockerDouble";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");

function withBackup(backup: Record<string, unknown>) {
    const cfg = threeNodeConfig();
    cfg.backup = backup;
    return cfg;
}

const hostOf = (e: Evaluation, name: string) => (e.byName(name).inputs.connection as { host: string }).host;

describe("scheduled backups (Pulumi resources)", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(withBackup({ schedule: "30 2 * * *", keepDays: 14, target: { host: "data1", path: "/srv/backups" } })); });

    it("installs the script and cron entry on the migration node only", () => {
        const backupResources = e.resources.filter(r => r.name.startsWith("gitlab-backup-") && r.type.startsWith("command:"));
        assert.deepEqual(backupResources.map(r => r.name).sort(), [
            "gitlab-backup-authorize", "gitlab-backup-cron-installed", "gitlab-backup-key", "gitlab-backup-receiver", "gitlab-backup-schedule",
            "gitlab-backup-script", "gitlab-backup-target-cron-installed", "gitlab-backup-target-prune",
        ]);
        for (const n of ["gitlab-backup-script", "gitlab-backup-schedule", "gitlab-backup-key", "gitlab-backup-cron-installed"]) assert.equal(hostOf(e, n), "10.0.0.11", n);
        for (const n of ["gitlab-backup-receiver", "gitlab-backup-authorize", "gitlab-backup-target-cron-installed", "gitlab-backup-target-prune"]) assert.equal(hostOf(e, n), "10.0.0.21", n);
        assert.equal(str(e.byName("gitlab-backup-schedule"), "stdin").split("\n")[3], "30 2 * * * root /usr/local/sbin/gitlab-cluster-backup >> /var/log/gitlab-cluster-backup.log 2>&1");
        assert.match(str(e.byName("gitlab-backup-schedule"), "delete"), /rm -f \/etc\/cron\.d\/gitlab-cluster-backup/);
    });

    it("sets backup_keep_time on the backup node's gitlab.rb only", () => {
        assert.equal(loadGitlabRb(str(e.byName("gitlab-gitlab-app1-gitlab-rb"), "stdin")).gitlab_rails.backup_keep_time, 14 * 86400);
        assert.equal(loadGitlabRb(str(e.byName("gitlab-gitlab-app2-gitlab-rb"), "stdin")).gitlab_rails.backup_keep_time, undefined);
    });

    it("backs up on another node when asked", async () => {
        const other = await evaluate(withBackup({ node: "app3" }));
        assert.equal(hostOf(other, "gitlab-backup-script"), "10.0.0.13");
        assert.match(str(other.byName("gitlab-backup-script"), "stdin"), /container=gitlab-gitlab-app3/);
    });

    it("a schedule change updates the cron entry in place and touches nothing else", async () => {
        const after = await evaluate(withBackup({ schedule: "0 4 * * 0", keepDays: 14, target: { host: "data1", path: "/srv/backups" } }));
        const afterByUrn = new Map(after.resources.map(r => [r.urn, JSON.stringify(r.inputs)]));
        const changed = e.resources.filter(r => JSON.stringify(r.inputs) !== afterByUrn.get(r.urn)).map(r => r.name);
        assert.deepEqual(changed, ["gitlab-backup-schedule"]);
        assert.ok(!/remote prune/.test(str(e.byName("gitlab-backup-script"), "stdin")), "the backup node never asks the target to prune");
        assert.deepEqual(e.byName("gitlab-backup-schedule").inputs.triggers, undefined, "no replace trigger: the command updates");
    });

    it("no backup config, no backup resources (removing it deletes the cron entry)", async () => {
        const none = await evaluate(threeNodeConfig());
        assert.equal(none.resources.filter(r => r.name.startsWith("gitlab-backup")).length, 0);
    });

    it("authorizes the backup key on the target with a forced command, from the backup node only", () => {
        const line = renderAuthorizedKeyLine("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbackup gitlab-cluster-backup\n", "10.0.0.11");
        assert.equal(line, 'restrict,from="10.0.0.11",command="/usr/local/sbin/gitlab-cluster-backup-receive" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbackup gitlab-cluster-backup');
        assert.throws(() => renderAuthorizedKeyLine("ssh-rsa AAAA x", "10.0.0.11"), /not an ed25519 public key/);
        assert.throws(() => renderAuthorizedKeyLine("ssh-ed25519 AAAA x", '10.0.0.11",command="/bin/sh'), /not an address/);
        const authorize = e.byName("gitlab-backup-authorize");
        assert.ok(authorize.dependencies.includes(e.byName("gitlab-backup-key").urn));
        assert.match(str(e.byName("gitlab-backup-script"), "stdin"), /dd if="\$1\/\$2" iflag=nofollow bs=1M status=none \| remote put "\$2" "\$size"/);
        assert.match(str(e.byName("gitlab-backup-receiver"), "stdin"), /^max_bytes=107374182400$/m, "default maxArchiveGiB 100");
        assert.equal(str(e.byName("gitlab-backup-target-prune"), "stdin").split("\n")[3],
            "17 5 * * * root find /srv/backups -maxdepth 1 -type f \\( -name '*_gitlab_backup.tar' -o -name '*_gitlab_etc.tar' \\) -mtime +14 -delete");
    });

    it("takes the receiver's limits from backup.target", async () => {
        const limited = await evaluate(withBackup({ target: { host: "data1", path: "/srv/backups", maxArchiveGiB: 2, minFreeGiB: 0.5 } }));
        const receiver = str(limited.byName("gitlab-backup-receiver"), "stdin");
        assert.match(receiver, /^max_bytes=2147483648$/m);
        assert.match(receiver, /^min_free_bytes=536870912$/m);
    });
});

function sh(script: string, env: Record<string, string> = {}, input?: string) {
    const r = spawnSync("sh", ["-c", script], { encoding: "utf8", env: { ...process.env, ...env }, input });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("backup and receiver scripts, run for real", () => {
    it("pass sh -n and shellcheck", () => {
        const scripts = [
            renderBackupScript({ container: "c", backupsDir: "/srv/gitlab/data/backups", etcBackupsDir: "/srv/gitlab/etc-backups", etcDir: "/srv/gitlab/config", keepDays: 7 }),
            renderBackupScript({ container: "c", backupsDir: "/b", etcBackupsDir: "/eb", etcDir: "/e", keepDays: 7, target: { address: "10.0.0.21", user: "root", port: 22, path: "/srv/backups", knownHostsLine: "10.0.0.21 ssh-ed25519 AAAA" } }),
            renderReceiverScript("/srv/backups"),
        ];
        for (const s of scripts) {
            assert.equal(shSyntax(s).status, 0);
            const lint = shellcheck(s);
            assert.equal(lint.status, 0, lint.stdout);
        }
    });

    it("the target's prune entry deletes old copies only, never through a symlink", () => {
        const root = tempDir("target-prune");
        const store = path.join(root, "store");
        fs.mkdirSync(store);
        const old = path.join(store, "1600000000_2020_09_13_13.0.0-ce_gitlab_etc.tar");
        const fresh = path.join(store, "1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar");
        const outside = path.join(root, "outside_gitlab_backup.tar");
        fs.writeFileSync(old, "old");
        fs.writeFileSync(fresh, "new");
        fs.writeFileSync(outside, "outside");
        for (const f of [old, outside]) fs.utimesSync(f, new Date("2020-09-13"), new Date("2020-09-13"));
        fs.symlinkSync(outside, path.join(store, "1500000000_2017_07_14_10.0.0-ce_gitlab_backup.tar"));
        const entry = renderTargetPruneCron("backup", store, 7).split("\n")[3]!;
        const command = entry.replace(/^17 5 \* \* \* backup /, "");
        const r = sh(command);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(!fs.existsSync(old));
        assert.ok(fs.existsSync(fresh));
        assert.equal(fs.readFileSync(outside, "utf8"), "outside");
        assert.throws(() => renderTargetPruneCron("x y", store, 7), /not a user name/);
    });

    it("the backup script writes the /etc/gitlab archive to the root-only directory, 0600, copies both off-host, and prints the id", () => {
        const node = nodeLayout(tempDir("backup"));
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        const store = path.join(node.dataRoot, "..", "store");
        // ssh test double: hands the remote words to the real receiver, as sshd does with the forced command.
        const sshBin = path.join(node.dataRoot, "..", "ssh-bin");
        fs.mkdirSync(sshBin);
        fs.writeFileSync(path.join(sshBin, "receiver"), renderReceiverScript(store), { mode: 0o755 });
        fs.writeFileSync(path.join(sshBin, "ssh"), `#!/bin/sh\nwhile [ "$#" -gt 0 ]; do case "$1" in *@*) shift; break ;; *) shift ;; esac; done\nSSH_ORIGINAL_COMMAND="$*" exec sh ${sshBin}/receiver\n`, { mode: 0o755 });
        const etcBackups = etcBackupsDirOf(node.dataRoot);
        const script = renderBackupScript({
            container: "gitlab-gitlab-app1", backupsDir: node.backups, etcBackupsDir: etcBackups, etcDir: node.config, keepDays: 7,
            target: { address: "10.0.0.21", user: "root", port: 22, path: store },
        });
        const r = sh(script, { ...docker.env, PATH: `${sshBin}:${docker.env.PATH}` });
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.match(r.stdout, new RegExp(`backup ${BACKUP_ID.replace(/\./g, "\\.")} done`));
        assert.deepEqual(docker.calls(), ["exec gitlab-gitlab-app1 gitlab-backup create CRON=1"]);
        const etcArchive = path.join(etcBackups, `${BACKUP_ID}_gitlab_etc.tar`);
        assert.equal(fs.statSync(etcArchive).mode & 0o777, 0o600);
        assert.equal(fs.statSync(etcBackups).mode & 0o777, 0o700);
        assert.deepEqual(fs.readdirSync(node.backups).map(f => [f, fs.statSync(path.join(node.backups, f)).uid]), [[`${BACKUP_ID}_gitlab_backup.tar`, GIT_UID]], "nothing of root's in git's directory");
        const listing = spawnSync("tar", ["-tf", etcArchive], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).sort();
        assert.deepEqual(listing, [...ETC_FILES].sort());
        for (const [dir, f] of [[node.backups, `${BACKUP_ID}_gitlab_backup.tar`], [etcBackups, `${BACKUP_ID}_gitlab_etc.tar`]] as const) {
            assert.deepEqual(fs.readFileSync(path.join(store, f)), fs.readFileSync(path.join(dir, f)), `${f} copied off-host whole`);
        }
        // A second run the same second makes the same id: the receiver refuses to overwrite, and the run fails loudly.
        const again = sh(script, { ...docker.env, PATH: `${sshBin}:${docker.env.PATH}` });
        assert.notEqual(again.status, 0);
        assert.match(again.stderr, /refused: .* exists; archives are never overwritten/);
    });
});
