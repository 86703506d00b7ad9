// NFS for the shared GitLab directories: one host exports (a GitLab host, or a storage host of its
// own), the GitLab hosts mount. Git data on NFS is unsupported by GitLab since 15.6: with a Gitaly
// node the share carries no repositories (see render/nfs.ts, sharedDirectories).
import * as pulumi from "@pulumi/pulumi";
import type { HostCommand, HostConnection } from "./host";
import { renderExports, renderFstabLine } from "./render/nfs";
import { nfsExportScript, nfsMountScript, nfsUnexportScript, nfsUnmountScript } from "./render/scripts";

export const EXPORTS_FILE = "/etc/exports.d/gitlab-cluster.exports";

export interface NfsExportArgs {
    /** The host that serves the shared directories (a GitLab host, or a storage host). */
    readonly host: HostConnection;
    /** Exported path; the server's own GitLab node uses it directly. */
    readonly path: string;
    /** The GitLab hosts that mount it (all but the server's own): the only clients allowed. */
    readonly clientAddresses: readonly string[];
    /** The directories it carries (sharedDirectories). */
    readonly directories: readonly string[];
}

export class NfsExport extends pulumi.ComponentResource {
    readonly command: HostCommand;
    readonly exportsContent: string;

    constructor(name: string, args: NfsExportArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:nfs:NfsExport", name, {}, opts);
        const exportsContent = renderExports(args.path, args.clientAddresses);
        this.exportsContent = exportsContent;
        this.command = args.host.run(name, {
            create: nfsExportScript({
                exportPath: args.path,
                directories: args.directories,
                exportsFile: EXPORTS_FILE,
                exportsContent,
            }),
            delete: nfsUnexportScript(EXPORTS_FILE),
        }, { parent: this });
        this.registerOutputs({ exportsContent: this.exportsContent });
    }
}

export interface NfsMountArgs {
    /** The GitLab host that mounts the export. */
    readonly host: HostConnection;
    readonly serverAddress: string;
    /** Mounted at the same path as it is exported. */
    readonly path: string;
    readonly options: readonly string[];
    /** The export: the mount command waits for it (a component's dependsOn does not reach its children). */
    readonly after: readonly pulumi.Resource[];
}

export class NfsMount extends pulumi.ComponentResource {
    readonly command: HostCommand;
    readonly fstabLine: string;

    constructor(name: string, args: NfsMountArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:nfs:NfsMount", name, {}, opts);
        try {
            this.fstabLine = renderFstabLine(args.serverAddress, args.path, args.options);
        } catch (err) {
            throw new pulumi.ResourceError(`${name} on host "${args.host.name}": ${err instanceof Error ? err.message : String(err)}`, this);
        }
        this.command = args.host.run(name, {
            create: nfsMountScript({ mountPath: args.path, fstabLine: this.fstabLine }),
            delete: nfsUnmountScript(args.path),
        }, { parent: this, dependsOn: [...args.after] });
        this.registerOutputs({ fstabLine: this.fstabLine });
    }
}
