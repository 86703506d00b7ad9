// Building blocks every tier uses the same way (as awsx shares its own): a firewall on a
// host's published port, and a pinned container on a host. A tier file then says only what
// is its own: which ports, which volumes, what must be done before the start.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import type { HostCommand, HostConnection } from "./host";
import { installFirewallScript, removeFirewallScript, type FirewallInput } from "./render/firewall";
import { firstStartAppliesScript, reconfigureScript, type ReadinessProbe } from "./render/scripts";

/**
 * The host firewall that admits only `input.sources` to a port published on the host's address,
 * or nothing on a local host (a lab on one machine, which has no LAN to keep out).
 */
export function hostFirewall(host: HostConnection, name: string, input: Omit<FirewallInput, "address" | "bridgeSubnet">,
    parent: pulumi.Resource): HostCommand | undefined {
    if (host.config.local) return undefined;
    const firewall: FirewallInput = { ...input, address: host.address, bridgeSubnet: host.config.dockerBridgeSubnet };
    return host.run(name, { create: installFirewallScript(firewall), delete: removeFirewallScript(firewall) }, { parent });
}

export interface PinnedContainerArgs {
    /** A pinned image reference, pulled on the host and kept there when the container goes. */
    readonly image: string;
    /** Everything of the container but its name and image (both set here). */
    readonly container: Omit<docker.ContainerArgs, "name" | "image">;
    /** Done before the container starts (config files, firewall, data services). */
    readonly startAfter: readonly pulumi.Input<pulumi.Resource>[];
    /** Made between the pull and the start, from the pulled image (volumes, checks of the image). */
    readonly beforeStart?: (image: docker.RemoteImage) => readonly pulumi.Resource[];
}

/**
 * A container named `name` from a pinned image on `host`. A replacement deletes the old container
 * first (it holds the published ports and the name the scripts address it by). Whether `pulumi up`
 * waits for it is the tier's: Docker's health check (`wait`) or a readiness command of its own.
 */
export function pinnedContainer(host: HostConnection, name: string, args: PinnedContainerArgs,
    parent: pulumi.Resource): { readonly image: docker.RemoteImage; readonly container: docker.Container } {
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, host.dockerOpts(parent));
    const more = args.beforeStart?.(image) ?? [];
    const container = new docker.Container(name, { name, image: image.imageId, ...args.container },
        host.dockerOpts(parent, { dependsOn: [...args.startAfter, ...more], deleteBeforeReplace: true }));
    return { image, container };
}

export interface OmnibusRolloutArgs {
    readonly container: string;
    /** The node's gitlab.rb (secret), already pushed by a command in `after`. */
    readonly gitlabRb: pulumi.Output<string>;
    readonly readinessTimeoutSeconds: number;
    /** How to tell the node is ready again; GitLab's /-/readiness by default. */
    readonly probe?: ReadinessProbe;
    /** The push, the node's first readiness, and the previous node's rollout (one node at a time). */
    readonly after: readonly pulumi.Resource[];
}

/**
 * The step that applies a changed gitlab.rb to a running Omnibus node: `gitlab-ctl reconfigure`,
 * then wait until it is ready again. A first start applies the file by itself.
 */
export function omnibusRollout(host: HostConnection, name: string, args: OmnibusRolloutArgs, parent: pulumi.Resource): HostCommand {
    // The file's digest sits in the update script, not in `triggers`: @pulumi/command replaces
    // a command whose triggers change (running `create`), but updates one whose script changes
    // (running `update`). A SHA-256 of a file holding 40-character random secrets reveals
    // nothing of them, so it is unsecreted to keep the script readable in a preview.
    const digest = pulumi.unsecret(args.gitlabRb.apply(text => createHash("sha256").update(text).digest("hex")));
    return host.run(name, {
        create: firstStartAppliesScript(args.container),
        update: digest.apply(hash => reconfigureScript(args.container, args.readinessTimeoutSeconds, `gitlab.rb sha256 ${hash}`, args.probe)),
    }, { parent, dependsOn: [...args.after] });
}
