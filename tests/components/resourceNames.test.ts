// Pins every resource's URN (type chain, parents and name) for the three-node example. A URN that
// changes makes the engine delete the old resource and create a new one: a renamed container is a
// replaced container. A refactor that must rename adds an alias (`aliases: [{ name: old }]`), and
// this list changes only with it. Refresh with UPDATE_GOLDEN=1 after checking that each change is
// intended and aliased.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";

const PINNED = path.join(__dirname, "..", "..", "..", "tests", "golden", "three-node.urns.txt");

describe("resource names", () => {
    it("the three-node example registers exactly the pinned URNs", async () => {
        const e = await evaluate(threeNodeConfig(), { passwordFor: name => `[generated ${name}]` });
        const urns = [...new Set(e.resources.map(r => r.urn))].sort();
        const text = `${urns.join("\n")}\n`;
        if (process.env.UPDATE_GOLDEN === "1") fs.writeFileSync(PINNED, text);
        const pinned = fs.readFileSync(PINNED, "utf8").split("\n").filter(l => l !== "");
        const missing = pinned.filter(u => !urns.includes(u));
        const added = urns.filter(u => !pinned.includes(u));
        assert.deepEqual({ missing, added }, { missing: [], added: [] },
            "resource URNs changed: a missing URN is a resource the engine would delete (add an alias if it was renamed)");
    });
});
