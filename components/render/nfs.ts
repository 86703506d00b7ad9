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

/** An fstab(5) line mounting the server's export at the same path. */
export function renderFstabLine(serverAddress: string, exportPath: string, options: readonly string[]): string {
    const server = serverAddress.includes(":") ? `[${serverAddress}]` : serverAddress;
    return `${server}:${exportPath} ${exportPath} nfs ${options.join(",")} 0 0`;
}
