// Wires the tiers into one GitLab cluster: data services, NFS, GitLab nodes (migration node
// first, then the rest one at a time, each after the previous one is ready; reconfigures one at a
// time; post-deployment migrations once all run the image), and the balancer.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { GitlabBackup } from "./backup";
import type { ClusterConfig, HostConfig } from "./config";
import { GitalyNode } from "./gitalyNode";
import { GitlabNode } from "./gitlabNode";
import { HostConnection, sourceRanges, type HostCommand } from "./host";
import { NfsExport, NfsMount } from "./nfs";
import { NginxLoadBalancer } from "./nginxLoadBalancer";
import { PostgresNode } from "./postgresNode";
import { RedisNode } from "./redisNode";
import { sharedDirectories } from "./render/nfs";
import { GITALY_NODE_OMNIBUS, gitalyAddress } from "./render/gitlabRb";
import { railsNodeDatabaseClients } from "./render/postgres";

export interface GitlabClusterArgs {
    readonly config: ClusterConfig;
    /** Where the Docker provider's ssh client finds key and known_hosts files. */
    readonly sshFilesDir: string;
}

/** What the ops command needs to reach the cluster: addresses, containers, paths. No secrets. */
export interface OpsInventory {
    readonly gitlabImage: string;
    readonly nodes: readonly {
        readonly name: string; readonly address: string; readonly container: string; readonly dataRoot: string;
        readonly migrationNode: boolean; readonly ssh: { readonly user: string; readonly port: number; readonly local: boolean };
    }[];
    readonly backupNode: string;
    readonly backupsDir: string;
    /** The Gitaly node, with roles.gitaly. */
    readonly gitaly?: {
        readonly name: string; readonly address: string; readonly container: string; readonly port: number;
        readonly ssh: { readonly user: string; readonly port: number; readonly local: boolean };
    };
    readonly balancer: {
        readonly name: string; readonly address: string; readonly container: string; readonly httpPort: number;
        readonly httpsPort: number; readonly tls: boolean; readonly serverName: string;
        readonly ssh: { readonly user: string; readonly port: number; readonly local: boolean };
    };
}

export interface ClusterNodeInfo {
    readonly name: string;
    readonly address: string;
    readonly migrationNode: boolean;
    readonly container: string;
}

function unique(items: readonly string[]): string[] {
    return [...new Set(items)];
}

export class GitlabCluster extends pulumi.ComponentResource {
    readonly url: string;
    readonly balancerAddress: string;
    readonly nodes: readonly ClusterNodeInfo[];
    readonly initialRootPassword: pulumi.Output<string>;
    readonly endpoints: { readonly postgres: string; readonly redis: string; readonly ssh: string; readonly gitaly?: string };
    readonly redis: RedisNode;
    readonly postgres: PostgresNode;
    readonly gitlabNodes: readonly GitlabNode[];
    /** The repository storage, when roles.gitaly is set (otherwise each node's own Gitaly, on NFS). */
    readonly gitaly?: GitalyNode;
    /** GitLab's post-deployment migrations on the migration node, once per image. */
    readonly postDeployMigrations: HostCommand;
    readonly nfsExport?: NfsExport;
    readonly nfsMounts: readonly NfsMount[];
    readonly loadBalancer: NginxLoadBalancer;
    readonly backup?: GitlabBackup;
    readonly ops: OpsInventory;
    /** The hosts the cluster uses, by name: what each runs is recorded there (HostConnection.commands). */
    readonly hosts: ReadonlyMap<string, HostConnection>;

