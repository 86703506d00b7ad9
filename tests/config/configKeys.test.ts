// Config keys have one list, CONFIG_KEY_TABLE (components/config.ts): the schema, CONFIG_KEYS and
// PROMOTABLE are built from it, and README.md's configuration reference is checked against it here
// (Pulumi.yaml's key list: tests/stacks/projectFile.test.ts). Issue 13, item 4.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { CONFIG_KEY_TABLE, CONFIG_KEYS, CONFIG_NAMESPACE, clusterConfigSchema, type ConfigKeyPromotion, PROMOTABLE, readFlatConfig } from "../../components/config";
import { PROMOTABLE as PROMOTE_SCRIPT_PROMOTABLE } from "../../scripts/promotePlan";
import { MAP_KEY_PLACEHOLDER, readmeKeyTable, schemaHasPath, schemaPaths } from "./configKeysDocs";

const README = fs.readFileSync(path.resolve(__dirname, "..", "..", "..", "README.md"), "utf8");

/** README.md's "Configuration reference" section, up to the next `## ` heading. */
function configReference(): string[] {
    const lines = README.split("\n");
    const start = lines.indexOf("## Configuration reference");
    assert.ok(start >= 0, "README.md has no '## Configuration reference' section");
    const end = lines.findIndex((l, i) => i > start && l.startsWith("## "));
    return lines.slice(start, end < 0 ? undefined : end);
}

/** The rows of the Markdown table whose header line is `header`, as they stand. */
function tableRows(lines: readonly string[], header: RegExp): string[] {
    const at = lines.findIndex(l => header.test(l));
    assert.ok(at >= 0, `README.md's configuration reference has no table headed ${header}`);
    const rows: string[] = [];
    for (let i = at; i < lines.length && lines[i]!.startsWith("|"); i++) rows.push(lines[i]!);
    return rows;
}

/**
 * The key paths the settings table's first column names: `ssh.user` / `ssh.port`, and
 * `postgres.image` / `.port` (a leading `.` continues the first path's parent), or a list with `,`.
 */
function documentedPaths(rows: readonly string[]): { path: string; row: string }[] {
    const out: { path: string; row: string }[] = [];
    for (const row of rows.slice(2)) {
        const cell = row.split(/(?<!\\)\|/)[1] ?? "";
        const names = [...cell.matchAll(/`([^`]+)`/g)].map(m => m[1]!);
        const parent = (names[0] ?? "").replace(/[^.]*$/, "");
        for (const name of names) out.push({ path: name.startsWith(".") ? parent + name.slice(1) : name, row });
    }
    return out;
}

describe("config keys: one table (issue 13, item 4)", () => {
    it("the schema's top-level object is the table's keys, in its order, each with the table's schema", () => {
        assert.deepEqual(Object.keys(clusterConfigSchema.shape), [...CONFIG_KEYS]);
        assert.deepEqual([...CONFIG_KEYS], Object.keys(CONFIG_KEY_TABLE));
        for (const key of CONFIG_KEYS) assert.equal(clusterConfigSchema.shape[key], CONFIG_KEY_TABLE[key].schema, key);
    });

    it("the program reads exactly the table's keys", () => {
        const flat = Object.fromEntries(CONFIG_KEYS.map(k => [`${CONFIG_NAMESPACE}:${k}`, "{}"]));
        assert.deepEqual(Object.keys(readFlatConfig(flat)), [...CONFIG_KEYS]);
        assert.throws(() => readFlatConfig({ [`${CONFIG_NAMESPACE}:notAKey`]: "{}" }), new RegExp(`unknown key \\(known: ${CONFIG_KEYS.join(", ")}\\)`));
    });

    it("PROMOTABLE is the table's promoted keys with their exceptions, and each exception is a key path of the schema", () => {
        assert.equal(PROMOTE_SCRIPT_PROMOTABLE, PROMOTABLE, "scripts/promotePlan.ts re-exports the table's PROMOTABLE");
        const expected: Record<string, readonly string[]> = {};
        for (const key of CONFIG_KEYS) {
            const p: ConfigKeyPromotion = CONFIG_KEY_TABLE[key].promotion;
            if (p !== "per-stack") expected[key] = p.except;
        }
        assert.deepEqual(PROMOTABLE, expected);
        for (const [key, except] of Object.entries(PROMOTABLE)) {
            for (const e of except) assert.ok(schemaHasPath(`${key}.${e}`), `${key}: the per-stack exception "${e}" is not a key path of the schema`);
        }
        assert.ok(!schemaHasPath("gitlab.dataRot") && !schemaHasPath("gitlab.gitUid") && schemaHasPath("gitlab.omnibus.puma"), "the path check itself");
    });

    it("README.md's key table is the table's: each key, whether it is required, what it holds, what a promotion copies", () => {
        const expected = readmeKeyTable();
        const actual = tableRows(configReference(), /^\| key \| \| holds \|/);
        assert.deepEqual(actual, expected, `README.md's configuration reference must hold this table (from CONFIG_KEY_TABLE):\n${expected.join("\n")}\n`);
    });

    it("README.md's settings table documents every setting of the schema, and only those", () => {
        const rows = tableRows(configReference(), /^\| key \| default \| meaning \|/);
        const documented = documentedPaths(rows);
        const { nodes, leaves } = schemaPaths();
        const unknown = documented.filter(d => !nodes.has(d.path) || !d.path.includes("."));
        assert.deepEqual(unknown.map(d => d.path), [], `documented, but not a setting of the schema:\n${unknown.map(d => d.row).join("\n")}`);
        // A setting is documented by its own row or by a row for an object above it (`hosts.<name>.ssh`), not a whole key or host.
        const covers = (doc: string, leaf: string) => leaf === doc || (leaf.startsWith(`${doc}.`) && doc.includes(".") && !doc.endsWith(`.${MAP_KEY_PLACEHOLDER}`));
        const undocumented = leaves.filter(leaf => !documented.some(d => covers(d.path, leaf)));
        assert.deepEqual(undocumented, [], "settings of the schema that README.md's configuration reference does not document");
        assert.deepEqual([...new Set(documented.map(d => d.path.split(".")[0]))], [...CONFIG_KEYS], "the settings table's keys, in the table's order");
    });
});
