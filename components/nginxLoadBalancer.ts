// nginx in front of the GitLab nodes: HTTP(S) and git-over-SSH, config reloaded in place.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { pinnedContainer } from "./blocks";
import type { HostConnection } from "./host";
import { installTlsPairScript, nginxReloadScript, renderNginxConf, TLS_FILES, type NginxUpstreamNode } from "./render/nginxConf";

const CONFIG_DIR = "/etc/nginx/gitlab-cluster";
const HEALTH_PORT = 8081;

/** The nginx version of an image tagged with it (`nginx:1.27.4-bookworm` -> `1.27.4`); undefined for a digest or another tag. */
export function nginxImageVersion(image: string): string | undefined {
    return /:(\d+\.\d+\.\d+)(?:-[^/]*)?$/.exec(image.slice(image.lastIndexOf("/") + 1))?.[1];
}

export interface NginxLoadBalancerArgs {
    /** The host that runs the balancer. */
    readonly host: HostConnection;
    /** A pinned nginx image (the official one has the stream module built in). */
    readonly image: string;
    /** Host directory for nginx.conf and TLS files, mounted read-only into the container. */
    readonly configRoot: string;
    readonly serverName: string;
    readonly nodes: readonly NginxUpstreamNode[];
    readonly listenAddress: string;
    readonly httpPort: number;
    readonly httpsPort: number;
    readonly sshPort: number;
    /** TLS certificate chain and key (secret); TLS ends here when set. */
    readonly tls?: { readonly certificate: pulumi.Input<string>; readonly privateKey: pulumi.Input<string> };
    /** Read and send timeout to the nodes, for long requests (clones, pushes, long polling). */
    readonly proxyReadTimeoutSeconds: number;
    /** Connect timeout to a node (at most UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS): a node that is off waits it out per request. */
    readonly proxyConnectTimeoutSeconds: number;
    /** Resources that must be done before traffic is sent (the nodes' readiness). */
    readonly startAfter?: readonly pulumi.Resource[];
}

export class NginxLoadBalancer extends pulumi.ComponentResource {
    readonly nginxConf: string;
    readonly container: docker.Container;

    constructor(name: string, args: NginxLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:loadbalancer:NginxLoadBalancer", name, {}, opts);
        const containerName = name;
        this.nginxConf = renderNginxConf({
            serverName: args.serverName,
            nodes: args.nodes,
            httpPort: args.httpPort,
            httpsPort: args.httpsPort,
            sshPort: args.sshPort,
            tls: args.tls ? { certificatePath: `${CONFIG_DIR}/tls/${TLS_FILES.certificate}`, privateKeyPath: `${CONFIG_DIR}/tls/${TLS_FILES.key}` } : undefined,
            proxyReadTimeoutSeconds: args.proxyReadTimeoutSeconds,
            proxyConnectTimeoutSeconds: args.proxyConnectTimeoutSeconds,
            healthPort: HEALTH_PORT,
            nginxVersion: nginxImageVersion(args.image),
        });
        const reload = nginxReloadScript(containerName, `${CONFIG_DIR}/nginx.conf`);
        const files: pulumi.Resource[] = [];
        if (args.tls) {
            // The certificate and the key are staged beside the live pair (in `new/`); one step then
            // checks that they belong together and only then moves both in place and reloads. A
            // mismatched pair stops the update and nginx keeps serving the old one.
            const tlsDir = `${args.configRoot}/tls`;
            const certificate = args.host.run(`${name}-tls-certificate`, {
                writes: { path: `${tlsDir}/${TLS_FILES.stagingDir}/${TLS_FILES.certificate}`, mode: "0644" },
                stdin: args.tls.certificate,
            }, { parent: this });
            const key = args.host.run(`${name}-tls-key`, {
                writes: { path: `${tlsDir}/${TLS_FILES.stagingDir}/${TLS_FILES.key}`, mode: "0600" },
                stdin: pulumi.secret(args.tls.privateKey),
            }, { parent: this });
            const digest = pulumi.unsecret(pulumi.all([args.tls.certificate, args.tls.privateKey])
                .apply(([c, k]) => createHash("sha256").update(c).update("\0").update(k).digest("hex")));
            files.push(certificate, key, args.host.run(`${name}-tls-reload`, {
                create: installTlsPairScript({ dir: tlsDir, then: reload }),
                update: digest.apply(d => installTlsPairScript({ dir: tlsDir, then: reload, revision: `certificate and key sha256 ${d}` })),
            }, { parent: this, dependsOn: [certificate, key] }));
        }
        files.push(args.host.run(`${name}-config`, {
            writes: { path: `${args.configRoot}/nginx.conf`, mode: "0644" }, create: reload,
            stdin: this.nginxConf,
        }, { parent: this, dependsOn: files.slice() }));
        const ports: docker.types.input.ContainerPort[] = [
            { internal: args.httpPort, external: args.httpPort, ip: args.listenAddress },
            { internal: args.sshPort, external: args.sshPort, ip: args.listenAddress },
            ...(args.tls ? [{ internal: args.httpsPort, external: args.httpsPort, ip: args.listenAddress }] : []),
        ];
        ({ container: this.container } = pinnedContainer(args.host, containerName, {
            image: args.image,
            startAfter: [...files, ...(args.startAfter ?? [])],
            container: {
                command: ["nginx", "-c", `${CONFIG_DIR}/nginx.conf`, "-g", "daemon off;"],
                restart: "unless-stopped",
                ports,
                volumes: [{ hostPath: args.configRoot, containerPath: CONFIG_DIR, readOnly: true }],
                healthcheck: { tests: ["CMD", "curl", "-fsS", "-o", "/dev/null", `http://127.0.0.1:${HEALTH_PORT}/nginx-health`], interval: "10s", timeout: "5s", retries: 3, startPeriod: "5s" },
                wait: true,
                waitTimeout: 60,
            },
        }, this));
        this.registerOutputs({ nginxConf: this.nginxConf });
    }
}
