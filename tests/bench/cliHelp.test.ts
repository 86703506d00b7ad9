// Every command-line tool answers --help with its usage and exit codes, and does nothing else:
// no benchmark run, no file written (issue 16, item 10). Each runs as `npm run <x>` would run it.
// And every one has the same shape (issue 13, item 6; scripts/cli.ts): it exports
// `main(argv): Promise<number>`, runs nothing on import, and ends with `runMain(module, main)`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

const scripts = path.resolve(__dirname, "..", "..", "scripts");
const repo = path.resolve(__dirname, "..", "..", "..");
const CLIS = ["bench", "ops", "promote", "render"];
const RUNNER = /^\(0, cli_1\.runMain\)\(module, main\);$/m; // `runMain(module, main);` as tsc emits it

/** Every file under dir with its modification time. */
function snapshot(dir: string): Map<string, number> {
    const files = new Map<string, number>();
    for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
        if (entry.isFile()) files.set(path.join(entry.parentPath, entry.name), fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
    }
    return files;
}

describe("every CLI answers --help without side effects", () => {
    it("scripts/ holds exactly these CLIs (a new one gets a row here)", () => {
        const mains = fs.readdirSync(scripts).filter(f => f.endsWith(".js") && RUNNER.test(fs.readFileSync(path.join(scripts, f), "utf8")));
        assert.deepEqual(mains.map(f => f.replace(/\.js$/, "")).sort(), CLIS);
    });

    it("only scripts/cli.ts decides whether a module is the program (no CLI of its own shape)", () => {
        const files = fs.readdirSync(scripts, { recursive: true, encoding: "utf8" }).filter(f => f.endsWith(".js"));
        const own = files.filter(f => f !== "cli.js" && /require\.main/.test(fs.readFileSync(path.join(scripts, f), "utf8")));
        assert.deepEqual(own, []);
    });

    for (const cli of CLIS) {
        it(`${cli}: importing it runs nothing, loads nothing from tests/, and it exports main(argv)`, () => {
            const cwd = fs.mkdtempSync(path.join(os.tmpdir(), `import-${cli}-`));
            const probe = `const m = require(${JSON.stringify(path.join(scripts, `${cli}.js`))});
const tests = Object.keys(require.cache).filter(f => f.startsWith(${JSON.stringify(path.join(scripts, "..", "tests") + path.sep)}));
process.stdout.write(JSON.stringify({ main: typeof m.main, arity: m.main.length, tests }));`;
            const r = spawnSync(process.execPath, ["-e", probe], { cwd, encoding: "utf8", timeout: 90_000 });
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stderr, "");
            assert.deepEqual(JSON.parse(r.stdout), { main: "function", arity: 1, tests: [] });
            assert.deepEqual(fs.readdirSync(cwd), [], "nothing written in the working directory");
        });
    }

    for (const cli of CLIS) {
        for (const flag of ["--help", "-h"]) {
            it(`${cli} ${flag}: usage and exit codes on stdout, exit 0, nothing written`, () => {
                const cwd = fs.mkdtempSync(path.join(os.tmpdir(), `help-${cli}-`));
                const benchmarks = path.join(repo, "BENCHMARKS.md");
                const before = fs.existsSync(benchmarks) ? fs.readFileSync(benchmarks, "utf8") : undefined;
                const outDir = path.join(repo, "out");
                const rendered = fs.existsSync(outDir) ? snapshot(outDir) : undefined;
                const r = spawnSync(process.execPath, [path.join(scripts, `${cli}.js`), flag], { cwd, encoding: "utf8", timeout: 90_000 });
                assert.equal(r.status, 0, r.stderr);
                assert.match(r.stdout, /^usage: npm run /);
                assert.match(r.stdout, /[Ee]xit codes: 0 /);
                assert.deepEqual(fs.readdirSync(cwd), [], "nothing written in the working directory");
                assert.equal(fs.existsSync(benchmarks) ? fs.readFileSync(benchmarks, "utf8") : undefined, before, "BENCHMARKS.md untouched");
                assert.deepEqual(fs.existsSync(outDir) ? snapshot(outDir) : undefined, rendered, "render wrote nothing under out/");
            });
        }
        it(`${cli} with an unknown option: exit 2 and the usage on stderr, not a stack trace`, () => {
            const cwd = fs.mkdtempSync(path.join(os.tmpdir(), `help-${cli}-`));
            const r = spawnSync(process.execPath, [path.join(scripts, `${cli}.js`), "--no-such-option"], { cwd, encoding: "utf8", timeout: 90_000 });
            assert.equal(r.status, 2, r.stderr);
            assert.match(r.stderr, /usage: npm run /);
            assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
            assert.deepEqual(fs.readdirSync(cwd), []);
        });
    }
});
