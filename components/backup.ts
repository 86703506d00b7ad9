// Scheduled backups on one GitLab node: the backup script, its cron entry, and (optionally)
// off-host copies to hosts of the inventory through a key that may only add new archives to one
// directory on each, from the backup node's address; each target prunes them on its own schedule.
// The data archive and the /etc/gitlab archive that decrypts it go to two different hosts.
import * as pulumi from "@pulumi/pulumi";
import type { HostConnection } from "./host";
import { knownHostsLine } from "./host";
import {
    type ArchiveKind, authorizeBackupKeyScript, BACKUP_CRON_PATH, BACKUP_SCRIPT_PATH, backupKeyScript, type BackupTarget, ensureCronScript,
    etcBackupsDirOf, RECEIVER_SCRIPT_PATH, receiverLimits, renderAuthorizedKeyLine, renderBackupCron, renderBackupScript, renderReceiverScript,
    renderTargetPruneCron, TARGET_PRUNE_CRON_PATH, unauthorizeBackupKeyScript,
} from "./render/backup";
import { removeFileScript } from "./render/scripts";

/** An off-host destination: a host of the inventory, a directory there, and the receiver's limits (default: render/backup's). */
export interface OffHostTarget {
    readonly host: HostConnection;
    readonly path: string;
    readonly maxArchiveGiB?: number;
    readonly minFreeGiB?: number;
}

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
    /** Optional off-host copy of the data archives (and of the /etc/gitlab archives when there is no `secretsTarget`). */
    readonly target?: OffHostTarget;
    /** Optional off-host copy of the /etc/gitlab archives (gitlab-secrets.json, gitlab.rb), on another host than `target`. */
    readonly secretsTarget?: OffHostTarget;
    /** The host whose disks hold GitLab's data: the NFS server, or the only GitLab node. */
    readonly dataHost: string;
    /** Done before the schedule is installed (the node's readiness). */
    readonly startAfter?: readonly pulumi.Resource[];
}

/** Where a stack's archives end up, by host name: what backupPlacementWarnings judges. */
export interface BackupPlacement {
    readonly backupNode: string;
    readonly dataHost: string;
    readonly target?: string;
    readonly secretsTarget?: string;
}

/**
 * The warnings a stack gets at every preview for where its backups live: every copy of the data
 * archives on the host that holds GitLab's data (one lost disk loses both), or the /etc/gitlab
 * archives copied to the same place as the data archives they decrypt.
 */
export function backupPlacementWarnings(p: BackupPlacement): string[] {
    const warnings: string[] = [];
    const dataCopies = [p.backupNode, ...(p.target !== undefined ? [p.target] : [])];
    if (dataCopies.every(h => h === p.dataHost)) {
        warnings.push(`backup: every backup of this stack stays on host "${p.dataHost}", which also holds GitLab's data (the NFS share, or the only node's ` +
            `data root): losing that host loses the data and its backups together. Set backup.target to another host of the inventory for the data archives, ` +
            `and backup.secretsTarget to a third one for the /etc/gitlab archives that decrypt them.`);
    }
    if (p.target !== undefined && p.secretsTarget === undefined) {
        warnings.push(`backup: backup.target ("${p.target}") receives the /etc/gitlab archives (gitlab-secrets.json, gitlab.rb with every password) beside ` +
            `the data archives they decrypt; GitLab advises storing them apart. Set backup.secretsTarget to another host of the inventory.`);
    }
    return warnings;
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
        const placement = {
            backupNode: args.host.config.name, dataHost: args.dataHost, target: args.target?.host.config.name, secretsTarget: args.secretsTarget?.host.config.name,
        };
        if (placement.secretsTarget !== undefined && placement.secretsTarget === placement.target) {
            // The config refuses this too; here because both would install one authorized_keys line, the second replacing the first.
            throw new pulumi.ResourceError(`backup.secretsTarget and backup.target are both on host "${placement.target}": the secrets must be stored apart from the data`, this);
        }
        for (const warning of backupPlacementWarnings(placement)) pulumi.log.warn(warning, this);
        const deps: pulumi.Resource[] = [...(args.startAfter ?? [])];
        // One key for both destinations: each host authorizes it for its own receiver, which takes only its own archives.
        const key = args.target || args.secretsTarget ? args.host.run(`${name}-key`, { create: backupKeyScript() }, { parent: this }) : undefined;
        const offHost = (prefix: string, target: OffHostTarget, accepts: readonly ArchiveKind[]): BackupTarget => {
            const t = target.host.config;
            const receiver = target.host.run(`${prefix}receiver`, {
                writes: { path: RECEIVER_SCRIPT_PATH, mode: "0755" },
                delete: removeFileScript(RECEIVER_SCRIPT_PATH),
                stdin: renderReceiverScript(target.path, receiverLimits(target.maxArchiveGiB, target.minFreeGiB), accepts),
            }, { parent: this });
            const from = args.host.config.address;
            deps.push(target.host.run(`${prefix}authorize`, {
                create: authorizeBackupKeyScript(t.ssh.user),
                delete: unauthorizeBackupKeyScript(t.ssh.user),
                stdin: key!.stdout.apply(k => renderAuthorizedKeyLine(k, from)),
            }, { parent: this, dependsOn: [receiver] }));
            // Pruning is the target's own job: the backup key can only add archives.
            const targetCron = target.host.run(`${prefix}target-cron-installed`, { create: ensureCronScript() }, { parent: this });
            target.host.run(`${prefix}target-prune`, {
                writes: { path: TARGET_PRUNE_CRON_PATH, mode: "0644" },
                delete: removeFileScript(TARGET_PRUNE_CRON_PATH),
                stdin: renderTargetPruneCron(t.ssh.user, target.path, args.keepDays),
            }, { parent: this, dependsOn: [targetCron] });
            return {
                address: t.address, user: t.ssh.user, port: t.ssh.port, path: target.path,
                knownHostsLine: t.ssh.hostKey !== undefined ? knownHostsLine(t) : undefined,
            };
        };
        // Resource names are an API: the data target keeps the names it had before secretsTarget existed.
        const target = args.target && offHost(`${name}-`, args.target, args.secretsTarget ? ["data"] : ["data", "secrets"]);
        const secretsTarget = args.secretsTarget && offHost(`${name}-secrets-`, args.secretsTarget, ["secrets"]);
        this.script = renderBackupScript({
            container: args.container, backupsDir: this.backupsDir, etcBackupsDir: this.etcBackupsDir, etcDir: `${args.dataRoot}/config`,
            keepDays: args.keepDays, target, secretsTarget,
        });
        const cron = args.host.run(`${name}-cron-installed`, { create: ensureCronScript() }, { parent: this });
        const script = args.host.run(`${name}-script`, {
            writes: { path: BACKUP_SCRIPT_PATH, mode: "0700" },
            delete: removeFileScript(BACKUP_SCRIPT_PATH),
            stdin: this.script,
        }, { parent: this, dependsOn: deps });
        args.host.run(`${name}-schedule`, {
            writes: { path: BACKUP_CRON_PATH, mode: "0644" },
            delete: removeFileScript(BACKUP_CRON_PATH),
            stdin: renderBackupCron(args.schedule),
        }, { parent: this, dependsOn: [cron, script] });
        this.registerOutputs({ backupsDir: this.backupsDir, etcBackupsDir: this.etcBackupsDir });
    }
}
