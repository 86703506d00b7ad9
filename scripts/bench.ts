// `npm run bench`: evaluation time, deployment graph shape, simulated deploy times and the blast
// radius of the usual changes, printed and written to BENCHMARKS.md. Not a test: nothing here
// fails on a number; the targets are reported MET or MISSED.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { classify, REPLACE_SEMANTICS, summarize, type Classified, type Operation } from "./bench/blastRadius";
import { DURATION_TABLE, durationOf } from "./bench/durations";
import { criticalPath, shape, stepGraph } from "./bench/graph";
import { runMain } from "./cli";
import { evaluate, type RecordedResource } from "./evaluate";
import { nNodeConfig } from "./lib/exampleConfigs";

const SIZES = [1, 3, 10, 30];
const RUNS = 5;
const COMMAND_LINE = "npm run bench   # = tsc -p tsconfig.json && node dist/scripts/bench.js";
const MIGRATION_NODE = "gitlab-gitlab-app1";

type Config = Record<string, any>; // any: fixtures are plain objects edited per scenario

/** Evaluates quietly: the no-hostKey warnings of nNodeConfig's hosts would flood the output. */
async function quietEvaluate(cfg: Config): Promise<readonly RecordedResource[]> {
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
        return (await evaluate(cfg)).resources;
    } finally {
        process.stderr.write = write;
    }
}

function median(xs: readonly number[]): number {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)]!;
}

