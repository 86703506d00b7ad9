// How the program reaches a host: a Docker provider and a command factory that agree on the
// SSH user, port, key and host key. Local hosts use the local Docker socket and local commands.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { HostConfig } from "./config";
import { shellQuote } from "./render/quote";
import { writeFileScript, type FileSpec } from "./render/scripts";
import { SSH_KEY_FILE_ENV, sshKeyFileCreateScript, sshKeyFileDeleteScript } from "./render/sshKeyFile";
import { sshFilePaths } from "./sshFiles";

// The SSH files' paths are in a module of their own (no Pulumi in it): `npm run ops` reads them too.
export { sshFilePaths, sshFilesDir } from "./sshFiles";

/** What a remote or local command runs. Scripts are POSIX sh; secrets go in `stdin` only. */
export interface HostCommandArgs {
    /** The script; for a command with `writes`, what runs after the file changed (e.g. a reload). */
    readonly create?: pulumi.Input<string>;
    /** The command writes stdin to this file (atomically, with this mode and owner); `create` then runs if it changed. */
    readonly writes?: FileSpec;
    readonly update?: pulumi.Input<string>;
    readonly delete?: pulumi.Input<string>;
    readonly stdin?: pulumi.Input<string>;
    /** A change of any of these runs `update` (or `create` again when there is no `update`). */
    readonly triggers?: pulumi.Input<unknown[]>;
    /** stdout carries a secret: it is stored as one and never logged. */
    readonly secretStdout?: boolean;
}

/** What the program knows of a command it made, kept as data for the review tree (`npm run render`). */
export interface HostCommandFacts {
    readonly host: string;
    readonly writes?: FileSpec;
}

export interface HostCommand extends pulumi.CustomResource {
    readonly stdout: pulumi.Output<string>;
}

/** A known_hosts line for the host's pinned key. */
export function knownHostsLine(host: HostConfig): string {
    if (host.ssh.hostKey === undefined) throw new Error(`host "${host.name}" has no ssh.hostKey`);
    const name = host.ssh.port === 22 ? host.address : `[${host.address}]:${host.ssh.port}`;
    return `${name} ${host.ssh.hostKey.split(" ").slice(0, 2).join(" ")}\n`;
}

/**
 * Writes a file that only this user may read (an SSH key, a known_hosts file). Its directory is
 * made 0700 even when it exists with another mode; another user's directory, and a symlink,
 * non-file or another user's file at the path, are refused rather than followed or taken over.
 * The content goes to a new 0600 file (O_EXCL|O_NOFOLLOW) renamed over the path, so nothing is
 * written through a link planted meanwhile and no reader sees half a key.
 */
export function writePrivateFile(file: string, content: string): void {
    const dir = path.dirname(file);
    const uid = process.getuid?.();
    const refuse = (why: string) => new Error(`refusing to write ${file}: ${why}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const dirStat = fs.statSync(dir);
    if (!dirStat.isDirectory()) throw refuse(`${dir} is not a directory`);
    if (uid !== undefined && dirStat.uid !== uid) throw refuse(`the directory ${dir} belongs to uid ${dirStat.uid}, not to this user (uid ${uid})`);
    if ((dirStat.mode & 0o7777) !== 0o700) fs.chmodSync(dir, 0o700);
    let existing: fs.Stats | undefined;
    try {
        existing = fs.lstatSync(file);
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (existing?.isSymbolicLink()) throw refuse(`it is a symbolic link (to ${fs.readlinkSync(file)}); remove it if it is yours`);
    if (existing !== undefined && !existing.isFile()) throw refuse("it exists and is not a regular file");
    if (existing !== undefined && uid !== undefined && existing.uid !== uid) throw refuse(`it belongs to uid ${existing.uid}, not to this user (uid ${uid})`);
    const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
        fs.writeFileSync(fd, content.endsWith("\n") ? content : `${content}\n`);
        fs.fchmodSync(fd, 0o600);
    } catch (err) {
        fs.closeSync(fd);
        fs.rmSync(tmp, { force: true });
        throw err;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
}

/** writePrivateFile, with the host named in any refusal. */
function writeHostFile(host: HostConfig, file: string, content: string): void {
    try {
        writePrivateFile(file, content);
    } catch (err) {
        throw new Error(`host "${host.name}": ${err instanceof Error ? err.message : String(err)}`);
    }
}

/** Docker provider arguments for a host; writes the key and known_hosts files the ssh client needs. */
export function dockerProviderArgs(host: HostConfig, filesDir: string): docker.ProviderArgs {
    if (host.local) return { host: "unix:///var/run/docker.sock" };
    const address = host.address.includes(":") ? `[${host.address}]` : host.address;
    const opts: string[] = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"];
    if (host.ssh.hostKey !== undefined) {
        const { knownHosts } = sshFilePaths(filesDir, host.name);
        writeHostFile(host, knownHosts, knownHostsLine(host));
        opts.push("-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`);
    } else {
        opts.push("-o", "StrictHostKeyChecking=accept-new");
    }
    const args: docker.ProviderArgs = { host: `ssh://${host.ssh.user}@${address}:${host.ssh.port}` };
    if (host.ssh.privateKey === undefined) return { ...args, sshOpts: opts };
    const keyFile = sshFilePaths(filesDir, host.name).key;
    opts.push("-i", keyFile, "-o", "IdentitiesOnly=yes");
    // The provider connects only after the key file exists: its options wait on the write.
    const written = pulumi.secret(host.ssh.privateKey).apply(key => { writeHostFile(host, keyFile, key); return opts; });
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

