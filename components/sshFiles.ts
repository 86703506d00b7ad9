// Where the SSH client's per-host files live: the program writes them (components/host.ts), and
// `npm run ops` reads them. Pure paths, no Pulumi: ops computes them without loading the SDKs.
import * as os from "node:os";
import * as path from "node:path";

/**
 * The directory holding the per-host key and known_hosts files that the Docker provider's
 * `ssh` client reads (it cannot take key contents). Override with GITLAB_CLUSTER_KEY_DIR.
 */
export function sshFilesDir(stack: string): string {
    return process.env.GITLAB_CLUSTER_KEY_DIR ?? path.join(os.homedir(), ".ssh", "gitlab-cluster", stack);
}

/** The files, per host, that the ssh client reads: the program writes them, `npm run ops` reads them. */
export function sshFilePaths(filesDir: string, hostName: string): { readonly key: string; readonly knownHosts: string } {
    return { key: path.join(filesDir, `${hostName}.key`), knownHosts: path.join(filesDir, `${hostName}.known_hosts`) };
}
