import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { renderBackupScript, renderReceiverScript, renderAuthorizedKeyLine } from "../../components/render/backup";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { str } from "../support/graph";
import { loadGitlabRb, shellcheck, shSyntax, tempDir } from "../support/readers";

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
        assert.deepEqual(backupResources.map(r => r.name).sort(), ["gitlab-backup-authorize", "gitlab-backup-cron-installed", "gitlab-backup-key", "gitlab-backup-receiver", "gitlab-backup-schedule", "gitlab-backup-script"]);
        for (const n of ["gitlab-backup-script", "gitlab-backup-schedule", "gitlab-backup-key", "gitlab-backup-cron-installed"]) assert.equal(hostOf(e, n), "10.0.0.11", n);
        for (const n of ["gitlab-backup-receiver", "gitlab-backup-authorize"]) assert.equal(hostOf(e, n), "10.0.0.21", n);
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
        assert.deepEqual(e.byName("gitlab-backup-schedule").inputs.triggers, undefined, "no replace trigger: the command updates");
    });

    it("no backup config, no backup resources (removing it deletes the cron entry)", async () => {
        const none = await evaluate(threeNodeConfig());
        assert.equal(none.resources.filter(r => r.name.startsWith("gitlab-backup")).length, 0);
    });

    it("authorizes the backup key on the target with a forced command", () => {
        const line = renderAuthorizedKeyLine("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbackup gitlab-cluster-backup\n");
        assert.equal(line, 'restrict,command="/usr/local/sbin/gitlab-cluster-backup-receive" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbackup gitlab-cluster-backup');
        assert.throws(() => renderAuthorizedKeyLine("ssh-rsa AAAA x"), /not an ed25519 public key/);
        const authorize = e.byName("gitlab-backup-authorize");
        assert.ok(authorize.dependencies.includes(e.byName("gitlab-backup-key").urn));
        assert.match(str(e.byName("gitlab-backup-script"), "stdin"), /remote put "\$f" < "\$backups\/\$f"/);
    });
});

function sh(script: string, env: Record<string, string> = {}, input?: string) {
    const r = spawnSync("sh", ["-c", script], { encoding: "utf8", env: { ...process.env, ...env }, input });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("backup and receiver scripts, run for real", () => {
    it("pass sh -n and shellcheck", () => {
        const scripts = [
            renderBackupScript({ container: "c", backupsDir: "/srv/gitlab/data/backups", etcDir: "/srv/gitlab/config", keepDays: 7 }),
            renderBackupScript({ container: "c", backupsDir: "/b", etcDir: "/e", keepDays: 7, target: { address: "10.0.0.21", user: "root", port: 22, path: "/srv/backups", knownHostsLine: "10.0.0.21 ssh-ed25519 AAAA" } }),
            renderReceiverScript("/srv/backups"),
        ];
        for (const s of scripts) {
            assert.equal(shSyntax(s).status, 0);
            const lint = shellcheck(s);
            assert.equal(lint.status, 0, lint.stdout);
        }
    });

    it("the receiver stores archives, refuses anything else, and prunes by age", () => {
        const dir = path.join(tempDir("receiver"), "store");
        const receiver = renderReceiverScript(dir);
        const put = sh(receiver, { SSH_ORIGINAL_COMMAND: "put 1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar" }, "archive bytes");
        assert.equal(put.status, 0, put.stderr);
        assert.equal(fs.readFileSync(path.join(dir, "1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar"), "utf8"), "archive bytes");
        assert.equal(fs.statSync(path.join(dir, "1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar")).mode & 0o777, 0o600);
        for (const bad of ["put ../../etc/passwd_gitlab_backup.tar", "put x.sh", "rm -rf /", "prune x", "put .hidden_gitlab_etc.tar"]) {
            const r = sh(receiver, { SSH_ORIGINAL_COMMAND: bad }, "x");
            assert.notEqual(r.status, 0, bad);
            assert.match(r.stderr, /^refused/, bad);
        }
        const old = path.join(dir, "1600000000_2020_09_13_13.0.0-ce_gitlab_etc.tar");
        fs.writeFileSync(old, "old");
        fs.utimesSync(old, new Date("2020-09-13"), new Date("2020-09-13"));
        const prune = sh(receiver, { SSH_ORIGINAL_COMMAND: "prune 7" });
        assert.equal(prune.status, 0, prune.stderr);
        assert.ok(!fs.existsSync(old));
        assert.ok(fs.existsSync(path.join(dir, "1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar")));
    });

    it("the backup script writes the /etc/gitlab archive beside GitLab's, 0600, and prints the id", () => {
        // Test double for the docker CLI: `docker exec c gitlab-backup create` drops an archive the
        // way GitLab does; everything else the script does is real.
        const root = tempDir("backup");
        const backups = path.join(root, "backups");
        const etc = path.join(root, "etc");
        fs.mkdirSync(backups);
        fs.mkdirSync(etc);
        for (const f of ["gitlab.rb", "gitlab-secrets.json", "ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key", "ssh_host_rsa_key.pub"]) {
            fs.writeFileSync(path.join(etc, f), `${f}\n`);
        }
        const bin = path.join(root, "bin");
        fs.mkdirSync(bin);
        fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\n[ "$1 $3 $4" = "exec gitlab-backup create" ] || exit 9\necho fake > ${backups}/1700000000_2023_11_14_18.4.1-ce_gitlab_backup.tar\n`, { mode: 0o755 });
        const script = renderBackupScript({ container: "gitlab-gitlab-app1", backupsDir: backups, etcDir: etc, keepDays: 7 });
        const r = sh(script, { PATH: `${bin}:${process.env.PATH}` });
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /backup 1700000000_2023_11_14_18\.4\.1-ce done/);
        const etcArchive = path.join(backups, "1700000000_2023_11_14_18.4.1-ce_gitlab_etc.tar");
        assert.equal(fs.statSync(etcArchive).mode & 0o777, 0o600);
        const listing = spawnSync("tar", ["-tf", etcArchive], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).sort();
        assert.deepEqual(listing, fs.readdirSync(etc).sort());
    });
});