/** The host name under which the review tree shows what runs where `pulumi up` runs. */
export const PULUMI_MACHINE = "local";

/** One host of the cluster as the components see it. */
export class HostConnection {
    private dockerProvider?: docker.Provider;
    private readonly makeProvider: () => docker.Provider;

    /** Every command made on this host, by resource name. */
    readonly commands = new Map<string, HostCommandFacts>();

    constructor(readonly config: HostConfig, parent: pulumi.Resource, clusterName: string, filesDir: string) {
        if (!config.local && config.ssh.hostKey === undefined) {
            pulumi.log.warn(`host "${config.name}" (${config.address}) has no ssh.hostKey: its SSH host key is not verified (hosts.${config.name}.insecureSkipHostKeyCheck is set; for labs only). ` +
                `Pin it with: pulumi config set --path 'hosts.${config.name}.ssh.hostKey' "$(ssh-keyscan -t ed25519 ${config.address} | cut -d' ' -f2-)"`, parent);
        }
        // Made with the host's first container: a host that runs none (a storage host that only
        // exports NFS) needs no Docker, and no key file (its commands take the key in `connection`).
        this.makeProvider = () => {
            // The key file is written by the program (the provider needs it in a preview too); this
            // command removes it when the stack, the host or its key goes. The provider depends on it,
            // so a destroy deletes every resource of the host, then the provider, then the file.
            // The path travels in the environment: no secret, and the same script on every machine.
            let keyFileOwner: command.local.Command | undefined;
            if (!config.local && config.ssh.privateKey !== undefined) {
                const keyFile = sshFilePaths(filesDir, config.name).key;
                const keyFileName = `${clusterName}-${config.name}-ssh-key`;
                // It runs where `pulumi up` runs, not on this host.
                this.commands.set(keyFileName, { host: PULUMI_MACHINE });
                keyFileOwner = new command.local.Command(keyFileName, {
                    create: sshKeyFileCreateScript(),
                    delete: sshKeyFileDeleteScript(),
                    environment: { [SSH_KEY_FILE_ENV]: keyFile },
                    // A moved key file (another GITLAB_CLUSTER_KEY_DIR) replaces the command, whose old
                    // delete step then removes the file from its old place.
                    triggers: [keyFile],
                    interpreter: ["/bin/sh", "-c"],
                    addPreviousOutputInEnv: false,
                }, { parent });
            }
            return new docker.Provider(`${clusterName}-${config.name}-docker`, dockerProviderArgs(config, filesDir),
                { parent, dependsOn: keyFileOwner === undefined ? [] : [keyFileOwner] });
        };
    }

    /** The Docker provider of this host, if anything on it uses Docker. */
    get provider(): docker.Provider | undefined { return this.dockerProvider; }

    get name(): string { return this.config.name; }
    get address(): string { return this.config.address; }

    /** Options for a Docker resource on this host. */
    dockerOpts(parent: pulumi.Resource, more: pulumi.CustomResourceOptions = {}): pulumi.CustomResourceOptions {
        this.dockerProvider ??= this.makeProvider();
        return { ...more, parent, provider: this.dockerProvider };
    }

    /** A command on this host: remote over SSH, or local for a local host. */
    run(name: string, args: HostCommandArgs, opts: pulumi.CustomResourceOptions): HostCommand {
        // With sudo the script is one quoted argument; its stdin (secrets) still flows through.
        const wrap = (script: pulumi.Input<string> | undefined) => script === undefined || !this.config.sudo
            ? script : pulumi.output(script).apply(text => `sudo -n sh -c ${shellQuote(text)}`);
        if (args.create === undefined && args.writes === undefined) throw new Error(`command ${name}: neither create nor writes`);
        const writes = args.writes;
        const create = writes === undefined ? args.create!
            : args.create === undefined || typeof args.create === "string" ? writeFileScript(writes, args.create)
                : pulumi.output(args.create).apply(then => writeFileScript(writes, then));
        this.commands.set(name, { host: this.name, ...(args.writes ? { writes: args.writes } : {}) });
        const common = {
            create: wrap(create),
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
