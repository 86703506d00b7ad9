// package.json's `engines.node` tells the truth: every Node.js it admits is one that every locked
// package admits too (the locked @pulumi/pulumi declares node >=22), and the README says the same.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

const root = path.resolve(__dirname, "..", "..", "..");
const readJson = (file: string) => JSON.parse(fs.readFileSync(path.join(root, file), "utf8")) as Record<string, unknown>;

type Version = readonly [number, number, number];

/** Whether `v` is in an npm `engines` range, in the forms package-lock.json holds (`>=X`, `^X.Y.Z`, `X`, `X.*`, `A <B`, `||`, `*`). */
function satisfies(v: Version, range: string): boolean {
    const cmp = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
    const parse = (text: string): { at: Version; parts: number } => {
        const nums = text.replace(/\.\*$/, "").split(".").map(Number);
        return { at: [nums[0] ?? 0, nums[1] ?? 0, nums[2] ?? 0], parts: nums.length };
    };
    const comparator = (c: string): boolean => {
        const m = /^(>=|<=|>|<|\^|=)?\s*(\d+(?:\.\d+){0,2}(?:\.\*)?)$/.exec(c);
        if (c === "*" || c === "") return true;
        assert.ok(m, `unhandled engines range ${JSON.stringify(range)}`);
        const { at, parts } = parse(m[2]!);
        switch (m[1]) {
            case ">=": return cmp(v, at) >= 0;
            case ">": return cmp(v, at) > 0;
            case "<=": return cmp(v, at) <= 0;
            case "<": return cmp(v, at) < 0;
            case "^": return cmp(v, at) >= 0 && v[0] === at[0];
            default: return v[0] === at[0] && (parts < 2 || v[1] === at[1]) && (parts < 3 || v[2] === at[2]);
        }
    };
    return range.split("||").some(alt => alt.trim().replace(/(>=|<=|>|<|\^)\s+/g, "$1").split(/\s+/).every(comparator));
}

describe("package.json engines", () => {
    const engines = (readJson("package.json").engines as { node: string }).node;
    const locked = Object.entries((readJson("package-lock.json").packages as Record<string, { engines?: { node?: string } }>))
        .filter(([name, p]) => name !== "" && typeof p.engines?.node === "string").map(([name, p]) => [name, p.engines!.node!] as const);
    // Every version at a boundary any range names, and around it.
    const bounds = [...new Set([engines, ...locked.map(([, r]) => r)].flatMap(r => [...r.matchAll(/(\d+)(?:\.(\d+))?(?:\.(\d+))?/g)]
        .map(m => [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] as Version)
        .flatMap(([a, b, c]) => [[a, b, c], [a, b, c + 1], [a, b + 1, 0], [a + 1, 0, 0], [a, b, Math.max(0, c - 1)], [a, Math.max(0, b - 1), 99], [Math.max(0, a - 1), 99, 99]] as Version[])
        .map(v => v.join("."))))].map(s => s.split(".").map(Number) as unknown as Version);

    it("admits only Node.js versions every locked package supports", () => {
        assert.ok(locked.some(([name]) => name === "node_modules/@pulumi/pulumi"), "the SDK declares its engines");
        for (const v of bounds.filter(b => satisfies(b, engines))) {
            const refusing = locked.filter(([, r]) => !satisfies(v, r)).map(([name, r]) => `${name} (${r})`);
            assert.deepEqual(refusing, [], `package.json admits node ${v.join(".")}, which they refuse`);
        }
    });

    it("admits the current releases the SDK supports (22 LTS from 22.13, 24 LTS)", () => {
        for (const v of [[22, 13, 0], [22, 20, 0], [24, 0, 0], [24, 11, 0]] as Version[]) assert.ok(satisfies(v, engines), v.join("."));
        for (const v of [[20, 20, 2], [22, 12, 0], [23, 5, 0]] as Version[]) assert.ok(!satisfies(v, engines), v.join("."));
    });

    it("is what the README's prerequisites say", () => {
        const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
        assert.match(readme, /^- The machine running Pulumi: Node\.js 22\.13\+ or 24\+ \(`engines` in `package\.json`\)/m);
    });
});
