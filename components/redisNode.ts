// Redis for GitLab: password required, append-only data on a retained volume, published on
// its host's address only.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { hostFirewall, pinnedContainer } from "./blocks";
import type { HostConnection } from "./host";
import { renderRedisConf } from "./render/redis";
import { removeFileCommand, restartIfRunningScript } from "./render/scripts";

/** UID of the `redis` user in the official Debian-based image: the config file must be readable by it. */
const REDIS_IMAGE_UID = "999:999";
const CONTAINER_PORT = 6379;

export interface RedisNodeArgs {
    /** The host that runs Redis. */
    readonly host: HostConnection;
    /** A pinned Redis image. */
    readonly image: string;
    /** Port published on the host's address. */
    readonly port: number;
    /** Host directory for redis.conf. */
    readonly dataRoot: string;
    /** Address ranges the GitLab nodes connect from: the host firewall drops everything else. */
    readonly allowedSources: readonly string[];
}

/** What a GitLab node needs to reach Redis. */
export interface RedisEndpoint {
    readonly host: string;
    readonly port: number;
    /** The generated password (secret). */
    readonly password: pulumi.Output<string>;
}

export class RedisNode extends pulumi.ComponentResource {
    /** The generated password (secret). */
    readonly password: pulumi.Output<string>;
    readonly address: string;
    readonly port: number;
    readonly endpoint: RedisEndpoint;
    readonly container: docker.Container;

    constructor(name: string, args: RedisNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:redis:RedisNode", name, {}, opts);
        const containerName = name;
        const confDir = `${args.dataRoot}/conf`;
        this.password = pulumi.secret(new random.RandomPassword(`${name}-password`, { length: 40, special: false }, { parent: this }).result);
        const config = args.host.run(`${name}-config`, {
            writes: { path: `${confDir}/redis.conf`, mode: "0600", owner: REDIS_IMAGE_UID }, create: restartIfRunningScript(containerName),
            delete: removeFileCommand(`${confDir}/redis.conf`),
            stdin: this.password.apply(p => renderRedisConf(CONTAINER_PORT, p)),
        }, { parent: this });
        const firewall = hostFirewall(args.host, `${name}-firewall`, {
            service: "redis", port: args.port, containerPort: CONTAINER_PORT, sources: args.allowedSources,
        }, this);
        const volume = new docker.Volume(`${name}-data`, { name: `${name}-data` }, args.host.dockerOpts(this, { retainOnDelete: true }));
        ({ container: this.container } = pinnedContainer(args.host, containerName, {
            image: args.image,
            startAfter: [config, ...(firewall ? [firewall] : [])],
            container: {
                command: ["redis-server", "/usr/local/etc/redis/redis.conf"],
                restart: "unless-stopped",
                ports: [{ internal: CONTAINER_PORT, external: args.port, ip: args.host.address }],
                volumes: [
                    { volumeName: volume.name, containerPath: "/data" },
                    { hostPath: confDir, containerPath: "/usr/local/etc/redis", readOnly: true },
                ],
                // An unauthenticated PING answers NOAUTH: the server is up, and no password is needed here.
                healthcheck: { tests: ["CMD-SHELL", "redis-cli ping | grep -qE 'PONG|NOAUTH'"], interval: "10s", timeout: "5s", retries: 5, startPeriod: "10s" },
                wait: true,
                waitTimeout: 120,
            },
        }, this));
        this.address = args.host.address;
        this.port = args.port;
        this.endpoint = { host: this.address, port: this.port, password: this.password };
        this.registerOutputs({ password: this.password, address: this.address, port: this.port });
    }
}
