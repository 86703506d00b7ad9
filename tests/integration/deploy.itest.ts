// Integration test driver (phase 2): deploys what the program produces for the test stack
// (tests/integration/stack.ts) onto the harness's host containers, the way `pulumi up` would:
//   every command of the manifest over real SSH on its host, with its stdin, in dependency order;
//   every container from the manifest's spec on the real Docker engine, in the host's network
//   namespace, its image mapped to a named stand-in.
//
//   node deploy.itest.js prepare   evaluate; write manifest.json, ops-outputs.json, the key dir
//   node deploy.itest.js deploy    run every step (commands and containers) in dependency order
//   node deploy.itest.js rerun     run every command's create again; nothing may change
//   node deploy.itest.js upgrade <gitlab image>   `pulumi up` after an edit of gitlab.image
//   node deploy.itest.js change <JSON>            `pulumi up` after a config edit (a JSON merge
//                                  patch of the stack's config, e.g. {"gitlab":{"omnibus":{...}}})
//
// Environment (set by run.sh): ITEST_WORK (this run's private dir), ITEST_SRV_ROOT (the
// machine directory holding each host's /srv), ITEST_IMAGE_MAP (JSON: official repository ->
// stand-in tag), GITLAB_CLUSTER_KEY_DIR (where the program writes <host>.key/.known_hosts),
// ITEST_LAYOUT (nfs: the first stack, gitaly: the Gitaly layout's; see stack.ts).
// Every step's start and end go to $ITEST_WORK/timeline.jsonl (the ordering checks read it).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { classify, type Operation } from "../../scripts/bench/blastRadius";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { buildManifest, type Manifest, type ManifestCommand, type ManifestContainer } from "../../scripts/renderStack";
import { ITEST_STACK, itestStackConfig, layoutFromEnv, runPasswords, type Inventory } from "./stack";

const LABEL = "gitlab-cluster-itest";
const STEP_TIMEOUT_S = 600;
/** Steps run at once: the engine starts every resource whose dependencies are done (its default parallelism is large). */
const PARALLEL = 16;

function env(name: string): string {
    const v = process.env[name];
    if (v === undefined || v === "") throw new Error(`${name} is not set (run through tests/integration/run.sh)`);
    return v;
}

const work = () => env("ITEST_WORK");
const log = (line: string) => process.stdout.write(`${line}\n`);

/** RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
    const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
    if (!isObj(patch)) return patch;
    const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
    for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete out[k];
        else out[k] = mergePatch(out[k], v);
    }
    return out;
}

/** The test stack (ITEST_LAYOUT's); `patch`: as after an edit of the stack's config (upgrade, change). */
async function evaluateStack(patch?: Record<string, unknown>): Promise<{ evaluation: Evaluation; manifest: Manifest }> {
    const inv = JSON.parse(fs.readFileSync(path.join(work(), "inventory.json"), "utf8")) as Inventory;
    const config = mergePatch(itestStackConfig(inv, layoutFromEnv()), patch ?? {}) as Record<string, unknown>;
    const evaluation = await evaluate(config, {
        stack: ITEST_STACK,
        passwordFor: runPasswords(path.join(work(), "passwords.json")),
    });
    return { evaluation, manifest: buildManifest(evaluation) };
}

// ---- running a command over SSH, as @pulumi/command's remote.Command does -------------------

interface Result { code: number; stdout: string; stderr: string }

/**
 * The key and known_hosts files an SSH connection to `host` uses: the ones the program itself
 * wrote for the host's Docker provider (GITLAB_CLUSTER_KEY_DIR). A host that runs no container
 * (a storage host that only exports NFS) has no Docker provider, so the program writes none for
 * it: its commands then connect as @pulumi/command does, with their `connection`'s privateKey and
 * pinned hostKey, which the test writes into files of its own ($ITEST_WORK/connection).
 */
