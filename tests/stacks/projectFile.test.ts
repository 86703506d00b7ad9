// Pulumi.yaml must load in the real CLI. Its project schema admits config types string,
// integer, boolean, array (which needs `items`) and object, and a key namespaced by another
// project may carry a value but no type. tests/engine/cli.etest.ts holds the real CLI to these rules.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { CONFIG_KEYS } from "../../components/config";
import { projectConfigProblems } from "../support/projectFile";

const ROOT = path.join(__dirname, "..", "..", "..");
describe("Pulumi.yaml", () => {
    const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { name: string; runtime: { name: string; options?: Record<string, unknown> }; config?: Record<string, unknown> };

    it("names the project and the TypeScript runtime", () => {
        assert.equal(project.name, "gitlab-cluster");
        assert.equal(project.runtime.name, "nodejs");
        assert.equal(project.runtime.options?.typescript, true);
    });

    it("declares no config type the Pulumi CLI would refuse to load", () => {
        assert.deepEqual(projectConfigProblems(project), []);
        assert.deepEqual(projectConfigProblems({ name: "gitlab-cluster", config: { "gitlab-cluster:hosts": { type: "map" }, "aws:region": { type: "string" }, list: { type: "array" } } }), [
            'gitlab-cluster:hosts: type "map" is not one of string, integer, boolean, array, object',
            "aws:region: not namespaced by the project, so it may not define a type",
            "list: an array needs 'items'",
        ]);
    });

    it("documents every config key the program reads", () => {
        const text = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
        for (const key of CONFIG_KEYS) assert.match(text, new RegExp(`gitlab-cluster:${key}\\s`), key);
    });
});
