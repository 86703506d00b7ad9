// /etc/exports entry and fstab line for the shared GitLab directories.

/** What GitLab shares between nodes, relative to the export root, and where each sits in the container. */
export const GITLAB_SHARED_DIRECTORIES: readonly { readonly dir: string; readonly containerPath: string }[] = [
    { dir: "git-data", containerPath: "/var/opt/gitlab/git-data" },
    { dir: "uploads", containerPath: "/var/opt/gitlab/gitlab-rails/uploads" },
    { dir: "shared", containerPath: "/var/opt/gitlab/gitlab-rails/shared" },
    { dir: "builds", containerPath: "/var/opt/gitlab/gitlab-ci/builds" },
    { dir: "ssh", containerPath: "/var/opt/gitlab/.ssh" },
];

export const EXPORT_OPTIONS = "rw,sync,no_root_squash,no_subtree_check";

/** One exports(5) line: the path, then each client address with GitLab's options. Never `*`. */
export function renderExports(exportPath: string, clientAddresses: readonly string[]): string {
    if (clientAddresses.length === 0) throw new Error("an NFS export needs at least one client address");
    for (const a of clientAddresses) {
        if (!/^[0-9a-fA-F.:]+$/.test(a)) throw new Error(`NFS client "${a}" is not an address; exports name hosts by address only`);
    }
    const clients = [...clientAddresses].sort().map(a => `${a}(${EXPORT_OPTIONS})`).join(" ");
    return `# Managed by gitlab-cluster (Pulumi).\n${exportPath} ${clients}\n`;
}

/**
 * Mount options every GitLab host's mount must carry: root in one GitLab container can write
 * to the share, and must not plant a setuid program or a device node that works on another node.
 */
export const REQUIRED_MOUNT_OPTIONS = ["nosuid", "nodev"] as const;
/** Options that would undo them when they come later on the line (`defaults` means suid,dev). */
export const REFUSED_MOUNT_OPTIONS = ["suid", "dev", "defaults"] as const;

/** What is wrong with a list of NFS mount options, or undefined when nothing is. */
export function mountOptionsProblem(options: readonly string[]): string | undefined {
    const missing = REQUIRED_MOUNT_OPTIONS.filter(o => !options.includes(o));
    const undoing = REFUSED_MOUNT_OPTIONS.filter(o => options.includes(o));
    if (missing.length === 0 && undoing.length === 0) return undefined;
    return `must contain 'nosuid' and 'nodev' (a setuid program or device planted on the share by one GitLab container must not work on another node)` +
        `${missing.length > 0 ? `; missing: ${missing.join(", ")}` : ""}${undoing.length > 0 ? `; refused: ${undoing.join(", ")}` : ""}`;
}

/** An fstab(5) line mounting the server's export at the same path. */
export function renderFstabLine(serverAddress: string, exportPath: string, options: readonly string[]): string {
    const problem = mountOptionsProblem(options);
    if (problem !== undefined) throw new Error(`NFS mount options (gitlab-cluster:nfs.mountOptions) ${problem}: got ${options.join(",")}`);
    const server = serverAddress.includes(":") ? `[${serverAddress}]` : serverAddress;
    return `${server}:${exportPath} ${exportPath} nfs ${options.join(",")} 0 0`;
}
