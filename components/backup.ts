// Scheduled backups on one GitLab node: the backup script, its cron entry, and (optionally) an
// off-host copy to a host of the inventory through a key that may only add new archives to one
// directory, from the backup node's address; the target prunes them on its own schedule.
import * as pulumi from "@pulumi/pulumi";
import type { HostConnection } from "./host";
import { knownHostsLine } from "./host";
import {
    authorizeBackupKeyScript, BACKUP_CRON_PATH, BACKUP_SCRIPT_PATH, backupKeyScript, ensureCronScript, etcBackupsDirOf,
    RECEIVER_SCRIPT_PATH, receiverLimits, renderAuthorizedKeyLine, renderBackupCron, renderBackupScript, renderReceiverScript,
    renderTargetPruneCron, TARGET_PRUNE_CRON_PATH, unauthorizeBackupKeyScript,
} from "./render/backup";
import { removeFileScript, writeFileScript } from "./render/scripts";

export interface GitlabBackupArgs {
    /** The GitLab node's host that makes the backups. */
    readonly host: HostConnection;
    /** The node's container. */
    readonly container: string;
    /** The node's data root: backups land in <dataRoot>/data/backups, /etc/gitlab is <dataRoot>/config. */
    readonly dataRoot: string;
    /** Five-field cron schedule. */
    readonly schedule: string;
    readonly keepDays: number;
    /** Optional off-host copy, with the receiver's limits (default: render/backup's defaults). */
    readonly target?: {
        readonly host: HostConnection; readonly path: string;
        readonly maxArchiveGiB?: number; readonly minFreeGiB?: number;
    };
    /** Done before the schedule is installed (the node's readiness). */
    readonly startAfter?: readonly pulumi.Resource[];
}

export class GitlabBackup extends pulumi.ComponentResource {
    readonly backupsDir: string;
    /** Root-only: the /etc/gitlab archives. */
    readonly etcBackupsDir: string;
    readonly script: string;

    constructor(name: string, args: GitlabBackupArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:backup:GitlabBackup", name, {}, opts);
        this.backupsDir = `${args.dataRoot}/data/backups`;
        this.etcBackupsDir = etcBackupsDirOf(args.dataRoot);
        const deps: pulumi.Resource[] = [...(args.startAfter ?? [])];
        let target;
        if (args.target) {
            const t = args.target.host.config;
            const key = args.host.run(`${name}-key`, { create: backupKeyScript() }, { parent: this });
            const receiver = args.target.host.run(`${name}-receiver`, {
                create: writeFileScript({ path: RECEIVER_SCRIPT_PATH, mode: "0755" }),
                delete: removeFileScript(RECEIVER_SCRIPT_PATH),
                stdin: renderReceiverScript(args.target.path, receiverLimits(args.target.maxArchiveGiB, args.target.minFreeGiB)),
            }, { parent: this });
            const from = args.host.config.address;
            deps.push(args.target.host.run(`${name}-authorize`, {
                create: authorizeBackupKeyScript(t.ssh.user),
                delete: unauthorizeBackupKeyScript(t.ssh.user),
                stdin: key.stdout.apply(k => renderAuthorizedKeyLine(k, from)),
            }, { parent: this, dependsOn: [receiver] }));
            // Pruning is the target's own job: the backup key can only add archives.
            const targetCron = args.target.host.run(`${name}-target-cron-installed`, { create: ensureCronScript() }, { parent: this });
            args.target.host.run(`${name}-target-prune`, {
                create: writeFileScript({ path: TARGET_PRUNE_CRON_PATH, mode: "0644" }),
                delete: removeFileScript(TARGET_PRUNE_CRON_PATH),
                stdin: renderTargetPruneCron(t.ssh.user, args.target.path, args.keepDays),
            }, { parent: this, dependsOn: [targetCron] });
            target = {
                address: t.address, user: t.ssh.user, port: t.ssh.port, path: args.target.path,
                knownHostsLine: t.ssh.hostKey !== undefined ? knownHostsLine(t) : undefined,
            };
        }
        this.script = renderBackupScript({
            container: args.container, backupsDir: this.backupsDir, etcBackupsDir: this.etcBackupsDir, etcDir: `${args.dataRoot}/config`,
            keepDays: args.keepDays, target,
        });
        const cron = args.host.run(`${name}-cron-installed`, { create: ensureCronScript() }, { parent: this });
        const script = args.host.run(`${name}-script`, {
            create: writeFileScript({ path: BACKUP_SCRIPT_PATH, mode: "0700" }),
            delete: removeFileScript(BACKUP_SCRIPT_PATH),
            stdin: this.script,
        }, { parent: this, dependsOn: deps });
        args.host.run(`${name}-schedule`, {
            create: writeFileScript({ path: BACKUP_CRON_PATH, mode: "0644" }),
            delete: removeFileScript(BACKUP_CRON_PATH),
            stdin: renderBackupCron(args.schedule),
        }, { parent: this, dependsOn: [cron, script] });
        this.registerOutputs({ backupsDir: this.backupsDir, etcBackupsDir: this.etcBackupsDir });
    }
}
