import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { backupPlacementWarnings } from "../../components/backup";
import { parseClusterConfig } from "../../components/config";
import { etcBackupsDirOf, renderAuthorizedKeyLine, renderBackupScript, renderReceiverScript, renderTargetPruneCron } from "../../components/render/backup";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { str } from "../support/graph";
import { loadGitlabRb, shellcheck, shSyntax, tempDir } from "../support/readers";
import { BACKUP_ID, dockerDouble, ETC_FILES, GIT_UID, nodeLayout } from "../security/dockerDouble";
import { problemsOf } from "../support/config";

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
        assert.match(str(e.byName("gitlab-backup-script"), "stdin"), /dd if="\$1\/\$2" iflag=nofollow bs=1M status=none \| "\$3" put "\$2" "\$size"/);
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

describe("backup.secretsTarget: the /etc/gitlab archives on their own host", () => {
    let e: Evaluation;
    before(async () => {
        e = await evaluate(withBackup({ keepDays: 14, target: { host: "data1", path: "/srv/backups" }, secretsTarget: { host: "edge1", path: "/srv/gitlab-secrets", maxArchiveGiB: 1 } }));
    });

    it("installs a receiver, the key's authorization and a prune entry on the secrets host, under names of their own", () => {
        for (const n of ["gitlab-backup-secrets-receiver", "gitlab-backup-secrets-authorize", "gitlab-backup-secrets-target-cron-installed", "gitlab-backup-secrets-target-prune"]) {
            assert.equal(hostOf(e, n), "10.0.0.5", n);
        }
        for (const n of ["gitlab-backup-receiver", "gitlab-backup-authorize"]) assert.equal(hostOf(e, n), "10.0.0.21", `${n} keeps its name and host`);
        assert.ok(e.byName("gitlab-backup-secrets-authorize").dependencies.includes(e.byName("gitlab-backup-key").urn), "the same key, authorized there for that host's receiver");
        assert.match(str(e.byName("gitlab-backup-secrets-receiver"), "stdin"), /^dir=\/srv\/gitlab-secrets$/m);
        assert.match(str(e.byName("gitlab-backup-secrets-receiver"), "stdin"), /^max_bytes=1073741824$/m);
        assert.ok(e.byName("gitlab-backup-script").dependencies.includes(e.byName("gitlab-backup-secrets-authorize").urn));
    });

    it("the data target's receiver refuses the /etc/gitlab archives, the secrets host's refuses the data archives", () => {
        const name = (suffix: string) => `1700000000_2023_11_14_18.4.1-ce${suffix}`;
        const put = (receiverName: string, file: string) => sh(str(e.byName(receiverName), "stdin").replace(/^dir=.*$/m, `dir=${tempDir("recv")}`),
            { SSH_ORIGINAL_COMMAND: `put ${file} 1` }, "x");
        assert.equal(put("gitlab-backup-receiver", name("_gitlab_backup.tar")).status, 0);
        assert.match(put("gitlab-backup-receiver", name("_gitlab_etc.tar")).stderr, /^refused: not a data archive name: .*backup\.secretsTarget/);
        assert.equal(put("gitlab-backup-secrets-receiver", name("_gitlab_etc.tar")).status, 0);
        assert.match(put("gitlab-backup-secrets-receiver", name("_gitlab_backup.tar")).stderr, /^refused: not a \/etc\/gitlab archive name/);
    });

    it("the backup script sends the data archive to the target and the /etc/gitlab archive to the secrets host only", () => {
        const script = str(e.byName("gitlab-backup-script"), "stdin");
        const sends = script.split("\n").filter(l => l.startsWith("send "));
        assert.deepEqual(sends, [
            "send \"$backups\" \"${id}_gitlab_backup.tar\" to_target 10.0.0.21:/srv/backups",
            "send \"$etcbackups\" \"${id}_gitlab_etc.tar\" to_secrets_target 10.0.0.5:/srv/gitlab-secrets",
        ]);
        assert.match(script, /^to_secrets_target\(\) \{ ssh .* -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\/root\/\.ssh\/gitlab-cluster-backup-secrets\.known_hosts -p 22 root@10\.0\.0\.5 "\$@"; \}$/m);
        // Each destination pins its own host key in its own known_hosts file.
        assert.ok(script.includes("printf '%s\\n' '10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIedge' > /root/.ssh/gitlab-cluster-backup-secrets.known_hosts\n"));
        assert.ok(script.includes("printf '%s\\n' '10.0.0.21 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIdata' > /root/.ssh/gitlab-cluster-backup.known_hosts\n"));
    });

    it("without secretsTarget, the target takes both archives, as before", async () => {
        const legacy = await evaluate(withBackup({ target: { host: "data1", path: "/srv/backups" } }));
        const sends = str(legacy.byName("gitlab-backup-script"), "stdin").split("\n").filter(l => l.startsWith("send "));
        assert.deepEqual(sends.map(l => l.split(" ").slice(3).join(" ")), ["to_target 10.0.0.21:/srv/backups", "to_target 10.0.0.21:/srv/backups"]);
        assert.equal(legacy.resources.filter(r => r.name.startsWith("gitlab-backup-secrets-")).length, 0);
    });

    it("a secretsTarget alone makes the key and the secrets host's resources, and sends only the /etc/gitlab archive", async () => {
        const only = await evaluate(withBackup({ secretsTarget: { host: "edge1", path: "/srv/gitlab-secrets" } }));
        assert.equal(hostOf(only, "gitlab-backup-key"), "10.0.0.11");
        assert.equal(hostOf(only, "gitlab-backup-secrets-receiver"), "10.0.0.5");
        assert.equal(only.resources.filter(r => r.name === "gitlab-backup-receiver").length, 0);
        const sends = str(only.byName("gitlab-backup-script"), "stdin").split("\n").filter(l => l.startsWith("send "));
        assert.deepEqual(sends, ["send \"$etcbackups\" \"${id}_gitlab_etc.tar\" to_secrets_target 10.0.0.5:/srv/gitlab-secrets"]);
    });
});