function sshFiles(evaluation: Evaluation, host: string): { key: string; knownHosts: string } {
    const dir = env("GITLAB_CLUSTER_KEY_DIR");
    const program = { key: path.join(dir, `${host}.key`), knownHosts: path.join(dir, `${host}.known_hosts`) };
    if (fs.existsSync(program.key) && fs.existsSync(program.knownHosts)) return program;
    const address = evaluation.config.hosts[host]?.address;
    const connection = evaluation.resources
        .filter(r => r.type === "command:remote:Command")
        .map(r => r.inputs.connection as { host?: string; port?: number; privateKey?: string; hostKey?: string } | undefined)
        .find(c => c?.host === address);
    if (!connection?.privateKey || !connection.hostKey) throw new Error(`no key files for ${host} in ${dir}, and no command's connection with privateKey and hostKey for ${address}`);
    const own = path.join(work(), "connection");
    fs.mkdirSync(own, { recursive: true, mode: 0o700 });
    const files = { key: path.join(own, `${host}.key`), knownHosts: path.join(own, `${host}.known_hosts`) };
    fs.writeFileSync(files.key, connection.privateKey.endsWith("\n") ? connection.privateKey : `${connection.privateKey}\n`, { mode: 0o600 });
    const at = (connection.port ?? 22) === 22 ? String(address) : `[${String(address)}]:${connection.port}`;
    fs.writeFileSync(files.knownHosts, `${at} ${connection.hostKey}\n`, { mode: 0o600 });
    return files;
}

/**
 * Runs `script` as the SSH session's command (the login shell interprets it, as with
 * @pulumi/command), with stdin. Uses the key and pinned known_hosts file of `sshFiles`:
 * StrictHostKeyChecking=yes.
 */
