// BENCHMARKS.md's prose agrees with its own tables (issue 16, item 10): when the gitlab.rb change
// table shows the rollouts updated, not replaced, the prose must not say no node is reconfigured.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

const text = fs.readFileSync(path.join(__dirname, "..", "..", "..", "BENCHMARKS.md"), "utf8");

describe("BENCHMARKS.md", () => {
    it("says what its simulated-deploy table shows about reconfiguring nodes", () => {
        const section = text.split("## 2. Simulated deploys")[1]!.split("### Step durations")[0]!;
        const rows = section.split("\n").filter(l => /^\| \d+ \|/.test(l));
        assert.ok(rows.length > 0);
        const replaced = rows.map(r => Number(/(\d+) replaced \|$/.exec(r)?.[1]));
        const prose = section.split("\n").filter(l => !l.startsWith("|")).join("\n");
        if (replaced.every(n => n === 0)) {
            assert.doesNotMatch(prose, /no node is reconfigured|engine replaces the rollout/);
            assert.match(prose, /reconfigures every node/);
        } else {
            assert.match(prose, /not reconfigured/);
        }
    });
});
