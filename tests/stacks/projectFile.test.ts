// Pulumi.yaml must load in the real CLI. Its project schema admits config types string,
// integer, boolean and array only (arrays need `items`), and a key namespaced by another
// project may carry a value but no type.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { CONFIG_KEYS } from "../../components/config";

const ROOT = path.join(__dirname, "..", "..", "..");
const SIMPLE_TYPES = ["string", "integer", "boolean", "array"];

/** The problems Pulumi's project validation would report for a `config:` block. */
export function projectConfigProblems(project: { name?: string; config?: Record<string, unknown> }): string[] {
    const problems: string[] = [];
    for (const [key, decl] of Object.entries(project.config ?? {})) {
        const ownKey = !key.includes(":") || key.startsWith(`${project.name}:`);
        if (decl === null || typeof decl !== "object" || Array.isArray(decl)) continue;
        const d = decl as { type?: unknown; items?: unknown };
        if (d.type !== undefined && !SIMPLE_TYPES.includes(String(d.type))) problems.push(`${key}: type "${String(d.type)}" is not one of ${SIMPLE_TYPES.join(", ")}`);
        if (d.type === "array" && d.items === undefined) problems.push(`${key}: an array needs 'items'`);
        if (!ownKey && d.type !== undefined) problems.push(`${key}: not namespaced by the project, so it may not define a type`);
    }
    return problems;
}

describe("Pulumi.yaml", () => {
    const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { name: string; runtime: { name: string; options?: Record<string, unknown> }; config?: Record<string, unknown> };

    it("names the project and the TypeScript runtime", () => {
        assert.equal(project.name, "gitlab-cluster");
        assert.equal(project.runtime.name, "nodejs");
        assert.equal(project.runtime.options?.typescript, true);
    });

    it("declares no config type the Pulumi CLI would refuse to load", () => {
        assert.deepEqual(projectConfigProblems(project), []);
        assert.deepEqual(projectConfigProblems({ name: "gitlab-cluster", config: { "gitlab-cluster:hosts": { type: "object" }, "aws:region": { type: "string" }, list: { type: "array" } } }), [
            'gitlab-cluster:hosts: type "object" is not one of string, integer, boolean, array',
            "aws:region: not namespaced by the project, so it may not define a type",
            "list: an array needs 'items'",
        ]);
    });

    it("documents every config key the program reads", () => {
        const text = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
        for (const key of CONFIG_KEYS) assert.match(text, new RegExp(`gitlab-cluster:${key}\\s`), key);
    });
});