/** A resource's name, with its kind where a name is shared (a password and the command that writes it). */
function short(urn: string): string {
    const parts = urn.split("::");
    const type = parts[parts.length - 2]!.split("$").pop()!;
    const name = parts[parts.length - 1]!;
    if (type.startsWith("random:")) return `${name} (password)`;
    if (type.startsWith("pulumi:providers:")) return `${name} (provider)`;
    return name;
}
const fmt = (s: number) => (s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

function machine(): string[] {
    const cpu = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
    return [
        `- command: \`${COMMAND_LINE}\``,
        `- date: ${new Date().toISOString()}`,
        `- nproc: ${execFileSync("nproc").toString().trim()}; CPU: ${cpu}; memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
        `- node ${process.version}, ${os.type()} ${os.release()}`,
        `- load average at start (1/5/15 min): ${os.loadavg().map(l => l.toFixed(2)).join(" / ")} (other jobs share this machine; timings scale with it)`,
    ];
}

/** The first deploy: every custom resource is created. */
function firstDeploy(resources: readonly RecordedResource[]) {
    const graph = stepGraph(resources);
    const byUrn = new Map(resources.map(r => [r.urn, r]));
    const cp = criticalPath(graph, urn => durationOf(byUrn.get(urn)!.type, byUrn.get(urn)!.name, "create", MIGRATION_NODE).seconds);
    return { graph, shape: shape(graph), cp };
}

/** A change: each resource runs the step of its operation; unchanged ones still order their dependents. */
function changeDeploy(after: readonly RecordedResource[], classified: readonly Classified[], opFor: (c: Classified) => Operation = c => c.op) {
    const graph = stepGraph(after);
    const ops = new Map(classified.map(c => [c.urn, c]));
    const byUrn = new Map(after.map(r => [r.urn, r]));
    return criticalPath(graph, urn => {
        const c = ops.get(urn);
        return c === undefined ? 0 : durationOf(byUrn.get(urn)!.type, c.name, opFor(c), MIGRATION_NODE).seconds;
    });
}

interface Scenario { readonly name: string; readonly base: number; readonly edit: (n: number) => Config }

const SCENARIOS: readonly Scenario[] = [
    { name: "gitlab.rb setting (gitlab.rails.time_zone)", base: 3, edit: n => { const c = nNodeConfig(n); c.gitlab.rails = { time_zone: "Europe/Berlin" }; return c; } },
    { name: "add a node (3 -> 4)", base: 3, edit: () => nNodeConfig(4) },
    { name: "remove a node (3 -> 2)", base: 3, edit: () => nNodeConfig(2) },
    { name: "balancer setting (proxyReadTimeoutSeconds 7200)", base: 3, edit: n => { const c = nNodeConfig(n); c.loadBalancer.proxyReadTimeoutSeconds = 7200; return c; } },
    { name: "new GitLab image (18.4.1 -> 18.4.2)", base: 3, edit: n => { const c = nNodeConfig(n); c.gitlab.image = "gitlab/gitlab-ce:18.4.2-ce.0"; return c; } },
];

function differingInputs(a: readonly RecordedResource[], b: readonly RecordedResource[]): string[] {
    const before = new Map(a.map(r => [r.urn, JSON.stringify(r.inputs)]));
    const after = new Map(b.map(r => [r.urn, JSON.stringify(r.inputs)]));
    return [...new Set([...before.keys(), ...after.keys()])].filter(u => before.get(u) !== after.get(u)).map(short);
}

/** Child mode: evaluate once and print the inputs by URN (determinism across processes) and the time. */
async function child(n: number): Promise<void> {
    const t0 = performance.now();
    const resources = await quietEvaluate(nNodeConfig(n));
    const ms = performance.now() - t0;
    process.stdout.write(JSON.stringify({ ms, resources: resources.map(r => ({ urn: r.urn, inputs: r.inputs })) }));
}

const USAGE = "usage: npm run bench [-- --help]\n\n" +
    "Evaluates the program for 1 to 30 nodes under mocks (no Pulumi CLI, no host touched), prints evaluation\n" +
    "time, deploy graph shape, simulated deploy and update times and the blast radius of the usual changes, and\n" +
    "rewrites BENCHMARKS.md in the current directory (keeping its hand-written part after <!-- analysis -->).\n" +
    "Takes a few minutes. --help prints this and does nothing else.\n\nExit codes: 0 done, 1 failed, 2 usage.";

/** The CLI: `--help`, or the whole benchmark (`--child <n>` is its own worker process); returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
    let values: { help?: boolean; child?: string };
    try {
        ({ values } = parseArgs({ args: [...argv], options: { help: { type: "boolean", short: "h" }, child: { type: "string" } } }));
    } catch (e) {
        console.error(`error: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
        return 2;
    }
    if (values.help) {
        console.log(USAGE);
        return 0;
    }
    // A fixed key directory: the default one holds the process id, which would make two processes' providers differ.
    process.env.GITLAB_CLUSTER_KEY_DIR ??= path.join(os.tmpdir(), "gitlab-cluster-bench-keys");
    if (values.child !== undefined) await child(Number(values.child));
    else await runBenchmarks();
    return 0;
}

/** The whole benchmark: printed, and written to BENCHMARKS.md in the current directory. */
async function runBenchmarks(): Promise<void> {
    const out: string[] = [];
    const say = (line = "") => { out.push(line); console.log(line); };
    say("# Benchmarks");
    say();
    say("Written by `npm run bench` (`scripts/bench.ts`); analysis in `scripts/bench/`, tested by `tests/bench/`.");
    say();
    for (const l of machine()) say(l);
    say();

    // 1. Evaluation time and graph shape.
    await quietEvaluate(nNodeConfig(1)); // warm-up: module load and JIT are not part of an evaluation
    const rows: { n: number; count: number; custom: number; median: number; runs: number[]; depth: number; widest: number; first: number; serial: number; chain: string[] }[] = [];
    const evaluations = new Map<number, readonly RecordedResource[]>();
    for (const n of SIZES) {
        const runs: number[] = [];
        let resources: readonly RecordedResource[] = [];
        for (let i = 0; i < RUNS; i++) {
            const t0 = performance.now();
            resources = await quietEvaluate(nNodeConfig(n));
            runs.push((performance.now() - t0) / 1000);
        }
        evaluations.set(n, resources);
        const f = firstDeploy(resources);
        rows.push({
            n, count: resources.length, custom: resources.filter(r => r.custom).length, median: median(runs), runs, depth: f.shape.depth,
            widest: f.shape.widest, first: f.cp.total, serial: f.cp.serial, chain: f.shape.longestChain.map(short),
        });
    }
    let cold: { ms: number; wall: number } | undefined;
    {
        const t0 = performance.now();
        const text = execFileSync(process.execPath, [__filename, "--child", "30"], { maxBuffer: 256 * 2 ** 20 }).toString();
        cold = { ms: (JSON.parse(text) as { ms: number }).ms, wall: (performance.now() - t0) / 1000 };
    }
    say("## 1. Evaluation and first-deploy graph");
    say();
    say(`Evaluation: \`evaluate(nNodeConfig(N))\` under Pulumi mocks, wall clock, ${RUNS} fresh evaluations in one process after one ` +
        "warm-up evaluation; the median is reported. Graph: custom resources are steps; a step waits for its `dependencies` " +
        "(dependsOn + outputs used as inputs, a component expanded to its custom children) and its provider; parents order nothing. " +
        "Depth = steps on the longest chain; widest = most steps on one level.");
    say();
    say("| N | resources (custom) | evaluation median | runs (s) | depth | widest level | simulated first deploy | hand-run (sum) | speed-up |");
    say("|---|---|---|---|---|---|---|---|---|");
    for (const r of rows) {
        say(`| ${r.n} | ${r.count} (${r.custom}) | ${r.median.toFixed(2)} s | ${r.runs.map(x => x.toFixed(2)).join(", ")} | ${r.depth} | ${r.widest} | ` +
            `${fmt(r.first)} | ${fmt(r.serial)} | ${(r.serial / r.first).toFixed(1)}x |`);
    }
    say();
    say(`Cold, N = 30 in a child process: evaluate() ${(cold.ms / 1000).toFixed(2)} s; process wall clock incl. node start and module load ${cold.wall.toFixed(2)} s.`);
    say();
    const r3 = rows.find(r => r.n === 3)!;
    const r30 = rows.find(r => r.n === 30)!;
    say(`Longest chain at N = 3: ${r3.chain.join(" -> ")}`);
    say();
    say(`Longest chain at N = 30 (${r30.depth} steps): ${r30.chain.slice(0, 6).join(" -> ")} -> ... -> ${r30.chain.slice(-4).join(" -> ")}`);
    say();
    const e10 = evaluations.get(10)!;
    const cp10 = firstDeploy(e10).cp;
    say(`Critical path of the simulated first deploy at N = 10 (${fmt(cp10.total)}): ` +
        cp10.path.map(p => `${short(p.urn)} ${p.seconds}s`).join(" -> "));
    say();

    // 2. Simulated gitlab.rb change.
    say("## 2. Simulated deploys");
    say();
    say("Each step costs the duration of the table below for its operation (create, or update; a replace runs create; unchanged " +
        "and deleted resources cost 0 but still order their dependents). Pulumi runs steps with unbounded parallelism, so a " +
        "deploy takes its critical path; the hand-run procedure does the same steps host after host, so it takes their sum.");
    say();
    say("| N | first deploy (critical path) | hand-run | ratio | gitlab.rb change, as designed (rollouts update) | hand-run | ratio | gitlab.rb change, as Pulumi would run it | resources changed |");
    say("|---|---|---|---|---|---|---|---|---|");
    const rbRows: { n: number; designed: number; actual: number }[] = [];
    let rolloutReplaced = false;
    for (const n of SIZES) {
        const before = evaluations.get(n)!;
        const after = await quietEvaluate(SCENARIOS[0]!.edit(n));
        const c = classify(before, after).resources;
        const designed = changeDeploy(after, c, x => (x.op === "replace" && x.name.endsWith("-rollout") ? "update" : x.op));
        const actual = changeDeploy(after, c);
        const row = rows.find(r => r.n === n)!;
        const s = summarize(c);
        rbRows.push({ n, designed: designed.total, actual: actual.total });
        if (c.some(x => x.op === "replace" && x.name.endsWith("-rollout"))) rolloutReplaced = true;
        say(`| ${n} | ${fmt(row.first)} | ${fmt(row.serial)} | ${(row.serial / row.first).toFixed(1)}x | ${fmt(designed.total)} | ${fmt(designed.serial)} | ` +
            `${(designed.serial / designed.total).toFixed(1)}x | ${fmt(actual.total)} | ${s.update} updated, ${s.replace} replaced |`);
    }
    say();
    // The prose follows the measurement: it once said "no node is reconfigured" while the table showed updates.
    say("\"As designed\" runs each node's rollout `update` (gitlab-ctl reconfigure + readiness wait). \"As Pulumi would run it\": " +
        "each step as the engine classifies it with the providers' replace-on-change rules (section 3); @pulumi/command 1.2.1 " +
        "registers every Command with `replaceOnChanges: [\"triggers[*]\"]`, and a replaced rollout runs `create` (an `echo`), not `update`. " +
        (rolloutReplaced
            ? "Here the engine replaces rollouts: those nodes are not reconfigured."
            : "The gitlab.rb digest is in the rollout's `update` script, not in its `triggers`, so the engine updates each rollout in place " +
              "and reconfigures every node, one after the other, as designed (the two columns agree)."));
    say();
    say("### Step durations");
    say();
    say("Assumptions, not measurements (no GitLab host here); first matching row wins.");
    say();
    say("| step | type | name pattern | create (s) | update (s) | basis |");
    say("|---|---|---|---|---|---|");
    for (const d of DURATION_TABLE) {
        say(`| ${d.step} | \`${d.type}\` | \`${d.name.source}\`${d.node ? ` (${d.node} node)` : ""} | ${d.create} | ${d.update ?? d.create} | ${d.basis} |`);
    }
    say();

    // 3. Blast radius.
    say("## 3. Blast radius (N = 3, two evaluations compared by URN)");
    say();
    say("An input counts as changed when its value differs, or when a resource it takes outputs from is created or replaced " +
        "(unknown in a preview). Replace-on-change fields per type are in `scripts/bench/blastRadius.ts`:");
    say();
    say("| type | source |");
    say("|---|---|");
    for (const [type, s] of Object.entries(REPLACE_SEMANTICS)) say(`| \`${type}\` | ${s.source} |`);
    say();
    say("| change | created | updated | replaced | deleted | unchanged | containers replaced | what changes |");
    say("|---|---|---|---|---|---|---|---|");
    const blast = new Map<string, readonly Classified[]>();
    for (const sc of SCENARIOS) {
        const before = evaluations.get(sc.base)!;
        const after = await quietEvaluate(sc.edit(sc.base));
        const { resources, unknownTypes } = classify(before, after);
        blast.set(sc.name, resources);
        const s = summarize(resources);
        const containers = resources.filter(c => c.type === "docker:index/container:Container" && c.op === "replace").map(c => c.name);
        const what = resources.filter(c => c.op !== "same")
            .map(c => `${c.op} ${c.name}${c.op === "replace" ? ` [${c.replaceInputs.join(",")}]` : c.op === "update" ? ` (${c.changedInputs.join(",")})` : ""}`);
        say(`| ${sc.name} | ${s.create} | ${s.update} | ${s.replace} | ${s.delete} | ${s.same} | ${containers.length === 0 ? "none" : containers.join(", ")} | ` +
            `${what.join("; ")}${unknownTypes.length ? ` (no semantics for ${unknownTypes.join(", ")})` : ""} |`);
    }
    say();

    // 4. Determinism.
    say("## 4. Determinism");
    say();
    const det: string[] = [];
    for (const n of [3, 30]) {
        const a = await quietEvaluate(nNodeConfig(n));
        const b = await quietEvaluate(nNodeConfig(n));
        const d = differingInputs(a, b);
        det.push(...d);
        say(`- N = ${n}, two evaluations in one process: ${d.length} resources with differing inputs${d.length ? ` (${d.join(", ")})` : ""}`);
    }
    const childText = execFileSync(process.execPath, [__filename, "--child", "30"], { maxBuffer: 256 * 2 ** 20 }).toString();
    const childResources = (JSON.parse(childText) as { resources: { urn: string; inputs: Record<string, unknown> }[] }).resources;
    const crossProcess = differingInputs(evaluations.get(30)!, childResources as unknown as RecordedResource[]);
    det.push(...crossProcess);
    say(`- N = 30, this process against a child process (same GITLAB_CLUSTER_KEY_DIR): ${crossProcess.length} resources with differing inputs` +
        `${crossProcess.length ? ` (${crossProcess.join(", ")})` : ""}`);
    say();

    // Targets.
    const rb = blast.get(SCENARIOS[0]!.name)!;
    const lb = blast.get(SCENARIOS[3]!.name)!;
    const add = blast.get(SCENARIOS[1]!.name)!;
    const r1 = rows.find(r => r.n === 1)!;
    const r10 = rows.find(r => r.n === 10)!;
    const replacedContainers = (cs: readonly Classified[]) => cs.filter(c => c.type === "docker:index/container:Container" && c.op === "replace").length;
    const existingReplaced = add.filter(c => c.op === "replace" || c.op === "delete").map(c => c.name);
    const verdict = (ok: boolean) => (ok ? "MET" : "MISSED");
    say("## Targets");
    say();
    say("| target | measured | verdict |");
    say("|---|---|---|");
    say(`| evaluation <= 3 s at N = 30 (${os.cpus().length} cores) | ${r30.median.toFixed(2)} s median | ${verdict(r30.median <= 3)} |`);
    say(`| first-deploy depth equal at N = 3 and N = 30 | ${r3.depth} vs ${r30.depth} | ${verdict(r3.depth === r30.depth)} |`);
    say(`| simulated first deploy at N = 10 within 1.5x of N = 1 | ${fmt(r10.first)} / ${fmt(r1.first)} = ${(r10.first / r1.first).toFixed(2)}x | ${verdict(r10.first <= 1.5 * r1.first)} |`);
    say(`| gitlab.rb or balancer change replaces no container | ${replacedContainers(rb)} + ${replacedContainers(lb)} containers replaced | ${verdict(replacedContainers(rb) + replacedContainers(lb) === 0)} |`);
    say(`| adding a node replaces nothing existing | ${existingReplaced.length === 0 ? "nothing replaced or deleted" : existingReplaced.join(", ")} | ${verdict(existingReplaced.length === 0)} |`);
    say(`| 0 differing inputs between two evaluations of the same stack | ${det.length} | ${verdict(det.length === 0)} |`);
    say();
    const rbReplaced = rb.filter(c => c.op === "replace").map(c => c.name);
    if (rbReplaced.length > 0) say(`Replaced by a gitlab.rb change (not containers): ${rbReplaced.join(", ")}.`);
    say();
    const gitlabRbDesigned = rbRows.find(r => r.n === 3)!;
    say(`gitlab.rb change at N = 3: ${fmt(gitlabRbDesigned.designed)} as designed vs ${fmt(gitlabRbDesigned.actual)} as the engine would run it.`);

    const file = path.join(process.cwd(), "BENCHMARKS.md");
    const manual = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("<!-- analysis -->")[1] : undefined;
    fs.writeFileSync(file, `${out.join("\n")}\n${manual !== undefined ? `\n<!-- analysis -->${manual}` : ""}`);
    console.log(`\nwrote ${file}`);
}

runMain(module, main);
