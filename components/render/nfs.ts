// /etc/exports entry and fstab line for the shared GitLab directories.
import { shellQuote } from "./quote";

/** What GitLab shares between nodes, relative to the export root, and where each sits in the container. */
export const GITLAB_SHARED_DIRECTORIES: readonly { readonly dir: string; readonly containerPath: string }[] = [
    { dir: "git-data", containerPath: "/var/opt/gitlab/git-data" },
    { dir: "uploads", containerPath: "/var/opt/gitlab/gitlab-rails/uploads" },
    { dir: "shared", containerPath: "/var/opt/gitlab/gitlab-rails/shared" },
    { dir: "builds", containerPath: "/var/opt/gitlab/gitlab-ci/builds" },
    { dir: "ssh", containerPath: "/var/opt/gitlab/.ssh" },
];

/**
 * What the share carries. With a Gitaly node the repositories are on its disk, never on NFS
 * (GitLab: "NFS cannot be used for repository storage"); uploads, shared data, CI builds and the
 * git user's authorized_keys stay shared.
 */
export function sharedDirectories(withGitaly: boolean): readonly { readonly dir: string; readonly containerPath: string }[] {
    return withGitaly ? GITLAB_SHARED_DIRECTORIES.filter(d => d.dir !== "git-data") : GITLAB_SHARED_DIRECTORIES;
}

export const EXPORT_OPTIONS = "rw,sync,no_root_squash,no_subtree_check";

/**
 * A directory at the export's root holding a file that says "this is the shared storage". Each
 * GitLab node mounts the directory read-only and refuses to start without the file
 * (shareGuardEntrypoint): after a reboot whose NFS mount failed (`nofail`), the mount point is
 * an empty local directory, and GitLab would otherwise start on it and create fresh, empty
 * storage that users push into. A directory, not the file itself: Docker makes a directory at a
 * missing bind source, and a file's mount point cannot take it (the start fails before the guard
 * runs, and the restart policy never tries again).
 */
export const SHARE_SENTINEL = ".gitlab-cluster-share";
/** The file inside SHARE_SENTINEL. */
export const SHARE_SENTINEL_FILE = "this-is-the-shared-storage";
/** Where a node's container sees the SHARE_SENTINEL directory. */
export const SHARE_SENTINEL_IN_CONTAINER = "/etc/gitlab-cluster/share";
/** The Omnibus image's own start command (its Dockerfile: `CMD ["/assets/wrapper"]`, no ENTRYPOINT). */
export const OMNIBUS_WRAPPER = "/assets/wrapper";

/**
 * The GitLab container's entrypoint when it uses shared storage: start Omnibus only when the
 * sentinel file is there. Unmounted, Docker creates an empty directory at the missing bind source;
 * the container starts, the guard exits, and the restart policy tries again until the share is back.
 */
export function shareGuardEntrypoint(sharedRoot: string, sentinel = `${SHARE_SENTINEL_IN_CONTAINER}/${SHARE_SENTINEL_FILE}`, wrapper = OMNIBUS_WRAPPER): string[] {
    const message = `gitlab-cluster: the shared storage is not mounted on this host (${sharedRoot}/${SHARE_SENTINEL}/${SHARE_SENTINEL_FILE} is missing): ` +
        `not starting GitLab on empty directories. Mount it (mount ${sharedRoot}); Docker retries the start.`;
    return ["/bin/sh", "-c", `if [ ! -f ${shellQuote(sentinel)} ]; then echo ${shellQuote(message)} >&2; exit 1; fi\nexec ${shellQuote(wrapper)}`];
}

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
