// PostgreSQL for GitLab: a `gitlab` role owning the GitLab database with the extensions GitLab
// needs, scram password access from the GitLab nodes only, data on a retained volume.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { hostFirewall, pinnedContainer } from "./blocks";
import type { HostConnection } from "./host";
import {
    postgresCommand, postgresConnectionDemand, postgresMajorCheckScript, postgresMaxConnections, postgresReloadScript, postgresServerArgs,
    postgresSqlFromStdinScript, renderGitlabRoleSql, renderPgHba, type RailsNodeDatabaseClients,
} from "./render/postgres";

/** UID of the `postgres` user in the official Debian-based image. */
const POSTGRES_IMAGE_UID = "999:999";
const CONTAINER_PORT = 5432;
const HBA_DIR = "/etc/postgresql/gitlab-cluster";
const SECRETS_DIR = "/run/secrets/gitlab-cluster";

export interface PostgresNodeArgs {
    /** The host that runs PostgreSQL. */
    readonly host: HostConnection;
    /** A pinned PostgreSQL image. */
    readonly image: string;
    /** Port published on the host's address. */
    readonly port: number;
    readonly database: string;
    readonly user: string;
    /** Host directory for pg_hba.conf and the superuser password file. */
    readonly dataRoot: string;
    /** Address ranges the GitLab nodes connect from: pg_hba admits and the host firewall lets in only these. */
    readonly clientRanges: readonly string[];
    /** How many GitLab nodes connect: with `gitlabNodeClients`, it sizes max_connections. */
    readonly gitlabNodes: number;
    /** The processes of each GitLab node that hold database connections. */
    readonly gitlabNodeClients: RailsNodeDatabaseClients;
    /** Replaces the derived max_connections. */
    readonly maxConnections?: number;
}

/** What a GitLab node needs to reach its database. */
export interface PostgresEndpoint {
    readonly host: string;
    readonly port: number;
    readonly name: string;
    readonly user: string;
    /** The role's generated password (secret). */
    readonly password: pulumi.Output<string>;
}

export class PostgresNode extends pulumi.ComponentResource {
    /** The `gitlab` role's generated password (secret). */
    readonly password: pulumi.Output<string>;
    readonly address: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
    readonly endpoint: PostgresEndpoint;
    /** The server's max_connections: derived from the GitLab nodes, or the configured override. */
    readonly maxConnections: number;
    readonly container: docker.Container;
    /** Done when the role, database and extensions exist: GitLab may connect. */
    readonly ready: pulumi.Resource;

    constructor(name: string, args: PostgresNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:postgres:PostgresNode", name, {}, opts);
        const containerName = name;
        const demand = postgresConnectionDemand(args.gitlabNodes, args.gitlabNodeClients);
        this.maxConnections = args.maxConnections ?? postgresMaxConnections(args.gitlabNodes, args.gitlabNodeClients);
        if (this.maxConnections < demand) {
            void pulumi.log.warn(`postgres.maxConnections is ${this.maxConnections}, below the ${demand} connections ${args.gitlabNodes} GitLab node(s) may open: `
                + "under load GitLab will get \"too many clients already\" (see README, PostgreSQL connections)", this);
        }
        this.password = pulumi.secret(new random.RandomPassword(`${name}-password`, { length: 40, special: false }, { parent: this }).result);
        const superuserPassword = pulumi.secret(new random.RandomPassword(`${name}-superuser-password`, { length: 40, special: false }, { parent: this }).result);
        const superuserFile = args.host.run(`${name}-superuser-password`, {
            writes: { path: `${args.dataRoot}/secrets/superuser-password`, mode: "0600", owner: POSTGRES_IMAGE_UID },
            stdin: superuserPassword,
        }, { parent: this });
        const hba = args.host.run(`${name}-hba`, {
            writes: { path: `${args.dataRoot}/conf/pg_hba.conf`, mode: "0644" }, create: postgresReloadScript(containerName),
            stdin: renderPgHba({ database: args.database, user: args.user, clientRanges: args.clientRanges }),
        }, { parent: this });
        const firewall = hostFirewall(args.host, `${name}-firewall`, {
            service: "postgres", port: args.port, containerPort: CONTAINER_PORT, sources: args.clientRanges,
        }, this);
        const volumeName = `${name}-data`;
        const volume = new docker.Volume(`${name}-data`, { name: volumeName }, args.host.dockerOpts(this, { retainOnDelete: true }));
        ({ container: this.container } = pinnedContainer(args.host, containerName, {
            image: args.image,
            startAfter: [superuserFile, hba, ...(firewall ? [firewall] : [])],
            // A new major cannot start on the volume's data: refuse before the old container is replaced.
            beforeStart: image => [args.host.run(`${name}-major-check`, {
                create: postgresMajorCheckScript({ volume: volumeName, image: args.image }),
                triggers: [args.image],
            }, { parent: this, dependsOn: [image] })],
            container: {
                // The superuser password comes by file, read only while an empty volume is initialised:
                // the server itself starts without it in its environment (see postgresCommand).
                command: postgresCommand(postgresServerArgs({ hbaFile: `${HBA_DIR}/pg_hba.conf`, maxConnections: this.maxConnections })),
                envs: [`POSTGRES_PASSWORD_FILE=${SECRETS_DIR}/superuser-password`, "POSTGRES_HOST_AUTH_METHOD=scram-sha-256"],
                restart: "unless-stopped",
                ports: [{ internal: CONTAINER_PORT, external: args.port, ip: args.host.address }],
                volumes: [
                    { volumeName: volume.name, containerPath: "/var/lib/postgresql/data" },
                    { hostPath: `${args.dataRoot}/conf`, containerPath: HBA_DIR, readOnly: true },
                    { hostPath: `${args.dataRoot}/secrets`, containerPath: SECRETS_DIR, readOnly: true },
                ],
                healthcheck: { tests: ["CMD", "pg_isready", "-h", "/var/run/postgresql", "-U", "postgres"], interval: "10s", timeout: "5s", retries: 10, startPeriod: "30s" },
                shmSize: 256,
                wait: true,
                waitTimeout: 300,
            },
        }, this));
        // psql reads the SQL, password included, from stdin: it never reaches a command line.
        this.ready = args.host.run(`${name}-gitlab-role`, {
            create: postgresSqlFromStdinScript(containerName),
            stdin: this.password.apply(p => renderGitlabRoleSql(args.database, args.user, p)),
            triggers: [this.container.id],
        }, { parent: this, dependsOn: [this.container] });
        this.address = args.host.address;
        this.port = args.port;
        this.database = args.database;
        this.user = args.user;
        this.endpoint = { host: this.address, port: this.port, name: this.database, user: this.user, password: this.password };
        this.registerOutputs({ password: this.password, address: this.address, port: this.port, maxConnections: this.maxConnections });
    }
}
