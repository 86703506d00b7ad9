// Every YAML example in README.md works when copied (issue 16, item 1).
//
// Each ```yaml block is one of:
// - a stack file (it has a top-level `config:` map): evaluated as it stands, like Pulumi.<stack>.yaml;
// - a fragment of `gitlab-cluster:*` keys (the README indents them as they sit under `config:`):
//   merged onto the README's first stack file, the config reference's example, which is what a
//   reader has copied and is told to extend. The merge is deep for maps (a fragment's
//   `gitlab-cluster:gitlab: { omnibus: ... }` keeps the example's image and URL) and replaces lists
//   and scalars, as a reader pasting the fragment's keys into the example would;
// - anything else (no `gitlab-cluster:` key): not configuration, not evaluated, listed below.
// `{ secure: ... }` values become placeholders of the right shape (scripts/renderStack.ts), and the
// example's encrypted top-level keys are secret, as `pulumi config set --secret` would make them.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { CONFIG_NAMESPACE } from "../../components/config";
import { evaluate } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("readme-keys");
const README = path.resolve(__dirname, "..", "..", "..", "README.md");

interface YamlBlock { readonly line: number; readonly text: string }

/** Every ```yaml block of a Markdown text, with the line its code starts on. */
function yamlBlocks(markdown: string): YamlBlock[] {
    const blocks: YamlBlock[] = [];
    const lines = markdown.split("\n");
    for (let i = 0; i < lines.length; i++) {
        if (!/^\s*```ya?ml\s*$/.test(lines[i]!)) continue;
        const start = i + 1;
        let end = start;
        while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
        blocks.push({ line: start + 1, text: lines.slice(start, end).join("\n") });
        i = end;
    }
    return blocks;
}

type Kind = "stack" | "fragment" | "other";
function kindOf(doc: unknown): Kind {
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return "other";
    const keys = Object.keys(doc);
    if (keys.includes("config")) return "stack";
    return keys.some(k => k.startsWith(`${CONFIG_NAMESPACE}:`)) ? "fragment" : "other";
}

/** Maps merge key by key; anything else in `over` replaces what `base` had. */
function deepMerge(base: unknown, over: unknown): unknown {
    const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
    if (!isMap(base) || !isMap(over)) return over;
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
    return out;
}

/** Evaluates a stack file's text as `pulumi preview` would, under mocks. */
async function evaluateStackText(text: string, label: string): Promise<void> {
    const file = path.join(tempDir("readme-stack"), `Pulumi.${label}.yaml`);
    fs.writeFileSync(file, text);
    const stack = readStackFile(file);
    await evaluate(stack.config, { stack: "readme", secretKeys: stack.secretKeys });
}

const blocks = yamlBlocks(fs.readFileSync(README, "utf8")).map(b => ({ ...b, doc: parseYaml(b.text) as unknown }));
const base = blocks.find(b => kindOf(b.doc) === "stack");

describe("README.md's YAML examples (issue 16)", () => {
    it("has a stack example and config fragments to check", () => {
        assert.ok(base !== undefined, "no ```yaml block with a config: map");
        assert.ok(blocks.some(b => kindOf(b.doc) === "fragment"), "no gitlab-cluster:* fragment");
        assert.deepEqual(blocks.filter(b => kindOf(b.doc) === "other").map(b => b.line), [], "every yaml block is configuration");
    });

    for (const block of blocks) {
        const kind = kindOf(block.doc);
        if (kind === "other") continue;
        it(`the ${kind} at README.md line ${block.line} evaluates${kind === "fragment" ? " merged onto the config reference's example" : ""}`, async () => {
            const text = kind === "stack" ? block.text
                : JSON.stringify(deepMerge(parseYaml(base!.text), { config: block.doc }));
            try {
                await evaluateStackText(text, `line${block.line}`);
            } catch (err) {
                assert.fail(`README.md's ${kind} at line ${block.line} does not evaluate: ${err instanceof Error ? err.message : String(err)}`);
            }
        });
    }

    it("the config reference's example matches the quick start: the key comes from ssh-agent, TLS for the https URL", () => {
        const config = (parseYaml(base!.text) as { config: Record<string, Record<string, unknown>> }).config;
        const readme = fs.readFileSync(README, "utf8");
        if (/the stack sets ssh\.useAgent: true/.test(readme)) {
            assert.deepEqual(config[`${CONFIG_NAMESPACE}:ssh`]?.useAgent, true, "the quick start says the stack sets ssh.useAgent: true");
            assert.equal(config[`${CONFIG_NAMESPACE}:ssh`]?.privateKey, undefined, "useAgent and privateKey together are refused");
        }
        if (/^https:/.test(String(config[`${CONFIG_NAMESPACE}:gitlab`]?.externalUrl))) {
            assert.ok((config[`${CONFIG_NAMESPACE}:loadBalancer`] as { tls?: unknown } | undefined)?.tls, "an https externalUrl needs loadBalancer.tls");
        }
    });
});
