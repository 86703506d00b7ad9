// The deployment graph as Pulumi's engine schedules it: custom resources are steps, component
// resources are not, and a step waits only for its `dependencies` (dependsOn plus outputs used as
// inputs) and its provider. A component's children are not ordered by the component.
import type { RecordedResource } from "../evaluate";

/** One step: a custom resource and the steps it waits for. */
export interface StepNode {
    readonly urn: string;
    readonly deps: readonly string[];
}

export type StepGraph = ReadonlyMap<string, StepNode>;

/** `<provider URN>::<id>` -> the provider's URN. */
export function providerUrn(reference: string): string | undefined {
    if (reference === "") return undefined;
    const cut = reference.lastIndexOf("::");
    return cut < 0 ? reference : reference.slice(0, cut);
}

/**
 * The step graph of an evaluation. A dependency on a component stands for every custom resource
 * under it (that is what the SDK sends for dependsOn a component); a dependency on a URN that is
 * not in the graph is dropped.
 */
export function stepGraph(resources: readonly RecordedResource[]): StepGraph {
    const custom = new Set(resources.filter(r => r.custom).map(r => r.urn));
    const children = new Map<string, string[]>();
    for (const r of resources) {
        if (r.parent === "") continue;
        const list = children.get(r.parent) ?? [];
        list.push(r.urn);
        children.set(r.parent, list);
    }
    const expand = (urn: string, into: Set<string>): void => {
        if (custom.has(urn)) { into.add(urn); return; }
        for (const child of children.get(urn) ?? []) expand(child, into);
    };
    const graph = new Map<string, StepNode>();
    for (const r of resources) {
        if (!r.custom) continue;
        const deps = new Set<string>();
        for (const d of r.dependencies) expand(d, deps);
        const provider = providerUrn(r.provider);
        if (provider !== undefined && custom.has(provider)) deps.add(provider);
        deps.delete(r.urn);
        graph.set(r.urn, { urn: r.urn, deps: [...deps].sort() });
    }
    return graph;
}

/** Steps in an order where every step comes after its dependencies; throws on a cycle. */
export function topologicalOrder(graph: StepGraph): string[] {
    const order: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (urn: string, path: string[]): void => {
        const s = state.get(urn);
        if (s === "done") return;
        if (s === "visiting") throw new Error(`dependency cycle: ${[...path, urn].join(" -> ")}`);
        state.set(urn, "visiting");
        for (const d of graph.get(urn)?.deps ?? []) if (graph.has(d)) visit(d, [...path, urn]);
        state.set(urn, "done");
        order.push(urn);
    };
    for (const urn of [...graph.keys()].sort()) visit(urn, []);
    return order;
}

export interface Shape {
    /** Steps on the longest chain (a graph of independent steps has depth 1). */
    readonly depth: number;
    /** Most steps on one level (level = 1 + the deepest dependency's level). */
    readonly widest: number;
    /** Step count per level, level 1 first. */
    readonly levels: readonly number[];
    /** One longest chain, first step first. */
    readonly longestChain: readonly string[];
}

export function shape(graph: StepGraph): Shape {
    const level = new Map<string, number>();
    const via = new Map<string, string | undefined>();
    for (const urn of topologicalOrder(graph)) {
        let best = 0;
        let from: string | undefined;
        for (const d of graph.get(urn)!.deps) {
            const l = level.get(d) ?? 0;
            if (l > best || (l === best && from !== undefined && d < from)) { best = l; from = d; }
        }
        level.set(urn, best + 1);
        via.set(urn, from);
    }
    const levels: number[] = [];
    for (const l of level.values()) levels[l - 1] = (levels[l - 1] ?? 0) + 1;
    let end: string | undefined;
    for (const [urn, l] of level) if (end === undefined || l > level.get(end)! || (l === level.get(end)! && urn < end)) end = urn;
    const longestChain: string[] = [];
    for (let at = end; at !== undefined; at = via.get(at)) longestChain.unshift(at);
    return { depth: levels.length, widest: Math.max(0, ...levels.map(n => n ?? 0)), levels: levels.map(n => n ?? 0), longestChain };
}

export interface CriticalPath {
    /** Finish time of the last step with unlimited parallelism (seconds). */
    readonly total: number;
    /** The chain that sets it, first step first, with each step's duration. */
    readonly path: readonly { readonly urn: string; readonly seconds: number }[];
    /** Sum of all durations: the same steps done one after another. */
    readonly serial: number;
}

/** Earliest finish of every step when each starts as soon as all its dependencies finish. */
export function criticalPath(graph: StepGraph, seconds: (urn: string) => number): CriticalPath {
    const finish = new Map<string, number>();
    const via = new Map<string, string | undefined>();
    let serial = 0;
    for (const urn of topologicalOrder(graph)) {
        let start = 0;
        let from: string | undefined;
        for (const d of graph.get(urn)!.deps) {
            const f = finish.get(d) ?? 0;
            if (f > start || (f === start && from !== undefined && d < from)) { start = f; from = d; }
        }
        const own = seconds(urn);
        serial += own;
        finish.set(urn, start + own);
        via.set(urn, from);
    }
    let end: string | undefined;
    for (const [urn, f] of finish) if (end === undefined || f > finish.get(end)! || (f === finish.get(end)! && urn < end)) end = urn;
    const path: { urn: string; seconds: number }[] = [];
    for (let at = end; at !== undefined; at = via.get(at)) path.unshift({ urn: at, seconds: seconds(at) });
    // Drop leading zero-length steps that only happen to start the chain.
    while (path.length > 1 && path[0]!.seconds === 0) path.shift();
    return { total: end === undefined ? 0 : finish.get(end)!, path, serial };
}