    constructor(name: string, args: GitlabClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: the config holds secrets (SSH and TLS keys) that must not enter state as plain inputs.
        super("gitlab-cluster:index:GitlabCluster", name, {}, opts);
        const cfg = args.config;
        const host = (n: string): HostConfig => cfg.hosts[n]!;
        const connections = new Map<string, HostConnection>();
        this.hosts = connections;
        const connect = (n: string): HostConnection => {
            let c = connections.get(n);
            if (!c) {
                c = new HostConnection(host(n), this, name, args.sshFilesDir);
                connections.set(n, c);
            }
            return c;
        };
        const gitlabHosts = cfg.roles.gitlab.map(host);
        const lbHost = host(cfg.roles.loadBalancer);

        this.redis = new RedisNode(`${name}-redis`, {
            host: connect(cfg.roles.redis), image: cfg.redis.image, port: cfg.redis.port, dataRoot: cfg.redis.dataRoot,
            allowedSources: unique(gitlabHosts.flatMap(g => sourceRanges(g, host(cfg.roles.redis)))),
        }, { parent: this });
        this.postgres = new PostgresNode(`${name}-postgres`, {
            host: connect(cfg.roles.postgres), image: cfg.postgres.image, port: cfg.postgres.port,
            database: cfg.postgres.database, user: cfg.postgres.user, dataRoot: cfg.postgres.dataRoot,
            clientRanges: unique(gitlabHosts.flatMap(g => sourceRanges(g, host(cfg.roles.postgres)))),
            gitlabNodes: gitlabHosts.length, gitlabNodeClients: railsNodeDatabaseClients(cfg.gitlab.omnibus, cfg.postgres.pumaWorkersPerNode),
            maxConnections: cfg.postgres.maxConnections,
        }, { parent: this });

        // Upgrades replace the Gitaly container only after the migration node's preflight accepts
        // the new image; the migration node is made after Gitaly, so the preflight is handed over later.
        const [upgradePreflight, resolveUpgradePreflight] = pulumi.deferredOutput<pulumi.Resource>();
        if (cfg.roles.gitaly !== undefined) {
            const gitalyHost = host(cfg.roles.gitaly);
            this.gitaly = new GitalyNode(`${name}-gitaly`, {
                host: connect(gitalyHost.name), image: cfg.gitlab.image, dataRoot: cfg.gitaly.dataRoot, port: cfg.gitaly.port,
                internalApiUrl: cfg.gitlab.externalUrl,
                omnibus: Object.fromEntries(Object.entries(cfg.gitlab.omnibus).filter(([k]) => (GITALY_NODE_OMNIBUS as readonly string[]).includes(k))),
                allowedSources: unique(gitlabHosts.flatMap(g => sourceRanges(g, gitalyHost))),
                readinessTimeoutSeconds: cfg.gitlab.readinessTimeoutSeconds,
                startAfter: [upgradePreflight],
            }, { parent: this });
        }

        let sharedRoot: string | undefined;
        const mounts = new Map<string, NfsMount>();
        const nfsServer = cfg.roles.nfsServer;
        if (gitlabHosts.length > 1 && nfsServer !== undefined) {
            sharedRoot = cfg.nfs.path;
            // A storage host of its own serves every GitLab host; a GitLab host serves the others.
            const clients = gitlabHosts.filter(g => g.name !== nfsServer);
            this.nfsExport = new NfsExport(`${name}-nfs-export`, {
                host: connect(nfsServer), path: cfg.nfs.path, clientAddresses: clients.map(c => c.address),
                directories: sharedDirectories(this.gitaly !== undefined).map(d => d.dir),
            }, { parent: this });
            for (const client of clients) {
                mounts.set(client.name, new NfsMount(`${name}-nfs-mount-${client.name}`, {
                    host: connect(client.name), serverAddress: host(nfsServer).address, path: cfg.nfs.path, options: cfg.nfs.mountOptions,
                    after: [this.nfsExport.command],
                }, { parent: this }));
            }
        }
        this.nfsMounts = [...mounts.values()];

        const rootPassword = new random.RandomPassword(`${name}-initial-root-password`, { length: 32, special: false }, { parent: this });
        this.initialRootPassword = pulumi.secret(rootPassword.result);
        const backupNode = cfg.backup === undefined ? undefined : (cfg.backup.node ?? cfg.roles.gitlab[0]);
        const nodes: GitlabNode[] = [];
        for (const [i, node] of gitlabHosts.entries()) {
            const migration = nodes[0];
            // GitLab's zero-downtime upgrade: one node at a time, each after the previous one answers
            // /-/readiness on its (new) container. A first deploy starts them in the same order.
            const previous = nodes[i - 1];
            const mount = mounts.get(node.name);
            nodes.push(new GitlabNode(`${name}-gitlab-${node.name}`, {
                host: connect(node.name),
                image: cfg.gitlab.image,
                dataRoot: cfg.gitlab.dataRoot,
                externalUrl: cfg.gitlab.externalUrl,
                database: this.postgres.endpoint,
                redis: this.redis.endpoint,
                balancerSshPort: cfg.loadBalancer.sshPort,
                initialRootPassword: i === 0 ? this.initialRootPassword : undefined,
                backupKeepTimeSeconds: node.name === backupNode && cfg.backup ? cfg.backup.keepDays * 86400 : undefined,
                rails: cfg.gitlab.rails,
                omnibus: cfg.gitlab.omnibus,
                gitaly: this.gitaly?.endpoint,
                storageReady: this.gitaly?.ready,
                migrationNode: i === 0,
                sharedIdentity: migration?.identity,
                sharedRoot,
                sshPort: cfg.gitlab.nodeSshPort,
                balancerSources: sourceRanges(lbHost, node),
                readinessTimeoutSeconds: cfg.gitlab.readinessTimeoutSeconds,
                startAfter: [
                    this.postgres.ready, this.redis.container,
                    ...(this.nfsExport && node.name === nfsServer ? [this.nfsExport.command] : []),
                    ...(mount ? [mount.command] : []),
                    ...(previous ? [previous.ready] : []),
                ],
                upgradePreflight: migration?.upgradePreflight,
                // Reconfigures run one node at a time: the Gitaly node's first, then the GitLab nodes in order.
                previousRollout: nodes[i - 1]?.rollout ?? this.gitaly?.rollout,
            }, { parent: this }));
        }
        this.gitlabNodes = nodes;
        resolveUpgradePreflight(pulumi.output(nodes[0]!.upgradePreflight!));
        // Once per image, after every node answers /-/readiness on it.
        this.postDeployMigrations = nodes[0]!.postDeployMigrations(nodes.map(n => n.ready));

        if (cfg.backup !== undefined && backupNode !== undefined) {
            const index = cfg.roles.gitlab.indexOf(backupNode);
            this.backup = new GitlabBackup(`${name}-backup`, {
                host: connect(backupNode),
                container: nodes[index]!.containerName,
                dataRoot: cfg.gitlab.dataRoot,
                schedule: cfg.backup.schedule,
                keepDays: cfg.backup.keepDays,
                target: cfg.backup.target ? { ...cfg.backup.target, host: connect(cfg.backup.target.host) } : undefined,
                secretsTarget: cfg.backup.secretsTarget ? { ...cfg.backup.secretsTarget, host: connect(cfg.backup.secretsTarget.host) } : undefined,
                dataHost: nfsServer ?? backupNode,
                startAfter: [nodes[index]!.ready],
            }, { parent: this });
        }

        const serverName = new URL(cfg.gitlab.externalUrl).hostname;
        this.loadBalancer = new NginxLoadBalancer(`${name}-lb`, {
            host: connect(lbHost.name),
            image: cfg.loadBalancer.image,
            configRoot: cfg.loadBalancer.configRoot,
            serverName,
            nodes: gitlabHosts.map(g => ({ name: g.name, address: g.address, httpPort: 80, sshPort: cfg.gitlab.nodeSshPort })),
            listenAddress: cfg.loadBalancer.listenAddress,
            httpPort: cfg.loadBalancer.httpPort,
            httpsPort: cfg.loadBalancer.httpsPort,
            sshPort: cfg.loadBalancer.sshPort,
            tls: cfg.loadBalancer.tls,
            proxyReadTimeoutSeconds: cfg.loadBalancer.proxyReadTimeoutSeconds,
            proxyConnectTimeoutSeconds: cfg.loadBalancer.proxyConnectTimeoutSeconds,
            startAfter: nodes.map(n => n.ready),
        }, { parent: this });

        this.url = cfg.gitlab.externalUrl;
        this.balancerAddress = lbHost.address;
        this.nodes = gitlabHosts.map((g, i) => ({ name: g.name, address: g.address, migrationNode: i === 0, container: nodes[i]!.containerName }));
        this.endpoints = {
            postgres: `${this.postgres.address}:${this.postgres.port}`,
            redis: `${this.redis.address}:${this.redis.port}`,
            ssh: `${lbHost.address}:${cfg.loadBalancer.sshPort}`,
            ...(this.gitaly ? { gitaly: gitalyAddress(this.gitaly.endpoint.address, this.gitaly.endpoint.port) } : {}),
        };
        const sshOf = (h: HostConfig) => ({ user: h.ssh.user, port: h.ssh.port, local: h.local });
        this.ops = {
            gitlabImage: cfg.gitlab.image,
            nodes: gitlabHosts.map((g, i) => ({
                name: g.name, address: g.address, container: nodes[i]!.containerName, dataRoot: cfg.gitlab.dataRoot, migrationNode: i === 0, ssh: sshOf(g),
            })),
            backupNode: backupNode ?? cfg.roles.gitlab[0]!,
            backupsDir: `${cfg.gitlab.dataRoot}/data/backups`,
            ...(this.gitaly && cfg.roles.gitaly !== undefined ? {
                gitaly: {
                    name: cfg.roles.gitaly, address: this.gitaly.endpoint.address, container: this.gitaly.containerName, port: this.gitaly.endpoint.port,
                    ssh: sshOf(host(cfg.roles.gitaly)),
                },
            } : {}),
            balancer: {
                name: lbHost.name, address: lbHost.address, container: `${name}-lb`, httpPort: cfg.loadBalancer.httpPort,
                httpsPort: cfg.loadBalancer.httpsPort, tls: cfg.loadBalancer.tls !== undefined, serverName, ssh: sshOf(lbHost),
            },
        };
        this.registerOutputs({
            ops: this.ops,
            url: this.url, balancerAddress: this.balancerAddress, nodes: this.nodes,
            initialRootPassword: this.initialRootPassword, endpoints: this.endpoints,
        });
    }
}
