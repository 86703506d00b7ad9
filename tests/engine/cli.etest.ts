// The real Pulumi CLI (built from published Go modules by scripts/engine/build.sh) reading this
// project's files. The Node.js language host and the providers cannot be built here (the Go
// module proxy refuses their modules: see the script's summary), so `pulumi preview` and `up`
// cannot run yet. What the CLI alone decides is checked against what the mock tests assume:
// that Pulumi.yaml and every stack file load, which keys are secret, and the config values the
// program is handed. Run by `npm run test:engine` (tests/engine/run.sh), not by `npm test`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { CONFIG_NAMESPACE, loadClusterConfig } from "../../components/config";
import { flatConfig } from "../../scripts/evaluate";
import { projectConfigProblems } from "../support/projectFile";
import { tempDir } from "../support/readers";

const ROOT = path.join(__dirname, "..", "..", "..");
const STACK_FILES = fs.readdirSync(ROOT).filter(f => /^Pulumi\.[^.]+\.yaml$/.test(f)).sort();

/** A copy of the project's files (stack init writes an encryption salt into the stack file). */
function project(pulumiYaml = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")): { dir: string; pulumi: (...args: string[]) => { status: number | null; stdout: string; stderr: string } } {
    const dir = tempDir("engine");
    fs.mkdirSync(path.join(dir, "state"));
    fs.mkdirSync(path.join(dir, "project"));
    fs.writeFileSync(path.join(dir, "project", "Pulumi.yaml"), pulumiYaml);
    for (const f of STACK_FILES) fs.copyFileSync(path.join(ROOT, f), path.join(dir, "project", f));
    const env = {
        ...process.env, PULUMI_BACKEND_URL: `file://${dir}/state`, PULUMI_CONFIG_PASSPHRASE: "engine-test",
        PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true", PULUMI_HOME: path.join(dir, "home"),
    };
    return {
        dir,
        pulumi: (...args) => {
            const r = spawnSync("pulumi", [...args, "--non-interactive"], { cwd: path.join(dir, "project"), env, encoding: "utf8", timeout: 60_000 });
            if (r.error) throw r.error;
            return { status: r.status, stdout: r.stdout, stderr: r.stderr };
        },
    };
}

interface CliConfigValue { value?: string; objectValue?: unknown; secret: boolean }

/** Does a stack-file value hold a `secure:` leaf anywhere? */
function holdsSecure(v: unknown): boolean {
    if (v !== null && typeof v === "object") {
        if ("secure" in (v as object) && Object.keys(v as object).length === 1) return true;
        return Object.values(v as object).some(holdsSecure);
    }
    return false;
}

describe("the real Pulumi CLI reads the project's files", () => {
    const version = spawnSync("pulumi", ["version"], { encoding: "utf8" });
    it("is the engine this project builds", () => {
        assert.equal(version.status, 0, `pulumi is not on PATH: run 'npm run engine' (${version.error ?? version.stderr})`);
        assert.match(version.stdout.trim(), /^v3\.\d+\.\d+$/);
    });

    for (const file of STACK_FILES) {
        const stack = file.replace(/^Pulumi\.|\.yaml$/g, "");
        it(`${file}: loads, with the secret keys and the plain values the program expects`, () => {
            const p = project();
            const init = p.pulumi("stack", "init", stack);
            assert.equal(init.status, 0, init.stderr);
            const r = p.pulumi("config", "--json", "--stack", stack);
            assert.equal(r.status, 0, r.stderr);
            const cli = JSON.parse(r.stdout) as Record<string, CliConfigValue>;
            const yaml = (parse(fs.readFileSync(path.join(ROOT, file), "utf8")) as { config: Record<string, unknown> }).config;
            assert.deepEqual(Object.keys(cli).sort(), Object.keys(yaml).sort(), "the CLI sees exactly the stack file's keys");
            for (const [key, value] of Object.entries(yaml)) {
                assert.equal(cli[key]!.secret, holdsSecure(value), `${key}: the CLI's secret flag`);
                if (!cli[key]!.secret) assert.deepEqual(JSON.parse(cli[key]!.value!), value, `${key}: the value the program receives`);
            }
            const plain = Object.entries(cli).filter(([, v]) => !v.secret);
            if (plain.length === Object.keys(cli).length) {
                // No secret in the file: the whole configuration goes through the program's loader as the CLI hands it over.
                const fromCli = loadClusterConfig(Object.fromEntries(plain.map(([k, v]) => [k, v.value!])), () => false);
                const fromYaml = loadClusterConfig(flatConfig(Object.fromEntries(Object.entries(yaml).map(([k, v]) => [k.slice(CONFIG_NAMESPACE.length + 1), v]))), () => false);
                assert.deepEqual(fromCli, fromYaml);
            }
        });
    }

    it("refuses each Pulumi.yaml that the mock tests' emulation refuses, and accepts the project's own", () => {
        const own = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
        const plants: Record<string, unknown>[] = [
            { "gitlab-cluster:hosts": { type: "object" } },
            { "gitlab-cluster:hosts": { type: "map" } },
            { "aws:region": { type: "string" } },
            { list: { type: "array" } },
            { "gitlab-cluster:note": { type: "string", default: "fine" } },
        ];
        for (const config of plants) {
            const doc = parse(own) as Record<string, unknown>;
            const p = project(stringify({ ...doc, config }));
            const r = p.pulumi("stack", "init", "plant");
            const emulated = projectConfigProblems({ name: "gitlab-cluster", config });
            assert.equal(r.status !== 0, emulated.length > 0, `${JSON.stringify(config)}: CLI ${r.status === 0 ? "accepted" : `refused (${r.stderr.trim()})`}, emulation says ${JSON.stringify(emulated)}`);
        }
    });
});
