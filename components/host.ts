// How the program reaches a host: a Docker provider and a command factory that agree on the
// SSH user, port, key and host key. Local hosts use the local Docker socket and local commands.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { HostConfig } from "./config";
import { shellQuote } from "./render/quote";

/** What a remote or local command runs. Scripts are POSIX sh; secrets go in `stdin` only. */
export interface HostCommandArgs {
    readonly create: pulumi.Input<string>;
    readonly update?: pulumi.Input<string>;
    readonly delete?: pulumi.Input<string>;
    readonly stdin?: pulumi.Input<string>;
    /** A change of any of these runs `update` (or `create` again when there is no `update`). */
    readonly triggers?: pulumi.Input<unknown[]>;
    /** stdout carries a secret: it is stored as one and never logged. */
    readonly secretStdout?: boolean;
}

export interface HostCommand extends pulumi.CustomResource {
    readonly stdout: pulumi.Output<string>;
}

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

/** A known_hosts line for the host's pinned key. */
export function knownHostsLine(host: HostConfig): string {
    if (host.ssh.hostKey === undefined) throw new Error(`host "${host.name}" has no ssh.hostKey`);
    const name = host.ssh.port === 22 ? host.address : `[${host.address}]:${host.ssh.port}`;
    return `${name} ${host.ssh.hostKey.split(" ").slice(0, 2).join(" ")}\n`;
}

function writePrivateFile(file: string, content: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(file, content.endsWith("\n") ? content : `${content}\n`, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
}

/** Docker provider arguments for a host; writes the key and known_hosts files the ssh client needs. */
export function dockerProviderArgs(host: HostConfig, filesDir: string): docker.ProviderArgs {
    if (host.local) return { host: "unix:///var/run/docker.sock" };
    const address = host.address.includes(":") ? `[${host.address}]` : host.address;
    const opts: string[] = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"];
    if (host.ssh.hostKey !== undefined) {
        const { knownHosts } = sshFilePaths(filesDir, host.name);
        writePrivateFile(knownHosts, knownHostsLine(host));
        opts.push("-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`);
    } else {
        opts.push("-o", "StrictHostKeyChecking=accept-new");
    }
    const args: docker.ProviderArgs = { host: `ssh://${host.ssh.user}@${address}:${host.ssh.port}` };
    if (host.ssh.privateKey === undefined) return { ...args, sshOpts: opts };
    const keyFile = sshFilePaths(filesDir, host.name).key;
    opts.push("-i", keyFile, "-o", "IdentitiesOnly=yes");
    // The provider connects only after the key file exists: its options wait on the write.
    const written = pulumi.secret(host.ssh.privateKey).apply(key => { writePrivateFile(keyFile, key); return opts; });
    return { ...args, sshOpts: pulumi.unsecret(written) };
}

export function commandConnection(host: HostConfig): command.types.input.remote.ConnectionArgs {
    return {
        host: host.address,
        port: host.ssh.port,
        user: host.ssh.user,
        ...(host.ssh.privateKey !== undefined ? { privateKey: pulumi.secret(host.ssh.privateKey) } : {}),
        // With useAgent no key is given: the provider then uses the agent at $SSH_AUTH_SOCK. The
        // socket's path changes with every login, so it stays out of the (replace-on-change) connection.
        ...(host.ssh.hostKey !== undefined ? { hostKey: host.ssh.hostKey } : {}),
        dialErrorLimit: 10,
        perDialTimeout: 30,
    };
}

/** One host of the cluster as the components see it. */
export class HostConnection {
    readonly provider: docker.Provider;

    constructor(readonly config: HostConfig, parent: pulumi.Resource, clusterName: string, filesDir: string) {
        if (!config.local && config.ssh.hostKey === undefined) {
            pulumi.log.warn(`host "${config.name}" (${config.address}) has no ssh.hostKey: its SSH host key is not verified. ` +
                `Pin it with: pulumi config set --path 'hosts.${config.name}.ssh.hostKey' "$(ssh-keyscan -t ed25519 ${config.address} | cut -d' ' -f2-)"`, parent);
        }
        this.provider = new docker.Provider(`${clusterName}-${config.name}-docker`, dockerProviderArgs(config, filesDir), { parent });
    }

    get name(): string { return this.config.name; }
    get address(): string { return this.config.address; }

    /** Options for a Docker resource on this host. */
    dockerOpts(parent: pulumi.Resource, more: pulumi.CustomResourceOptions = {}): pulumi.CustomResourceOptions {
        return { ...more, parent, provider: this.provider };
    }

    /** A command on this host: remote over SSH, or local for a local host. */
    run(name: string, args: HostCommandArgs, opts: pulumi.CustomResourceOptions): HostCommand {
        // With sudo the script is one quoted argument; its stdin (secrets) still flows through.
        const wrap = (script: pulumi.Input<string> | undefined) => script === undefined || !this.config.sudo
            ? script : pulumi.output(script).apply(text => `sudo -n sh -c ${shellQuote(text)}`);
        const common = {
            create: wrap(args.create),
            update: wrap(args.update),
            delete: wrap(args.delete),
            stdin: args.stdin === undefined ? undefined : pulumi.secret(args.stdin),
            triggers: args.triggers,
            // Previous stdout may be secret; never hand it to the next run's environment.
            addPreviousOutputInEnv: false,
            ...(args.secretStdout ? { logging: "none" as const } : {}),
        };
        const resourceOpts: pulumi.CustomResourceOptions = {
            // A replacement (the provider replaces on `connection` or `triggers` changes) runs the
            // new create before the old delete by default, which would end in the deleted state
            // (unmounted, unexported, firewall removed): delete first, then create.
            ...(args.delete !== undefined ? { deleteBeforeReplace: true } : {}),
            ...opts,
            additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), ...(args.secretStdout ? ["stdout"] : [])],
        };
        if (this.config.local) {
            return new command.local.Command(name, { ...common, interpreter: ["/bin/sh", "-c"] }, resourceOpts);
        }
        return new command.remote.Command(name, { ...common, connection: commandConnection(this.config) }, resourceOpts);
    }
}

/**
 * The address ranges traffic from `from`'s containers arrives from at `to`: the host's own
 * address, plus Docker's bridge when both are the same host (published ports are reached
 * through the bridge gateway there).
 */
export function sourceRanges(from: HostConfig, to: HostConfig): string[] {
    const own = from.address.includes(":") ? `${from.address}/128` : `${from.address}/32`;
    return from.name === to.name ? [own, from.dockerBridgeSubnet] : [own];
}