function sshRun(evaluation: Evaluation, host: string, address: string, script: string, stdin: string | undefined, timeoutS = STEP_TIMEOUT_S): Promise<Result> {
    const files = sshFiles(evaluation, host);
    const args = ["-i", files.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${files.knownHosts}`,
        "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", `root@${address}`, script];
    return runProcess("ssh", args, stdin, process.env, timeoutS);
}

/** A `local.Command` runs on the machine that runs Pulumi, with its `environment`: so does the test. */
function localRun(script: string, stdin: string | undefined, environment: Record<string, string> | undefined): Promise<Result> {
    return runProcess("/bin/sh", ["-c", script], stdin, { ...process.env, ...environment }, STEP_TIMEOUT_S);
}

function runProcess(program: string, args: string[], stdin: string | undefined, environment: NodeJS.ProcessEnv, timeoutS: number): Promise<Result> {
    return new Promise((resolve, reject) => {
        const child = spawn(program, args, { stdio: ["pipe", "pipe", "pipe"], env: environment });
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => { stderr += `\n[itest] killed after ${timeoutS}s`; child.kill("SIGKILL"); }, timeoutS * 1000);
        child.stdout.on("data", d => { stdout += d; });
        child.stderr.on("data", d => { stderr += d; });
        child.on("error", err => { clearTimeout(timer); reject(err); });
        child.on("close", code => { clearTimeout(timer); resolve({ code: code ?? 1, stdout, stderr }); });
        child.stdin.on("error", () => { /* the script may not read its stdin */ });
        child.stdin.end(stdin ?? "");
    });
}

// ---- the Docker engine API (what the Docker provider talks to) ----------------------------

function dockerApi(method: string, apiPath: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        const req = http.request({
            socketPath: "/var/run/docker.sock", path: apiPath, method, timeout: 120_000,
            headers: data ? { "Content-Type": "application/json", "Content-Length": data.length } : {},
        }, res => {
            let text = "";
            res.on("data", d => { text += d; });
            res.on("end", () => {
                let json: unknown = text;
                try { json = text ? JSON.parse(text) : null; } catch { /* plain text */ }
                resolve({ status: res.statusCode ?? 0, json });
            });
        });
        req.on("timeout", () => req.destroy(new Error(`docker API ${method} ${apiPath} timed out`)));
        req.on("error", reject);
        req.end(data);
    });
}

async function dockerOk(method: string, apiPath: string, body?: unknown): Promise<unknown> {
    const r = await dockerApi(method, apiPath, body);
    if (r.status >= 300) throw new Error(`docker API ${method} ${apiPath}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
}

/** "60s" / "1m30s" -> nanoseconds, as the provider sends them. */
function durationNs(d: unknown): number {
    if (d === undefined) return 0;
    const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(String(d));
    if (!m || (!m[1] && !m[2])) throw new Error(`unsupported duration ${JSON.stringify(d)}`);
    return ((Number(m[1] ?? 0) * 60) + Number(m[2] ?? 0)) * 1e9;
}

interface Volume { hostPath?: string; volumeName?: string; containerPath: string; readOnly?: boolean }
interface Port { internal: number; external: number; ip?: string }
interface Healthcheck { tests: string[]; interval?: string; timeout?: string; retries?: number; startPeriod?: string }

/** Where a GitLab stand-in whose port 22 is not published runs its sshd (the host's sshd has 22). */
const UNPUBLISHED_STANDIN_SSH_PORT = 2022;

const HANDLED_INPUTS = new Set(["name", "image", "command", "entrypoints", "envs", "restart", "ports", "volumes", "healthcheck", "shmSize", "stopTimeout", "hostname", "wait", "waitTimeout"]);

/** The official image a container runs: its RemoteImage dependency's `name`. */
function officialImage(evaluation: Evaluation, c: ManifestContainer): string {
    const images = evaluation.resources.filter(r => r.type === "docker:index/remoteImage:RemoteImage" && c.dependsOn.includes(r.name));
    // The manifest shows the image's ID (the mocks' made-up digest) or, since renderStack shows references, its name.
    const image = images.find(r => `sha256:${createHash("sha256").update(`${r.type}/${r.name}`).digest("hex")}` === c.inputs.image || r.inputs.name === c.inputs.image);
    if (!image) throw new Error(`${c.resource}: cannot tell which RemoteImage its image ${String(c.inputs.image)} is`);
    return String(image.inputs.name);
}

function standinImage(official: string): string {
    const map = JSON.parse(env("ITEST_IMAGE_MAP")) as Record<string, string>;
    const repo = official.replace(/[:@].*$/, "");
    // A full reference first (the upgrade test's second GitLab release), then the repository.
    const tag = map[official] ?? map[repo];
    if (!tag) throw new Error(`no stand-in image for ${official} (have: ${Object.keys(map).join(", ")})`);
    return tag;
}

/**
 * Creates and starts a manifest container on the machine's engine as the Docker provider would,
 * with these translations (each printed):
 *  - image: the official image cannot be pulled; its stand-in runs instead;
 *  - network: `container:gcitest-<host>`, so the service owns the host container's address as
 *    it would own the host's. Ports cannot be published in that mode and need not be: the
 *    service listens on the host's address itself. A port published under another number
 *    (GitLab's 22 -> 2222) is passed to the GitLab stand-in as the port its sshd listens on;
 *  - hostname: taken from the host container (the same name; Docker refuses both options);
 *  - bind mounts: the host's /srv is the machine directory ITEST_SRV_ROOT/<host>/srv;
 *  - named volumes: created first, labelled for cleanup.
 */
async function startContainer(evaluation: Evaluation, c: ManifestContainer, out: string[]): Promise<void> {
    const inputs = c.inputs as Record<string, unknown>;
    const unknown = Object.keys(inputs).filter(k => !HANDLED_INPUTS.has(k));
    if (unknown.length > 0) throw new Error(`${c.resource}: container inputs the test does not translate: ${unknown.join(", ")}`);
    const name = String(inputs.name);
    const hostContainer = `gcitest-${c.host}`;
    const official = officialImage(evaluation, c);
    const image = standinImage(official);
    out.push(`image ${official} -> stand-in ${image}`);
    const envs = [...(inputs.envs as string[] | undefined ?? [])];
    const address = evaluation.config.hosts[c.host]!.address;
    const ports = (inputs.ports as Port[] | undefined) ?? [];
    for (const p of ports) {
        if (p.ip !== undefined && p.ip !== address && p.ip !== "0.0.0.0") throw new Error(`${name}: port ${p.external} published on ${p.ip}, not the host's address ${address}`);
        if (p.internal !== p.external) {
            if (!official.startsWith("gitlab/") || p.internal !== 22) throw new Error(`${name}: cannot translate port ${p.internal} -> ${p.external} in a shared network namespace`);
            envs.push(`GITLAB_STANDIN_SSH_PORT=${p.external}`);
        }
        out.push(`port ${p.ip ?? "*"}:${p.external} -> ${p.internal}: listens on ${address}:${p.external} in the host's namespace`);
    }
    if (official.startsWith("gitlab/") && !ports.some(p => p.internal === 22)) {
        // The image's sshd listens on the container's own port 22, which it does not publish (the
        // Gitaly node). In the host's namespace port 22 is the host's sshd: the stand-in's goes
        // to a port nothing publishes or connects to.
        envs.push(`GITLAB_STANDIN_SSH_PORT=${UNPUBLISHED_STANDIN_SSH_PORT}`);
        out.push(`port 22 of the container is not published: the stand-in's sshd listens on ${UNPUBLISHED_STANDIN_SSH_PORT} (unused) in the host's namespace`);
    }
    if (inputs.hostname !== undefined && inputs.hostname !== c.host) throw new Error(`${name}: hostname ${String(inputs.hostname)} is not the host's name ${c.host}`);
    const srvRoot = env("ITEST_SRV_ROOT");
    const binds: string[] = [];
    for (const v of (inputs.volumes as Volume[] | undefined) ?? []) {
        let source: string;
        if (v.hostPath !== undefined) {
            if (!/^\/srv(\/|$)/.test(v.hostPath)) throw new Error(`${name}: host path ${v.hostPath} is outside /srv: the test cannot map it`);
            source = path.join(srvRoot, c.host, v.hostPath);
        } else if (v.volumeName !== undefined) {
            const existing = await dockerApi("GET", `/volumes/${encodeURIComponent(v.volumeName)}`);
            const labels = (existing.json as { Labels?: Record<string, string> } | null)?.Labels ?? {};
            if (existing.status === 200 && labels[LABEL] !== "1") throw new Error(`volume ${v.volumeName} exists and is not the test's: refusing to use it`);
            if (existing.status !== 200) {
                await dockerOk("POST", "/volumes/create", { Name: v.volumeName, Labels: { [LABEL]: "1", [`${LABEL}.run`]: env("ITEST_RUN_ID") } });
            }
            source = v.volumeName;
        } else {
            throw new Error(`${name}: a volume with neither hostPath nor volumeName`);
        }
        binds.push(`${source}:${v.containerPath}${v.readOnly ? ":ro" : ""}`);
    }
    const hc = inputs.healthcheck as Healthcheck | undefined;
    const body = {
        Image: image,
        ...(inputs.command !== undefined ? { Cmd: inputs.command } : {}),
        ...(inputs.entrypoints !== undefined ? { Entrypoint: inputs.entrypoints } : {}),
        ...(inputs.stopTimeout !== undefined ? { StopTimeout: Number(inputs.stopTimeout) } : {}),
        Env: envs,
        Labels: { [LABEL]: "1", [`${LABEL}.run`]: env("ITEST_RUN_ID"), [`${LABEL}.standin-for`]: official },
        ...(hc ? { Healthcheck: { Test: hc.tests, Interval: durationNs(hc.interval), Timeout: durationNs(hc.timeout), Retries: hc.retries ?? 0, StartPeriod: durationNs(hc.startPeriod) } } : {}),
        HostConfig: {
            NetworkMode: `container:${hostContainer}`,
            Binds: binds,
            RestartPolicy: { Name: String(inputs.restart ?? "no") },
            ...(inputs.shmSize !== undefined ? { ShmSize: Number(inputs.shmSize) * 1024 * 1024 } : {}),
        },
    };
    const existing = await dockerApi("GET", `/containers/${encodeURIComponent(name)}/json`);
    if (existing.status === 200) throw new Error(`a container named ${name} already exists on this engine: refusing to touch it`);
    await dockerOk("POST", `/containers/create?name=${encodeURIComponent(name)}`, body);
    await dockerOk("POST", `/containers/${encodeURIComponent(name)}/start`);
    out.push(`started ${name} in the network namespace of ${hostContainer}`);
    if (inputs.wait === true) {
        // The provider's `wait`: until the healthcheck says healthy, within waitTimeout.
        const deadline = Date.now() + Number(inputs.waitTimeout ?? 60) * 1000;
        for (;;) {
            const state = (await dockerOk("GET", `/containers/${encodeURIComponent(name)}/json`) as { State: { Status: string; Health?: { Status: string; Log?: { Output: string }[] } } }).State;
            if (state.Health?.Status === "healthy") { out.push(`${name} is healthy`); break; }
            if (state.Status !== "running" || Date.now() > deadline) {
                const logs = await dockerApi("GET", `/containers/${encodeURIComponent(name)}/logs?stdout=1&stderr=1&tail=20`);
                throw new Error(`${name} did not become healthy (status ${state.Status}, health ${state.Health?.Status}); last check: ${state.Health?.Log?.slice(-1)[0]?.Output ?? "-"}\nlogs: ${String(logs.json).replace(/[^\x20-\x7e\n]/g, "")}`);
            }
            await new Promise(r => setTimeout(r, 1000));
        }
    }
}

// ---- the deploy graph ------------------------------------------------------------------------

type Step = { kind: "command"; name: string; deps: string[]; command: ManifestCommand; op?: Operation }
    | { kind: "container"; name: string; deps: string[]; container: ManifestContainer; op?: Operation };

function steps(manifest: Manifest, withContainers: boolean): Step[] {
    const all: Step[] = [
        ...manifest.commands.map(c => ({ kind: "command" as const, name: c.resource, deps: [...c.dependsOn], command: c })),
        ...(withContainers ? manifest.containers.map(c => ({ kind: "container" as const, name: c.resource, deps: [...c.dependsOn], container: c })) : []),
    ];
    const names = new Set(all.map(s => s.name));
    // Dependencies on resources that are neither (passwords, images, volumes) are done by the evaluation.
    return all.map(s => ({ ...s, deps: s.deps.filter(d => names.has(d) && d !== s.name) }));
}

/** apt-get failing to reach Debian's mirror (the only network a script uses). */
const APT_NETWORK_ERROR = /(Temporary failure resolving|Failed to fetch|Could not connect to|Unable to fetch some archives|Hash Sum mismatch|Connection timed out)[^\n]*/;

/** What the mocks made a command print; a later command whose stdin is that gets the real stdout. */
function mockStdout(name: string): string | undefined {
    return name.endsWith("-read-identity") ? Buffer.from(`identity bundle of ${name}`).toString("base64") : undefined;
}

/** Runs the graph: each step once its dependencies are done, up to PARALLEL at a time, as the engine does. */
async function runGraph(evaluation: Evaluation, all: Step[], title: string): Promise<Map<string, string>> {
    const stdoutOf = new Map<string, string>();
    const done = new Set<string>();
    const started = new Set<string>();
    let failed: string | undefined;
    const failures: string[] = [];
    const running = new Map<string, Promise<void>>();
    const t0 = Date.now();
    const timeline = path.join(work(), "timeline.jsonl");
    const runStep = async (s: Step): Promise<void> => {
        const t = Date.now();
        const out: string[] = [];
        let ok = true;
        try {
            if (s.kind === "container") {
                // A replace: the old container goes first (deleteBeforeReplace), stopped with its stop timeout.
                if (s.op === "replace") await removeContainer(String(s.container.inputs.name), Number(s.container.inputs.stopTimeout ?? 10), out);
                await startContainer(evaluation, s.container, out);
            } else {
                const c = s.command;
                let stdin = c.stdin;
                for (const d of c.dependsOn) {
                    if (stdin !== undefined && stdin === mockStdout(d)) {
                        stdin = stdoutOf.get(d);
                        out.push(`stdin: the real stdout of ${d} (${stdin?.length ?? 0} bytes), in place of the mocked one`);
                    }
                }
                const host = evaluation.config.hosts[c.host];
                const environment = evaluation.byName(c.resource).inputs.environment as Record<string, string> | undefined;
                // An in-place update runs `update` when the command has one, as @pulumi/command does.
                const script = (s.op === "update" ? c.update : undefined) ?? c.create ?? "true";
                const run = () => host === undefined
                    ? localRun(script, stdin, environment)
                    : sshRun(evaluation, c.host, host.address, script, stdin);
                if (host === undefined && evaluation.byName(c.resource).type !== "command:local:Command") throw new Error(`${c.resource}: host ${c.host} is not in the inventory`);
                let r = await run();
                if (r.code !== 0 && APT_NETWORK_ERROR.test(r.stdout + r.stderr)) {
                    // Debian's mirror, not the program, failed: run the (idempotent) script once more, as one would re-run `pulumi up`.
                    out.push(`RETRY after a package mirror error: ${(APT_NETWORK_ERROR.exec(r.stdout + r.stderr) ?? [""])[0]}`);
                    await new Promise(res => setTimeout(res, 5000));
                    r = await run();
                }
                stdoutOf.set(c.resource, r.stdout);
                const secret = c.resource.endsWith("-read-identity");
                out.push(...(secret ? [`(stdout: ${r.stdout.length} bytes of secrets, not shown)`] : r.stdout.split("\n").filter(Boolean)));
                out.push(...r.stderr.split("\n").filter(Boolean).map(l => `! ${l}`));
                if (r.code !== 0) { ok = false; out.push(`exit ${r.code}`); }
            }
        } catch (err) {
            ok = false;
            out.push(`error: ${(err as Error).message}`);
        }
        const where = s.kind === "command" ? s.command.host : s.container.host;
        const end = Date.now();
        fs.appendFileSync(timeline, `${JSON.stringify({ run: title, step: s.name, kind: s.kind, host: where, op: s.op ?? "create", ok,
            start: new Date(t).toISOString(), end: new Date(end).toISOString() })}\n`);
        const head = `${ok ? "ok  " : "FAIL"} [${where}] ${s.kind === "container" ? "container " : ""}${s.name} (${((end - t) / 1000).toFixed(1)}s)`;
        log(head);
        for (const l of out) log(`       ${l}`);
        if (ok) done.add(s.name); else { failed ??= s.name; failures.push([head, ...out.slice(-25)].join("\n       ")); }
    };
    for (let rounds = 0; rounds < 10_000; rounds++) {
        if (failed === undefined) {
            for (const s of all) {
                if (started.size - done.size >= PARALLEL) break;
                if (!started.has(s.name) && s.deps.every(d => done.has(d))) {
                    started.add(s.name);
                    running.set(s.name, runStep(s).finally(() => running.delete(s.name)));
                }
            }
        }
        if (running.size === 0) break;
        await Promise.race(running.values());
    }
    if (failed !== undefined) throw new Error(`${title}: step ${failed} failed:\n${failures.join("\n")}`);
    const stuck = all.filter(s => !done.has(s.name));
    if (stuck.length > 0) throw new Error(`${title}: never ran (dependency cycle?): ${stuck.map(s => s.name).join(", ")}`);
    log(`${title}: ${all.length} steps in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    return stdoutOf;
}

/** Stops (with the container's stop timeout) and removes a container of this run, as a replace's delete does. */
async function removeContainer(name: string, stopTimeoutS: number, out: string[]): Promise<void> {
    const t = Date.now();
    const stop = await dockerApi("POST", `/containers/${encodeURIComponent(name)}/stop?t=${stopTimeoutS}`);
    if (stop.status !== 204 && stop.status !== 304) throw new Error(`stop ${name}: HTTP ${stop.status} ${JSON.stringify(stop.json)}`);
    await dockerOk("DELETE", `/containers/${encodeURIComponent(name)}`);
    out.push(`old container ${name} stopped and removed in ${((Date.now() - t) / 1000).toFixed(1)}s`);
}

// ---- what a host looks like: files the scripts manage, mounts, firewall, containers -----------

/** `logDirs`: the Omnibus containers' log directories (written by the running services, not by the program's scripts). */
const snapshotScript = (logDirs: readonly string[]) => `set -u
paths=""
for p in /srv /etc/exports.d /etc/fstab /etc/cron.d /etc/sysctl.d /usr/local/sbin /var/lib/nfs/etab; do [ -e "$p" ] && paths="$paths $p"; done
prune="${logDirs.map(d => `-path ${d} -prune -o`).join(" ")}"
find $paths $prune -printf '%p %y %m %U:%G\\n' | LC_ALL=C sort
find $paths $prune -type f -print0 | xargs -0 -r sha256sum | LC_ALL=C sort -k2
echo "-- mounts under /srv"
awk '$5 ~ "^/srv" {print $5}' /proc/self/mountinfo | LC_ALL=C sort
echo "-- iptables -S"
iptables -S 2>&1 || echo "(iptables not usable here)"
echo "-- containers"
docker ps -a --filter label=gitlab-cluster-itest.standin-for --format '{{.Names}}' | LC_ALL=C sort | while read -r c; do
  docker inspect -f '{{.Name}} {{.Id}} started={{.State.StartedAt}} restarts={{.RestartCount}} {{.State.Status}}' "$c"
done
`;

async function snapshot(evaluation: Evaluation): Promise<Map<string, string>> {
    const hosts = Object.entries(evaluation.config.hosts);
    // GitLab's and Gitaly's own logs (the Gitaly stand-in logs every health call of a readiness wait).
    const script = snapshotScript([`${evaluation.config.gitlab.dataRoot}/logs`, `${evaluation.config.gitaly.dataRoot}/logs`]);
    const results = await Promise.all(hosts.map(([name, h]) => sshRun(evaluation, name, h.address, script, undefined, 120)));
    return new Map(hosts.map(([name], i) => {
        const r = results[i]!;
        if (r.code !== 0) throw new Error(`snapshot of ${name} failed: ${r.stderr}`);
        return [name, r.stdout];
    }));
}

function diffLines(a: string, b: string): string[] {
    const as = new Set(a.split("\n"));
    const bs = new Set(b.split("\n"));
    return [...a.split("\n").filter(l => !bs.has(l)).map(l => `- ${l}`), ...b.split("\n").filter(l => !as.has(l)).map(l => `+ ${l}`)];
}

// ---- subcommands -----------------------------------------------------------------------------

async function prepare(): Promise<number> {
    const { evaluation, manifest } = await evaluateStack();
    fs.writeFileSync(path.join(work(), "manifest.json"), JSON.stringify(manifest, null, 1), { mode: 0o600 });
    // The ops command reads the stack's outputs; `ops` is the inventory the program exports.
    fs.writeFileSync(path.join(work(), "ops-outputs.json"), JSON.stringify({ ops: evaluation.cluster.ops }, null, 1), { mode: 0o600 });
    const keyDir = env("GITLAB_CLUSTER_KEY_DIR");
    // The program writes them for each host's Docker provider: every host that runs a container.
    const dockerHosts = new Set(manifest.containers.map(c => c.host));
    for (const h of Object.keys(evaluation.config.hosts)) {
        for (const f of [`${h}.key`, `${h}.known_hosts`]) {
            const written = fs.existsSync(path.join(keyDir, f));
            if (dockerHosts.has(h) && !written) throw new Error(`the program did not write ${f} into ${keyDir}`);
            if (!dockerHosts.has(h) && written) log(`note: ${h} runs no container, yet the program wrote ${f}`);
        }
        if (!dockerHosts.has(h)) log(`${h} runs no container: no Docker provider, no key files; its commands connect with their connection's privateKey and hostKey`);
    }
    // Facts the shell checks need, without secrets.
    const files = Object.fromEntries(manifest.commands.filter(c => c.writes).map(c => [`${c.host}:${c.writes!.path}`, c.writes!.mode]));
    fs.writeFileSync(path.join(work(), "facts.json"), JSON.stringify({
        containers: manifest.containers.map(c => ({ host: c.host, name: c.inputs.name })),
        commands: manifest.commands.map(c => `${c.host}:${c.resource}`),
        files,
    }, null, 1));
    log(`evaluated stack ${ITEST_STACK}: ${manifest.commands.length} commands, ${manifest.containers.length} containers, ${Object.keys(files).length} files`);
    for (const c of manifest.commands) log(`  [${c.host}] ${c.resource}${c.writes ? ` writes ${c.writes.path} (${c.writes.mode})` : ""}`);
    for (const c of manifest.containers) log(`  [${c.host}] container ${String(c.inputs.name)}`);
    return 0;
}

async function deploy(): Promise<number> {
    const { evaluation, manifest } = await evaluateStack();
    const out = await runGraph(evaluation, steps(manifest, true), "deploy");
    const identity = [...out.entries()].find(([k]) => k.endsWith("-read-identity"));
    if (identity) fs.writeFileSync(path.join(work(), "identity.b64"), identity[1], { mode: 0o600 });
    return 0;
}

async function rerun(): Promise<number> {
    const { evaluation, manifest } = await evaluateStack();
    const before = await snapshot(evaluation);
    const out = await runGraph(evaluation, steps(manifest, false), "second run of every command");
    const after = await snapshot(evaluation);
    let changes = 0;
    for (const [host, a] of before) {
        const d = diffLines(a, after.get(host) ?? "");
        if (d.length > 0) { changes += d.length; log(`CHANGED on ${host}:`); for (const l of d) log(`  ${l}`); }
        const count = (re: RegExp) => a.split("\n").filter(l => re.test(l)).length;
        log(`${host}: ${count(/^\/\S+ f /)} files, ${count(/^[0-9a-f]{64} /)} checksums, ${count(/ started=/)} containers, ${count(/^-A /)} iptables rules compared`);
    }
    const firstIdentity = fs.readFileSync(path.join(work(), "identity.b64"), "utf8");
    const again = [...out.entries()].find(([k]) => k.endsWith("-read-identity"))?.[1];
    if (again !== firstIdentity) { changes++; log("CHANGED: the migration node's identity bundle differs from the first run's"); }
    const changedLines = [...out.values()].join("\n").split("\n").filter(l => /^(written|exports written|fstab entry written|restarted|reloaded|nginx reloaded|installing|mounted|shared secrets and host keys: written)\b/.test(l));
    if (changedLines.length > 0) { changes += changedLines.length; log("a second run reported changes:"); for (const l of changedLines) log(`  ${l}`); }
    log(changes === 0 ? "second run: nothing changed" : `second run: ${changes} change(s)`);
    return changes === 0 ? 0 : 1;
}

/**
 * `pulumi up` after the stack's config is edited (`patch`, a JSON merge patch; the upgrade test's is
 * gitlab.image): evaluates the stack before and after, classifies every resource with the providers'
 * replace-on-change rules (scripts/bench/blastRadius.ts), and runs the commands and containers that
 * change, in the program's dependency order (unchanged ones are done).
 * Exit 0 when every step ran; 3 when a step failed (the output names it: a refused preflight).
 */
async function applyChange(what: string, patch: Record<string, unknown>): Promise<number> {
    const current = await evaluateStack();
    const next = await evaluateStack(patch);
    const ops = new Map(classify(current.evaluation.resources, next.evaluation.resources).resources.map(r => [r.name, r.op]));
    const changed = steps(next.manifest, true)
        .map(s => ({ ...s, op: ops.get(s.name) }))
        .filter(s => s.op !== undefined && s.op !== "same");
    const names = new Set(changed.map(s => s.name));
    const plan = changed.map(s => ({ ...s, deps: s.deps.filter(d => names.has(d)) }));
    log(`${what}: ${plan.length} changed steps`);
    for (const s of plan) log(`  ${s.op} ${s.kind === "container" ? "container " : ""}${s.name}${s.deps.length ? ` after ${s.deps.join(", ")}` : ""}`);
    try {
        await runGraph(next.evaluation, plan, what);
    } catch (err) {
        log((err as Error).message);
        return 3;
    }
    return 0;
}

async function main(argv: string[]): Promise<number> {
    switch (argv[0]) {
        case "prepare": return prepare();
        case "deploy": return deploy();
        case "rerun": return rerun();
        case "upgrade": if (argv[1]) return applyChange(`upgrade to ${argv[1]}`, { gitlab: { image: argv[1] } }); break;
        case "change": if (argv[1]) return applyChange(`change ${argv[1]}`, JSON.parse(argv[1]) as Record<string, unknown>); break;
    }
    throw new Error("usage: deploy.itest.js prepare|deploy|rerun|upgrade <gitlab image>|change <JSON merge patch of the config>");
}

main(process.argv.slice(2)).then(code => process.exit(code), err => {
    console.error(`error: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
});
