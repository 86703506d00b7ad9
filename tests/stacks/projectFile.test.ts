// Pulumi.yaml must load in the real CLI. Its project schema admits config types string,
// integer, boolean, array (which needs `items`) and object, and a key namespaced by another
// project may carry a value but no type. tests/engine/cli.etest.ts holds the real CLI to these rules.
// Its comment lists the config keys as CONFIG_KEY_TABLE (components/config.ts) has them; any
// `config:` declaration of them must suit the program (tests/config/configKeysDocs.ts).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { CONFIG_KEYS, CONFIG_NAMESPACE } from "../../components/config";
import { projectConfigDeclarationProblems, pulumiYamlKeyLines } from "../config/configKeysDocs";
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

    it("lists exactly the keys of CONFIG_KEY_TABLE, each as the table describes it", () => {
        const text = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
        const listed = text.split("\n").filter(l => new RegExp(`^#\\s+${CONFIG_NAMESPACE}:`).test(l));
        const expected = pulumiYamlKeyLines();
        assert.deepEqual(listed, expected, `Pulumi.yaml's comment must list the keys so (from CONFIG_KEY_TABLE in components/config.ts):\n${expected.join("\n")}\n`);
    });

    it("declares in a config: block only the program's keys, typed object, demanded of every stack only when the program requires them", () => {
        assert.deepEqual(projectConfigDeclarationProblems(project.name, project.config), []);
        // The check itself, on plants: what Pulumi would get wrong with each declaration.
        assert.deepEqual(projectConfigDeclarationProblems("gitlab-cluster", {
            "gitlab-cluster:hosts": { type: "object" },
            "gitlab-cluster:ssh": { type: "object", default: {} },
            "aws:region": "eu-west-1",
            "gitlab-cluster:bakup": { type: "object", default: {} },
            "gitlab-cluster:roles": { type: "array", items: { type: "string" } },
            "gitlab-cluster:backup": { type: "object" },
            "gitlab-cluster:gitlab": { type: "object", default: {} },
            redis: { type: "object", default: { port: "6379" } },
        }), [
            `gitlab-cluster:bakup: is not a key the program reads (${CONFIG_KEYS.join(", ")})`,
            'gitlab-cluster:roles: type "array", but the program reads a map (object)',
            "gitlab-cluster:backup: has no default, so Pulumi would demand it of every stack, but the program does not require it",
            "gitlab-cluster:gitlab: has a default, but every stack must set it (the schema has no default)",
            "gitlab-cluster:gitlab: its default is not a valid value of the key",
            "redis: its default is not a valid value of the key",
        ]);
    });
});
