// Golden files: the whole review tree of the three-node example and of its Gitaly layout, so a change to any file
// pushed to a host shows up as a diff under tests/golden/. Refresh with UPDATE_GOLDEN=1 npm test.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { evaluate } from "../../scripts/evaluate";
import { renderTree, writeTree } from "../../scripts/renderStack";
import { gitalyConfig, threeNodeConfig } from "../fixtures";

const GOLDEN_ROOT = path.join(__dirname, "..", "..", "..", "tests", "golden");

function readTree(dir: string, prefix = ""): Map<string, string> {
    const files = new Map<string, string>();
    if (!fs.existsSync(dir)) return files;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
        if (entry.isDirectory()) for (const [k, v] of readTree(path.join(dir, entry.name), rel)) files.set(k, v);
        else files.set(rel, fs.readFileSync(path.join(dir, entry.name), "utf8"));
    }
    return files;
}

describe("golden files", () => {
    for (const [example, config] of [["three-node", threeNodeConfig], ["gitaly", gitalyConfig]] as const) {
    it(`the ${example} review tree matches tests/golden/${example}`, async () => {
        const GOLDEN = path.join(GOLDEN_ROOT, example);
        const e = await evaluate(config(), { passwordFor: name => `[generated ${name}]` });
        const tree = renderTree(e);
        if (process.env.UPDATE_GOLDEN === "1") writeTree(GOLDEN, tree);
        const golden = readTree(GOLDEN);
        assert.deepEqual([...tree.keys()].sort(), [...golden.keys()].sort(), "the set of files differs: run UPDATE_GOLDEN=1 npm test and review the diff");
        for (const [file, content] of tree) assert.equal(content, golden.get(file), `${file} differs: run UPDATE_GOLDEN=1 npm test and review the diff`);
    });
    }
});
