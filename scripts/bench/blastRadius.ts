// What `pulumi preview` would show for a change: compare two evaluations' inputs, resource by
// URN, and classify each resource as create / update / replace / delete / same using the
// providers' replace-on-change fields below.
import type { RecordedResource } from "../evaluate";

export type Operation = "create" | "update" | "replace" | "delete" | "same";

export interface ReplaceSemantics {
    /** Whether a change to this top-level input replaces the resource (else it updates in place). */
    readonly replaces: (input: string) => boolean;
    readonly source: string;
}

// docker_container arguments without ForceNew (the only ones changed in place).
const CONTAINER_IN_PLACE = new Set([
    "rm", "start", "wait", "waitTimeout", "attach", "logs", "mustRun", "restart", "maxRetryCount", "removeVolumes",
    "tmpfs", "destroyGraceSeconds", "memory", "memorySwap", "cpuShares", "cpuSet", "healthcheck",
    "containerReadRefreshTimeoutMilliseconds", "init",
]);

/** Replace-on-change fields per resource type, for the provider versions this project pins. */
export const REPLACE_SEMANTICS: Readonly<Record<string, ReplaceSemantics>> = {
    // @pulumi/docker 4.x bridges kreuzwerker/terraform-provider-docker: in
    // internal/provider/resource_docker_container.go every argument is ForceNew except the ones in
    // CONTAINER_IN_PLACE (resourceDockerContainerUpdate changes only restart, max_retry_count,
    // cpu_shares, memory, cpu_set, memory_swap on the live container).
    "docker:index/container:Container": {
        replaces: input => !CONTAINER_IN_PLACE.has(input),
        source: "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_container.go (ForceNew per argument)",
    },
    // resource_docker_image.go: name, pull_trigger(s), triggers, build and platform are ForceNew;
    // keep_locally and force_remove only change what a destroy does.
    "docker:index/remoteImage:RemoteImage": {
        replaces: input => !["keepLocally", "forceRemove"].includes(input),
        source: "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_image.go (name: ForceNew)",
    },
    // resource_docker_volume.go has no Update: name, driver, driver_opts and labels are all ForceNew.
    "docker:index/volume:Volume": {
        replaces: () => true,
        source: "kreuzwerker/terraform-provider-docker internal/provider/resource_docker_volume.go (all ForceNew, no Update)",
    },
    // A bridged provider's DiffConfig replaces only on fields marked ForcesProviderReplace
    // (pulumi/pulumi-terraform-bridge#1683); explicit providers defer to DiffConfig since
    // pulumi/pulumi#18509. pulumi-docker marks none, so a config change updates the provider.
    "pulumi:providers:docker": {
        replaces: input => input === "version",
        source: "pulumi/pulumi-terraform-bridge#1683 (DiffConfig), pulumi/pulumi#18509; no ForcesProviderReplace in pulumi-docker (assumed)",
    },
    // @pulumi/command 1.2.1: the SDK registers every Command with replaceOnChanges ["triggers[*]"]
    // (node_modules/@pulumi/command/remote/command.js and local/command.js), and the engine turns
    // any change under a replaceOnChanges path into a replace (applyReplaceOnChanges in
    // pulumi/pulumi pkg/resource/deploy/step_generator.go) whether or not `update` is set: the
    // .d.ts doc ("if the update command was provided the resource will be updated") is wrong, see
    // pulumi/pulumi-command#855. `connection` is replaceOnChanges in the provider
    // (provider/pkg/provider/remote/command.go). Everything else updates in place and runs
    // `update`, or `create` again when there is no `update`.
    "command:remote:Command": {
        replaces: input => input === "triggers" || input === "connection",
        source: "node_modules/@pulumi/command/remote/command.js replaceOnChanges [\"triggers[*]\"]; pulumi/pulumi-command#855; remote/command.go connection replaceOnChanges",
    },
    "command:local:Command": {
        replaces: input => input === "triggers",
        source: "node_modules/@pulumi/command/local/command.js replaceOnChanges [\"triggers[*]\"]; pulumi/pulumi-command#855",
    },
    // terraform-provider-random: every random_password argument (length, special, keepers, ...)
    // has a RequiresReplace plan modifier; there is no in-place update.
    "random:index/randomPassword:RandomPassword": {
        replaces: () => true,
        source: "hashicorp/terraform-provider-random resource_password (all arguments RequiresReplace)",
    },
};

export interface Classified {
    readonly urn: string;
    readonly name: string;
    readonly type: string;
    readonly op: Operation;
    /** Top-level inputs that differ, or become unknown because a resource they come from is created or replaced. */
    readonly changedInputs: readonly string[];
    /** The subset of changedInputs that forces the replace. */
    readonly replaceInputs: readonly string[];
}

/** Top-level input keys whose values differ between two input bags. */
export function changedKeys(before: Readonly<Record<string, unknown>>, after: Readonly<Record<string, unknown>>): string[] {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].filter(k => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

/**
 * Classifies every custom resource of `after` (and those only in `before`) as a preview would.
 * An input whose property dependencies include a resource that is created or replaced counts as
 * changed: its value is unknown in the preview and changes on `up` (a new image ID, container ID).
 * Outputs of in-place updates are taken as stable. Types missing from `semantics` are treated as
 * replacing on any change, and reported.
 */
export function classify(
    before: readonly RecordedResource[], after: readonly RecordedResource[],
    semantics: Readonly<Record<string, ReplaceSemantics>> = REPLACE_SEMANTICS,
): { readonly resources: readonly Classified[]; readonly unknownTypes: readonly string[] } {
    const old = new Map(before.filter(r => r.custom).map(r => [r.urn, r]));
    const ops = new Map<string, Operation>();
    const result: Classified[] = [];
    const unknownTypes = new Set<string>();
    // Registration order puts every resource after the ones whose outputs it takes.
    for (const r of after.filter(x => x.custom)) {
        const prior = old.get(r.urn);
        if (prior === undefined) {
            ops.set(r.urn, "create");
            result.push({ urn: r.urn, name: r.name, type: r.type, op: "create", changedInputs: [], replaceInputs: [] });
            continue;
        }
        const changed = new Set(changedKeys(prior.inputs, r.inputs));
        for (const [input, from] of Object.entries(r.propertyDependencies)) {
            if (from.some(u => ops.get(u) === "create" || ops.get(u) === "replace")) changed.add(input);
        }
        const rules = semantics[r.type];
        if (rules === undefined && changed.size > 0) unknownTypes.add(r.type);
        const replaceInputs = [...changed].filter(k => rules === undefined || rules.replaces(k)).sort();
        const op: Operation = changed.size === 0 ? "same" : replaceInputs.length > 0 ? "replace" : "update";
        ops.set(r.urn, op);
        result.push({ urn: r.urn, name: r.name, type: r.type, op, changedInputs: [...changed].sort(), replaceInputs });
    }
    const now = new Set(after.map(r => r.urn));
    for (const r of before) {
        if (r.custom && !now.has(r.urn)) result.push({ urn: r.urn, name: r.name, type: r.type, op: "delete", changedInputs: [], replaceInputs: [] });
    }
    return { resources: result, unknownTypes: [...unknownTypes].sort() };
}

/** Count per operation, `same` included. */
export function summarize(resources: readonly Classified[]): Record<Operation, number> {
    const counts: Record<Operation, number> = { create: 0, update: 0, replace: 0, delete: 0, same: 0 };
    for (const r of resources) counts[r.op]++;
    return counts;
}
