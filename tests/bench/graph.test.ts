// Depth, width and critical path on small hand-made graphs with known answers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RecordedResource } from "../../scripts/evaluate";
import { criticalPath, providerUrn, shape, stepGraph, topologicalOrder, type StepGraph } from "../../scripts/bench/graph";

function graph(edges: Record<string, string[]>): StepGraph {
    return new Map(Object.entries(edges).map(([urn, deps]) => [urn, { urn, deps }]));
}

function resource(urn: string, more: Partial<RecordedResource> = {}): RecordedResource {
    return {
        urn, type: "t", name: urn, custom: true, parent: "", provider: "", dependencies: [], propertyDependencies: {},
        inputs: {}, secretInputs: [], additionalSecretOutputs: [], ...more,
    };
}

describe("graph shape", () => {
    // a -> b -> d, a -> c -> d, e alone: levels [a, e], [b, c], [d]
    const diamond = graph({ a: [], b: ["a"], c: ["a"], d: ["b", "c"], e: [] });

    it("measures depth as the longest chain and width as the fullest level", () => {
        const s = shape(diamond);
        assert.equal(s.depth, 3);
        assert.deepEqual(s.levels, [2, 2, 1]);
        assert.equal(s.widest, 2);
        assert.deepEqual(s.longestChain, ["a", "b", "d"]);
    });

    it("grows with a chain and not with parallel steps", () => {
        assert.equal(shape(graph({ a: [], b: ["a"], c: ["b"], d: ["c"] })).depth, 4);
        assert.equal(shape(graph({ a: [], b: [], c: [], d: [] })).depth, 1);
        assert.equal(shape(graph({ a: [], b: [], c: [], d: [] })).widest, 4);
    });

    it("orders dependencies first and refuses a cycle", () => {
        const order = topologicalOrder(diamond);
        assert.ok(order.indexOf("a") < order.indexOf("b") && order.indexOf("c") < order.indexOf("d"));
        assert.throws(() => topologicalOrder(graph({ a: ["b"], b: ["a"] })), /cycle/);
    });
});

describe("critical path", () => {
    it("takes the slowest chain with unlimited parallelism, and the sum for one-after-another", () => {
        const g = graph({ pull: [], db: [], start: ["pull", "db"], ready: ["start"], lb: ["ready"], side: ["pull"] });
        const d: Record<string, number> = { pull: 90, db: 20, start: 5, ready: 400, lb: 10, side: 600 };
        const cp = criticalPath(g, u => d[u]!);
        assert.equal(cp.total, 690, "pull 90 + side 600 beats pull 90 + start 5 + ready 400 + lb 10 = 505");
        assert.deepEqual(cp.path.map(p => p.urn), ["pull", "side"]);
        assert.equal(cp.serial, 1125);
    });

    it("passes through zero-length steps (unchanged resources still order their dependents)", () => {
        const g = graph({ a: [], b: ["a"], c: ["b"] });
        const cp = criticalPath(g, u => (u === "b" ? 0 : 10));
        assert.equal(cp.total, 20);
        assert.deepEqual(cp.path.map(p => p.urn), ["a", "b", "c"]);
    });
});

describe("step graph from recorded resources", () => {
    it("keeps custom resources only, expands a dependency on a component to its custom children, adds the provider", () => {
        const rs = [
            resource("comp", { custom: false }),
            resource("prov"),
            resource("child1", { parent: "comp", provider: "prov::prov-id" }),
            resource("child2", { parent: "comp" }),
            resource("user", { dependencies: ["comp"] }),
            resource("orphan", { parent: "comp", dependencies: ["missing"] }),
        ];
        const g = stepGraph(rs);
        assert.equal(g.has("comp"), false);
        assert.deepEqual(g.get("child1")!.deps, ["prov"]);
        assert.deepEqual(g.get("user")!.deps, ["child1", "child2", "orphan"]);
        assert.deepEqual(g.get("orphan")!.deps, [], "a URN outside the graph is dropped");
    });

    it("does not order a component's children after what the component depends on (parents do not order)", () => {
        const rs = [resource("first"), resource("comp", { custom: false, dependencies: ["first"] }), resource("child", { parent: "comp" })];
        assert.deepEqual(stepGraph(rs).get("child")!.deps, []);
    });

    it("reads the provider URN out of a provider reference", () => {
        assert.equal(providerUrn("urn:pulumi:s::p::pulumi:providers:docker::x::abc-id"), "urn:pulumi:s::p::pulumi:providers:docker::x");
        assert.equal(providerUrn(""), undefined);
    });
});
