// One GitLab Omnibus node. Its container's inputs hold nothing that a gitlab.rb change touches:
// gitlab.rb is pushed to the host and applied with `gitlab-ctl reconfigure`, node after node.
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { gitlabRelease } from "./config";
import { hostFirewall, omnibusRollout, pinnedContainer } from "./blocks";
import type { HostCommand, HostConnection } from "./host";
import type { GitalyEndpoint } from "./gitalyNode";
import type { PostgresEndpoint } from "./postgresNode";
import type { RedisEndpoint } from "./redisNode";
import { renderGitlabRb, type GitlabRbInput } from "./render/gitlabRb";
import { SHARE_SENTINEL, SHARE_SENTINEL_IN_CONTAINER, shareGuardEntrypoint, sharedDirectories } from "./render/nfs";
import { readIdentityScript, waitForReadinessScript, writeIdentityScript } from "./render/scripts";
import { postDeployMigrationsScript, SKIP_POST_DEPLOYMENT_MIGRATIONS_ENV, upgradePreflightScript } from "./render/upgrade";
import { GITLAB_REQUIRED_UPGRADE_STOPS, UPGRADE_PATH_DOCS } from "./upgradePath";

const HTTP_PORT = 80;
const SSH_PORT = 22;
/** How long `docker stop` waits for the Omnibus container's `gitlab-ctl stop` before it kills it. */
export const STOP_TIMEOUT_SECONDS = 300;

export interface GitlabNodeArgs {
    /** The host that runs this node. */
    readonly host: HostConnection;
    /** A pinned GitLab Omnibus image. */
    readonly image: string;
    /** Host directory holding config/ (/etc/gitlab), logs/ and data/. */
    readonly dataRoot: string;
    /** The external URL, as users and the balancer see it. */
    readonly externalUrl: string;
    /** The PostgreSQL tier's endpoint (its password is secret). */
    readonly database: PostgresEndpoint;
    /** The Redis tier's endpoint (its password is secret). */
    readonly redis: RedisEndpoint;
    /** The port git-over-SSH is reached on at the balancer (shown in clone URLs). */
    readonly balancerSshPort: number;
    /** On the migration node: root's password when the database is first seeded (secret). */
    readonly initialRootPassword?: pulumi.Output<string>;
    /** On the backup node: how long archives are kept. */
    readonly backupKeepTimeSeconds?: number;
    /** `gitlab.rails` and `gitlab.omnibus` settings, written into every node's gitlab.rb. */
    readonly rails: GitlabRbInput["rails"];
    readonly omnibus: GitlabRbInput["omnibus"];
    /** The Gitaly node, when repositories live there (its token and gitlab-shell's secret are secret). */
    readonly gitaly?: GitalyEndpoint;
    /** The Gitaly node's readiness: the container waits for it (the upgrade preflight does not). */
    readonly storageReady?: pulumi.Input<pulumi.Resource>;
    /**
     * The migration (deploy) node starts first, is the source of the shared secrets and host keys,
     * runs the upgrade preflight and only the regular migrations at its start.
     */
    readonly migrationNode: boolean;
    /** Not on the migration node: its upgrade preflight, which this node's container waits for. */
    readonly upgradePreflight?: pulumi.Resource;
    /** The migration node's gitlab-secrets.json and SSH host keys (base64 tar, secret); not on the migration node. */
    readonly sharedIdentity?: pulumi.Input<string>;
    /** Root of the NFS-shared directories on this host (export or mount); none for a single node. */
    readonly sharedRoot?: string;
    /** Port the container's sshd is published on. */
    readonly sshPort: number;
    /** Address ranges the balancer connects from: the host firewall admits only these to the published ports. */
    readonly balancerSources: readonly string[];
    readonly readinessTimeoutSeconds: number;
    /** Done before this container starts: the database, the NFS mount, the previous node's readiness. */
    readonly startAfter?: readonly pulumi.Resource[];
    /** The previous node's rollout step: reconfigures run one node at a time, in order. */
    readonly previousRollout?: pulumi.Resource;
}