describe("backup.secretsTarget in the stack config", () => {
    it("is refused on the target's host, with or without the same path, naming both keys", () => {
        for (const path of ["/srv/backups", "/srv/gitlab-secrets"]) {
            const problems = problemsOf(withBackup({ target: { host: "data1", path: "/srv/backups" }, secretsTarget: { host: "data1", path } }));
            assert.equal(problems.length, 1, problems.join("\n"));
            assert.match(problems[0]!, /^gitlab-cluster:backup\.secretsTarget\.host: "data1" is also gitlab-cluster:backup\.target\.host: .*gitlab-secrets\.json.*stored apart/);
        }
    });

    it("is refused on the backup node, and on a host not in the inventory", () => {
        assert.deepEqual(problemsOf(withBackup({ node: "app2", secretsTarget: { host: "app2", path: "/srv/gitlab-secrets" } })),
            ["gitlab-cluster:backup.secretsTarget.host: \"app2\" is the backup node, which keeps its own copy in <gitlab.dataRoot>/etc-backups; name another host"]);
        assert.match(problemsOf(withBackup({ secretsTarget: { host: "vault9", path: "/srv/gitlab-secrets" } })).join("\n"), /^gitlab-cluster:backup\.secretsTarget\.host: names host "vault9", which is not in/);
        assert.match(problemsOf(withBackup({ secretsTarget: { host: "edge1", path: "/etc" } })).join("\n"), /^gitlab-cluster:backup\.secretsTarget\.path: is the system directory \/etc/);
    });

    it("is accepted on another host, with the target's defaults for the receiver's limits", () => {
        const cfg = parseClusterConfig(withBackup({ target: { host: "data1", path: "/srv/backups" }, secretsTarget: { host: "edge1", path: "/srv/gitlab-secrets" } }), { isSecret: () => true });
        assert.deepEqual(cfg.backup!.secretsTarget, { host: "edge1", path: "/srv/gitlab-secrets", maxArchiveGiB: 100, minFreeGiB: 5 });
    });
});

/** The warnings an evaluation prints (pulumi.log.warn reaches console.warn under the mocks). */
async function warningsOf(cfg: Record<string, unknown>): Promise<string[]> {
    const seen: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => { seen.push(args.map(String).join(" ")); };
    try {
        await evaluate(cfg);
    } finally {
        console.warn = warn;
    }
    return seen.filter(w => /backup/.test(w));
}

