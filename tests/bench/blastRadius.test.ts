// Replace vs update classification, as a preview would show it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RecordedResource } from "../../scripts/evaluate";
import { changedKeys, classify, REPLACE_SEMANTICS, summarize } from "../../scripts/bench/blastRadius";

const CONTAINER = "docker:index/container:Container";
const IMAGE = "docker:index/remoteImage:RemoteImage";
const COMMAND = "command:remote:Command";

function r(urn: string, type: string, inputs: Record<string, unknown>, propertyDependencies: Record<string, string[]> = {}): RecordedResource {
    return {
        urn, type, name: urn, custom: true, parent: "", provider: "", dependencies: Object.values(propertyDependencies).flat(),
        propertyDependencies, inputs, secretInputs: [], additionalSecretOutputs: [],
    };
}

const opOf = (rs: ReturnType<typeof classify>, urn: string) => rs.resources.find(c => c.urn === urn)?.op;

describe("blast radius", () => {
    it("a container's restart policy updates in place; its ports replace it", () => {
        const before = [r("c", CONTAINER, { restart: "no", ports: [{ internal: 80 }] })];
        assert.equal(opOf(classify(before, [r("c", CONTAINER, { restart: "always", ports: [{ internal: 80 }] })]), "c"), "update");
        assert.equal(opOf(classify(before, [r("c", CONTAINER, { restart: "no", ports: [{ internal: 81 }] })]), "c"), "replace");
    });

    it("a command's stdin updates in place, its triggers replace it even with an update command set", () => {
        const before = [r("cmd", COMMAND, { create: "echo", update: "reconfigure", stdin: "a", triggers: ["h1"] })];
        const stdin = classify(before, [r("cmd", COMMAND, { create: "echo", update: "reconfigure", stdin: "b", triggers: ["h1"] })]);
        assert.equal(opOf(stdin, "cmd"), "update");
        const triggers = classify(before, [r("cmd", COMMAND, { create: "echo", update: "reconfigure", stdin: "a", triggers: ["h2"] })]);
        assert.equal(opOf(triggers, "cmd"), "replace");
        assert.deepEqual(triggers.resources[0]!.replaceInputs, ["triggers"]);
    });

    it("a replaced image replaces the container that takes its ID, though the mock ID did not change", () => {
        const before = [r("img", IMAGE, { name: "gitlab:1" }), r("c", CONTAINER, { image: "sha256:x" }, { image: ["img"] })];
        const after = [r("img", IMAGE, { name: "gitlab:2" }), r("c", CONTAINER, { image: "sha256:x" }, { image: ["img"] })];
        const result = classify(before, after);
        assert.equal(opOf(result, "img"), "replace");
        assert.equal(opOf(result, "c"), "replace");
    });

    it("counts creates, deletes and unchanged resources by URN", () => {
        const before = [r("keep", COMMAND, { create: "a" }), r("gone", COMMAND, { create: "b" })];
        const after = [r("keep", COMMAND, { create: "a" }), r("new", COMMAND, { create: "c" })];
        assert.deepEqual(summarize(classify(before, after).resources), { create: 1, update: 0, replace: 0, delete: 1, same: 1 });
    });

    it("reports a type it has no semantics for, and treats its change as a replace", () => {
        const result = classify([r("x", "aws:s3/bucket:Bucket", { a: 1 })], [r("x", "aws:s3/bucket:Bucket", { a: 2 })]);
        assert.deepEqual(result.unknownTypes, ["aws:s3/bucket:Bucket"]);
        assert.equal(opOf(result, "x"), "replace");
    });

    it("compares values, not key order of the container", () => {
        assert.deepEqual(changedKeys({ a: [1, 2], b: "x" }, { b: "x", a: [1, 2] }), []);
        assert.deepEqual(changedKeys({ a: 1 }, { a: 1, c: 2 }), ["c"]);
    });

    it("names a source for every type the program uses", () => {
        for (const type of [CONTAINER, IMAGE, COMMAND, "command:local:Command", "docker:index/volume:Volume", "pulumi:providers:docker", "random:index/randomPassword:RandomPassword"]) {
            assert.ok(REPLACE_SEMANTICS[type]?.source, type);
        }
    });
});
