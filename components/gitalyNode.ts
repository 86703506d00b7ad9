// The Gitaly node: GitLab's supported repository storage. The same Omnibus image as the GitLab
// nodes, with only Gitaly running; repositories on this host's own disk, served over TCP to the
// GitLab hosts only, with a token.
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { hostFirewall, omnibusRollout, pinnedContainer } from "./blocks";
import type { HostCommand, HostConnection } from "./host";
import { renderGitalyRb, type GitalyRbInput } from "./render/gitlabRb";
import { gitalyReadinessProbe, waitForReadinessScript } from "./render/scripts";

/** What a GitLab node needs to use the Gitaly node. */
export interface GitalyEndpoint {
    readonly address: string;
    readonly port: number;
    /** Gitaly's auth token (secret). */
    readonly token: pulumi.Output<string>;
    /** gitlab-shell's secret, shared by Gitaly's hooks and the GitLab nodes (secret). */
    readonly shellSecret: pulumi.Output<string>;
}

export interface GitalyNodeArgs {
    /** The host that runs Gitaly and keeps the repositories. */
    readonly host: HostConnection;
    /** The GitLab Omnibus image: the same release as the GitLab nodes. */
    readonly image: string;
    /** Host directory holding config/ (/etc/gitlab), logs/ and data/ (the repositories). */
    readonly dataRoot: string;
    /** Gitaly's port, published on the host's address. */
    readonly port: number;
    /** Where Gitaly's hooks reach GitLab's internal API (the external URL, through the balancer). */
    readonly internalApiUrl: string;
    /** `gitlab.omnibus` settings for this node (its `gitaly`, `logging`, `logrotate` ones). */
    readonly omnibus: GitalyRbInput["omnibus"];
    /** Address ranges the GitLab hosts connect from: the host firewall admits only these. */
    readonly allowedSources: readonly string[];
    readonly readinessTimeoutSeconds: number;
    /** Done before the container starts or is replaced (the upgrade preflight). */
    readonly startAfter?: readonly pulumi.Input<pulumi.Resource>[];
}

export class GitalyNode extends pulumi.ComponentResource {
    readonly containerName: string;
    readonly endpoint: GitalyEndpoint;
    /** This node's gitlab.rb (secret: it holds the token and gitlab-shell's secret). */
    readonly gitlabRb: pulumi.Output<string>;
    readonly container: docker.Container;
    /** Done when Gitaly runs in the (new) container: the migration node may start. */
    readonly ready: HostCommand;
    /** Done when the current gitlab.rb is applied. */
    readonly rollout: HostCommand;

    constructor(name: string, args: GitalyNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        // No args to super: they hold the host connection, whose SSH key must not enter state as a plain input.
        super("gitlab-cluster:gitaly:GitalyNode", name, {}, opts);
        this.containerName = name;
        const configDir = `${args.dataRoot}/config`;
        const token = pulumi.secret(new random.RandomPassword(`${name}-token`, { length: 40, special: false }, { parent: this }).result);
        const shellSecret = pulumi.secret(new random.RandomPassword(`${name}-shell-secret`, { length: 64, special: false }, { parent: this }).result);
        this.endpoint = { address: args.host.address, port: args.port, token, shellSecret };
        this.gitlabRb = pulumi.secret(pulumi.all([token, shellSecret]).apply(([t, s]) => renderGitalyRb({
            nodeName: args.host.name, internalApiUrl: args.internalApiUrl, port: args.port, token: t, shellSecret: s, omnibus: args.omnibus,
        })));
        const configPush = args.host.run(`${name}-gitlab-rb`, {
            writes: { path: `${configDir}/gitlab.rb`, mode: "0600" },
            stdin: this.gitlabRb,
        }, { parent: this });
        const firewall = hostFirewall(args.host, `${name}-firewall`, {
            service: "gitaly", port: args.port, containerPort: args.port, sources: args.allowedSources,
        }, this);
        ({ container: this.container } = pinnedContainer(args.host, this.containerName, {
            image: args.image,
            startAfter: [configPush, ...(firewall ? [firewall] : []), ...(args.startAfter ?? [])],
            container: {
                hostname: args.host.name,
                restart: "unless-stopped",
                ports: [{ internal: args.port, external: args.port, ip: args.host.address }],
                // `gitlab-ctl stop` lets Gitaly finish the RPCs under way.
                stopTimeout: 120,
                volumes: [
                    { hostPath: configDir, containerPath: "/etc/gitlab" },
                    { hostPath: `${args.dataRoot}/logs`, containerPath: "/var/log/gitlab" },
                    { hostPath: `${args.dataRoot}/data`, containerPath: "/var/opt/gitlab" },
                ],
                // The image's own health check asks nginx, which does not run here.
                healthcheck: { tests: ["CMD", "gitlab-ctl", "status", "gitaly"], interval: "60s", timeout: "30s", retries: 5, startPeriod: "300s" },
            },
        }, this));
        const probe = gitalyReadinessProbe(this.containerName);
        this.ready = args.host.run(`${name}-ready`, {
            create: waitForReadinessScript(this.containerName, args.readinessTimeoutSeconds, probe),
            triggers: [this.container.id],
        }, { parent: this, dependsOn: [this.container] });
        this.rollout = omnibusRollout(args.host, `${name}-rollout`, {
            container: this.containerName, gitlabRb: this.gitlabRb, readinessTimeoutSeconds: args.readinessTimeoutSeconds, probe,
            after: [this.ready, configPush],
        }, this);
        this.registerOutputs({ containerName: this.containerName, address: this.endpoint.address, port: this.endpoint.port });
    }
}