describe("a warning at every preview when the backups stay with the data or beside their keys", () => {
    it("no target, backups on the NFS server: names the host and the keys to set", async () => {
        const warnings = await warningsOf(withBackup({}));
        assert.equal(warnings.length, 1, warnings.join("\n"));
        assert.match(warnings[0]!, /every backup of this stack stays on host "app1", which also holds GitLab's data/);
        assert.match(warnings[0]!, /Set backup\.target to another host .* and backup\.secretsTarget to a third one/);
    });

    it("a target on the NFS server host is no better", async () => {
        const warnings = await warningsOf(withBackup({ node: "app1", target: { host: "app1", path: "/srv/backups" }, secretsTarget: { host: "edge1", path: "/srv/s" } }));
        assert.equal(warnings.length, 1, warnings.join("\n"));
        assert.match(warnings[0]!, /stays on host "app1"/);
    });

    it("a target without secretsTarget: the keys lie beside the data archives", async () => {
        const warnings = await warningsOf(withBackup({ target: { host: "data1", path: "/srv/backups" } }));
        assert.equal(warnings.length, 1, warnings.join("\n"));
        assert.match(warnings[0]!, /backup\.target \("data1"\) receives the \/etc\/gitlab archives .* beside the data archives .* Set backup\.secretsTarget/);
    });

    it("none with a target and a secretsTarget on two other hosts, and none without backups", async () => {
        assert.deepEqual(await warningsOf(withBackup({ target: { host: "data1", path: "/srv/backups" }, secretsTarget: { host: "edge1", path: "/srv/s" } })), []);
        assert.deepEqual(await warningsOf(threeNodeConfig()), []);
    });

    it("judges where the copies are: a backup node other than the data host is already a second place; one node holds its own data", () => {
        assert.deepEqual(backupPlacementWarnings({ backupNode: "app2", dataHost: "app1", target: "data1", secretsTarget: "edge1" }), []);
        assert.equal(backupPlacementWarnings({ backupNode: "app2", dataHost: "app1" }).length, 0);
        assert.match(backupPlacementWarnings({ backupNode: "solo", dataHost: "solo" })[0]!, /stays on host "solo"/);
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
            renderBackupScript({
                container: "c", backupsDir: "/b", etcBackupsDir: "/eb", etcDir: "/e", keepDays: 7,
                target: { address: "10.0.0.21", user: "root", port: 22, path: "/srv/backups" },
                secretsTarget: { address: "10.0.0.5", user: "backup", port: 2200, path: "/srv/s", knownHostsLine: "[10.0.0.5]:2200 ssh-ed25519 AAAA" },
            }),
            renderReceiverScript("/srv/backups"),
            renderReceiverScript("/srv/backups", undefined, ["data"]),
            renderReceiverScript("/srv/s", undefined, ["secrets"]),
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
        assert.deepEqual(docker.calls(), ["exec gitlab-gitlab-app1 gitlab-backup create STRATEGY=copy CRON=1"], "GitLab's copy strategy: the data directories are live");
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

    it("with a secretsTarget, the data archive reaches the target's store and the /etc/gitlab archive the secrets host's, each alone", () => {
        const node = nodeLayout(tempDir("backup-two-targets"));
        const docker = dockerDouble(node.dataRoot, { dataDir: node.data, etcDir: node.config });
        const root = path.join(node.dataRoot, "..");
        const stores = { data: path.join(root, "data-store"), secrets: path.join(root, "secrets-store") };
        // ssh test double: sshd's forced command on each host is that host's own receiver, as the component installs them.
        const sshBin = path.join(root, "ssh-bin");
        fs.mkdirSync(sshBin);
        fs.writeFileSync(path.join(sshBin, "receiver-10.0.0.21"), renderReceiverScript(stores.data, undefined, ["data"]), { mode: 0o755 });
        fs.writeFileSync(path.join(sshBin, "receiver-10.0.0.5"), renderReceiverScript(stores.secrets, undefined, ["secrets"]), { mode: 0o755 });
        fs.writeFileSync(path.join(sshBin, "ssh"), `#!/bin/sh
while [ "$#" -gt 0 ]; do case "$1" in *@*) to=\${1#*@}; shift; break ;; *) shift ;; esac; done
[ -f "${sshBin}/receiver-$to" ] || { echo "ssh double: no host $to" >&2; exit 255; }
SSH_ORIGINAL_COMMAND="$*" exec sh "${sshBin}/receiver-$to"
`, { mode: 0o755 });
        const script = renderBackupScript({
            container: "gitlab-gitlab-app1", backupsDir: node.backups, etcBackupsDir: etcBackupsDirOf(node.dataRoot), etcDir: node.config, keepDays: 7,
            target: { address: "10.0.0.21", user: "root", port: 22, path: stores.data },
            secretsTarget: { address: "10.0.0.5", user: "root", port: 22, path: stores.secrets },
        });
        const r = sh(script, { ...docker.env, PATH: `${sshBin}:${docker.env.PATH}` });
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.deepEqual(fs.readdirSync(stores.data), [`${BACKUP_ID}_gitlab_backup.tar`], "the keys never reach the data target");
        assert.deepEqual(fs.readdirSync(stores.secrets), [`${BACKUP_ID}_gitlab_etc.tar`], "the data never reaches the secrets host");
        assert.deepEqual(fs.readFileSync(path.join(stores.secrets, `${BACKUP_ID}_gitlab_etc.tar`)), fs.readFileSync(path.join(etcBackupsDirOf(node.dataRoot), `${BACKUP_ID}_gitlab_etc.tar`)));
        assert.match(r.stdout, /copying \S+_gitlab_etc\.tar \(\d+ bytes\) to 10\.0\.0\.5:/);
    });
});