export class GitlabNode extends pulumi.ComponentResource {
    readonly containerName: string;
    /** This node's gitlab.rb (secret: it holds the database and Redis passwords). */
    readonly gitlabRb: pulumi.Output<string>;
    readonly container: docker.Container;
    readonly configPush: HostCommand;
    /** Done when the node answers /-/readiness after its container started. */
    readonly ready: HostCommand;
    /** Done when the current gitlab.rb is applied and the node is ready again. */
    readonly rollout: HostCommand;
    /** On the migration node: its shared secrets and host keys, read once (secret). */
    readonly identity?: pulumi.Output<string>;
    /** On the migration node: the check run before any GitLab container is replaced for a new image. */
    readonly upgradePreflight?: HostCommand;
    private readonly host: HostConnection;
    private readonly image: string;
    private readonly migrationNode: boolean;

    constructor(name: string, args: GitlabNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:gitlab:GitlabNode", name, {}, opts);
        this.containerName = name;
        this.host = args.host;
        this.image = args.image;
        this.migrationNode = args.migrationNode;
        const configDir = `${args.dataRoot}/config`;
        const gitlabRb = pulumi.secret(pulumi
            .all([args.database.password, args.redis.password, args.initialRootPassword, args.gitaly?.token, args.gitaly?.shellSecret])
            .apply(([databasePassword, redisPassword, initialRootPassword, gitalyToken, shellSecret]) => renderGitlabRb({
                nodeName: args.host.name,
                externalUrl: args.externalUrl,
                migrationNode: args.migrationNode,
                database: { host: args.database.host, port: args.database.port, name: args.database.name, user: args.database.user, password: databasePassword },
                redis: { host: args.redis.host, port: args.redis.port, password: redisPassword },
                balancerSources: args.balancerSources,
                sshPort: args.balancerSshPort,
                initialRootPassword,
                backupKeepTimeSeconds: args.backupKeepTimeSeconds,
                rails: args.rails,
                omnibus: args.omnibus,
                gitaly: args.gitaly === undefined ? undefined
                    : { address: args.gitaly.address, port: args.gitaly.port, token: gitalyToken!, shellSecret: shellSecret! },
            })));
        this.gitlabRb = gitlabRb;
        this.configPush = args.host.run(`${name}-gitlab-rb`, {
            writes: { path: `${configDir}/gitlab.rb`, mode: "0600" },
            stdin: gitlabRb,
        }, { parent: this });
        if (args.migrationNode) {
            const target = gitlabRelease(args.image);
            if (target === undefined) throw new pulumi.ResourceError(`gitlab.image "${args.image}" names no GitLab release: the upgrade preflight needs its tag`, this);
            // Runs again for every new image (a trigger change replaces the command, which runs `create`),
            // before any GitLab container is replaced: a refusal leaves every node running as it was.
            this.upgradePreflight = args.host.run(`${name}-upgrade-preflight`, {
                create: upgradePreflightScript({ container: this.containerName, target, stops: GITLAB_REQUIRED_UPGRADE_STOPS, upgradePathDocs: UPGRADE_PATH_DOCS }),
                triggers: [args.image],
            }, { parent: this, dependsOn: [...(args.startAfter ?? [])] });
        }
        const preflight = this.upgradePreflight ?? args.upgradePreflight;
        const beforeStart: pulumi.Resource[] = [this.configPush, ...(args.startAfter ?? []), ...(preflight ? [preflight] : [])];
        // Without it, clients on the LAN reach a node's HTTP and SSH around the balancer and its TLS.
        for (const [service, port, containerPort] of [["http", HTTP_PORT, HTTP_PORT], ["ssh", args.sshPort, SSH_PORT]] as const) {
            const firewall = hostFirewall(args.host, `${name}-firewall-${service}`, { service: `gitlab-${service}`, port, containerPort, sources: args.balancerSources }, this);
            if (firewall) beforeStart.push(firewall);
        }
        if (args.sharedIdentity !== undefined) {
            beforeStart.push(args.host.run(`${name}-identity`, {
                create: writeIdentityScript(configDir),
                stdin: args.sharedIdentity,
            }, { parent: this }));
        }
        const shared = args.sharedRoot === undefined ? [] : [
            ...sharedDirectories(args.gitaly !== undefined).map(d => ({ hostPath: `${args.sharedRoot}/${d.dir}`, containerPath: d.containerPath })),
            { hostPath: `${args.sharedRoot}/${SHARE_SENTINEL}`, containerPath: SHARE_SENTINEL_IN_CONTAINER, readOnly: true },
        ];
        // The image is pulled without waiting for the upgrade preflight: every node has the new image
        // before its turn (shorter downtime per node), and a refused upgrade leaves only an unused image.
        ({ container: this.container } = pinnedContainer(args.host, this.containerName, {
            image: args.image,
            startAfter: [...beforeStart, ...(args.storageReady ? [args.storageReady] : [])],
            container: {
                hostname: args.host.name,
                // With shared storage: never start on an empty mount point (a reboot whose NFS mount failed).
                ...(args.sharedRoot === undefined ? {} : { entrypoints: shareGuardEntrypoint(args.sharedRoot) }),
                restart: "unless-stopped",
                // The deploy node's starts run the regular migrations only (GitLab's zero-downtime upgrade);
                // the post-deployment ones run once every node runs the release (postDeployMigrations).
                ...(args.migrationNode ? { envs: [SKIP_POST_DEPLOYMENT_MIGRATIONS_ENV] } : {}),
                ports: [
                    { internal: HTTP_PORT, external: HTTP_PORT, ip: args.host.address },
                    { internal: SSH_PORT, external: args.sshPort, ip: args.host.address },
                ],
                // The image's SIGTERM handler runs a full `gitlab-ctl stop`: Docker's default 10 s cuts it short.
                stopTimeout: STOP_TIMEOUT_SECONDS,
                volumes: [
                    { hostPath: configDir, containerPath: "/etc/gitlab" },
                    { hostPath: `${args.dataRoot}/logs`, containerPath: "/var/log/gitlab" },
                    { hostPath: `${args.dataRoot}/data`, containerPath: "/var/opt/gitlab" },
                    ...shared,
                ],
                shmSize: 256,
                healthcheck: { tests: ["CMD", "/opt/gitlab/bin/gitlab-healthcheck", "--fail", "--max-time", "10"], interval: "60s", timeout: "30s", retries: 5, startPeriod: "600s" },
            },
        }, this));
        this.ready = args.host.run(`${name}-ready`, {
            create: waitForReadinessScript(this.containerName, args.readinessTimeoutSeconds),
            triggers: [this.container.id],
        }, { parent: this, dependsOn: [this.container] });
        // A first start applies gitlab.rb by itself; later changes reconfigure in place, in node order.
        this.rollout = omnibusRollout(args.host, `${name}-rollout`, {
            container: this.containerName, gitlabRb, readinessTimeoutSeconds: args.readinessTimeoutSeconds,
            after: [this.ready, this.configPush, ...(args.previousRollout ? [args.previousRollout] : [])],
        }, this);
        if (args.migrationNode) {
            // Read again whenever the container is new (a new image may add a secret): the other
            // nodes then get the new file before they start on that image.
            this.identity = pulumi.secret(args.host.run(`${name}-read-identity`, {
                create: readIdentityScript(configDir),
                triggers: [this.container.id],
                secretStdout: true,
            }, { parent: this, dependsOn: [this.ready] }).stdout);
        }
        this.registerOutputs({ containerName: this.containerName });
    }

    /**
     * On the migration node: GitLab's post-deployment migrations, once per image, after `after`
     * (every node's readiness on that image). A failure stops the run; the next `pulumi up` runs it again.
     */
    postDeployMigrations(after: readonly pulumi.Resource[]): HostCommand {
        if (!this.migrationNode) throw new pulumi.ResourceError("post-deployment migrations run on the migration node only", this);
        const release = gitlabRelease(this.image)?.text ?? this.image;
        return this.host.run(`${this.containerName}-post-deploy-migrations`, {
            create: postDeployMigrationsScript(this.containerName, release),
            triggers: [this.image],
        }, { parent: this, dependsOn: [...after] });
    }
}
