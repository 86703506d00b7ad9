// Evaluates the program in-process under Pulumi's mocks (no CLI, no providers) and records
// every resource registration as the engine would receive it: inputs with their secret
// markers, parent, dependencies and property dependencies. Used by the tests, `npm run render`
// and `npm run bench`.
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import * as os from "node:os";
import * as path from "node:path";
import { GitlabCluster } from "../components/cluster";
import { CONFIG_NAMESPACE, loadClusterConfig, type ClusterConfig } from "../components/config";
import type { HostCommandFacts } from "../components/host";

const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

export interface RecordedResource {
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    readonly custom: boolean;
    readonly parent: string;
    readonly provider: string;
    /** URNs this resource waits for: dependsOn plus every resource whose outputs it takes as inputs. */
    readonly dependencies: readonly string[];
    readonly propertyDependencies: Readonly<Record<string, readonly string[]>>;
    /** Inputs with secrets unwrapped. */
    readonly inputs: Readonly<Record<string, unknown>>;
    /** Dotted paths of the inputs that are marked secret (`stdin`, `connection.privateKey`, ...). */
    readonly secretInputs: readonly string[];
    /** Outputs the engine stores as secrets whatever the provider says (e.g. a command's stdout). */
    readonly additionalSecretOutputs: readonly string[];
}

export interface Evaluation {
    readonly resources: readonly RecordedResource[];
    readonly cluster: GitlabCluster;
    readonly config: ClusterConfig;
    /** Resolves an output of the cluster (await it after evaluate returns). */
    readonly value: <T>(o: pulumi.Output<T>) => Promise<{ value: T; secret: boolean }>;
    /** The last resource registered with this logical name. */
    readonly byName: (name: string) => RecordedResource;
    /** What the program recorded as it made the resources: the host each acts on, the file a command writes. */
    readonly facts: EvaluationFacts;
}

export interface EvaluationFacts {
    /** Commands by resource name (from HostConnection.commands). */
    readonly commands: ReadonlyMap<string, HostCommandFacts>;
    /** Host names by Docker provider reference (`<urn>::<id>`, as a resource's `provider` holds it). */
    readonly providerHosts: ReadonlyMap<string, string>;
}

export interface EvaluateOptions {
    readonly stack?: string;
    /** Top-level config keys (without namespace) stored as secrets in the stack. */
    readonly secretKeys?: readonly string[];
    /** Mock values: the generated password of each random.RandomPassword, by resource name. */
    readonly passwordFor?: (resourceName: string) => string;
}

/** Deterministic stand-ins for provider-computed outputs. */
function mockOutputs(type: string, name: string, inputs: Record<string, unknown>, passwordFor: (n: string) => string): Record<string, unknown> {
    const digest = createHash("sha256").update(`${type}/${name}`).digest("hex");
    switch (type) {
        case "random:index/randomPassword:RandomPassword":
            return { ...inputs, result: passwordFor(name) };
        case "docker:index/remoteImage:RemoteImage":
            return { ...inputs, imageId: `sha256:${digest}`, repoDigest: `${String(inputs.name)}@sha256:${digest}` };
        case "command:remote:Command":
        case "command:local:Command":
            // Commands whose stdout feeds other resources print what the real ones would.
            if (name.endsWith("-read-identity")) return { ...inputs, stdout: Buffer.from(`identity bundle of ${name}`).toString("base64"), stderr: "" };
            if (name.endsWith("-backup-key")) return { ...inputs, stdout: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5${digest.slice(0, 40)} gitlab-cluster-backup\n`, stderr: "" };
            return { ...inputs, stdout: "", stderr: "" };
        default:
            return { ...inputs };
    }
}

function unwrapSecrets(value: unknown, at: string, secrets: string[]): unknown {
    if (Array.isArray(value)) return value.map((v, i) => unwrapSecrets(v, `${at}[${i}]`, secrets));
    if (value !== null && typeof value === "object") {
        const obj = value as Record<string, unknown>;
        if (obj[SIG_KEY] === SECRET_SIG) {
            secrets.push(at);
            return unwrapSecrets(obj.value, at, secrets);
        }
        return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v, at ? `${at}.${k}` : k, secrets)]));
    }
    return value;
}

interface MonitorRequest {
    getType(): string;
    getName(): string;
    getParent(): string;
    getProvider(): string;
    getCustom(): boolean;
    getDependenciesList(): string[];
    getPropertydependenciesMap(): { forEach(cb: (v: { getUrnsList(): string[] }, k: string) => void): void };
    getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
    getAdditionalsecretoutputsList(): string[];
}

interface MonitorResponse { getUrn(): string }

/** Flat `gitlab-cluster:<key>` values (JSON text) for a config object. */
export function flatConfig(config: Readonly<Record<string, unknown>>): Record<string, string> {
    return Object.fromEntries(Object.entries(config).map(([k, v]) => [`${CONFIG_NAMESPACE}:${k}`, JSON.stringify(v)]));
}

/** Evaluates the cluster for a raw stack config (the YAML's `gitlab-cluster:*` values, unprefixed). */
export async function evaluate(rawConfig: Readonly<Record<string, unknown>>, options: EvaluateOptions = {}): Promise<Evaluation> {
    const stack = options.stack ?? "test";
    const secretKeys = new Set(options.secretKeys ?? ["ssh", "hosts", "loadBalancer"]);
    const config = loadClusterConfig(flatConfig(rawConfig), k => secretKeys.has(k.slice(CONFIG_NAMESPACE.length + 1)));
    const passwordFor = options.passwordFor ?? ((n: string) => `mock-password-${createHash("sha256").update(n).digest("hex").slice(0, 16)}`);
    const resources: RecordedResource[] = [];
    await pulumi.runtime.setMocks({
        newResource: args => ({ id: `${args.name}-id`, state: mockOutputs(args.type, args.name, args.inputs, passwordFor) }),
        call: args => args.inputs,
    }, "gitlab-cluster", stack, false);
    // The mock monitor is the SDK's own; wrap it to see each registration as the engine would.
    const runtime = pulumi.runtime as unknown as { getMonitor(): { registerResource(req: MonitorRequest, cb: (err: unknown, res?: MonitorResponse) => void): void } };
    const monitor = runtime.getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, cb) => register(req, (err, res) => {
        if (!err && res) {
            const secretInputs: string[] = [];
            const inputs = unwrapSecrets(req.getObject()?.toJavaScript() ?? {}, "", secretInputs) as Record<string, unknown>;
            const propertyDependencies: Record<string, string[]> = {};
            req.getPropertydependenciesMap().forEach((v, k) => { propertyDependencies[k] = v.getUrnsList(); });
            resources.push({
                urn: res.getUrn(), type: req.getType(), name: req.getName(), custom: req.getCustom(),
                parent: req.getParent(), provider: req.getProvider(), dependencies: req.getDependenciesList(),
                propertyDependencies, inputs, secretInputs, additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
            });
        }
        cb(err, res);
    });
    // A registration that fails (an apply that throws) rejects a promise nobody awaits: collect
    // those, so an evaluation never passes with resources silently missing.
    const failures: unknown[] = [];
    const onRejection = (reason: unknown) => { failures.push(reason); };
    process.on("unhandledRejection", onRejection);
    const filesDir = process.env.GITLAB_CLUSTER_KEY_DIR ?? path.join(os.tmpdir(), `gitlab-cluster-keys-${process.pid}`);
    const cluster = new GitlabCluster("gitlab", { config, sshFilesDir: filesDir });
    // @internal in the SDK's typings: resolves once the registrations under way are answered.
    // A registration that waits on another's outputs (dependsOn, an apply) starts only after
    // that, so wait until the count stays the same across several timer ticks.
    const waitForRPCs = (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs;
    for (let stable = 0, last = -1, round = 0; stable < 3 && round < 1000; round++) {
        await waitForRPCs();
        await new Promise(resolve => setTimeout(resolve, 5));
        stable = resources.length === last ? stable + 1 : 0;
        last = resources.length;
    }
    // One failed value fails every resource that uses it: let that cascade finish (200 ms with
    // no new failure) before reporting the first, so none of it escapes to the caller's process.
    for (let seen = -1, round = 0; failures.length > 0 && failures.length !== seen && round < 50; round++) {
        seen = failures.length;
        await new Promise(resolve => setTimeout(resolve, 200));
    }
    process.off("unhandledRejection", onRejection);
    if (failures.length > 0) throw failures[0] instanceof Error ? failures[0] : new Error(String(failures[0]));
    const value = <T>(o: pulumi.Output<T>) => new Promise<{ value: T; secret: boolean }>((resolve, reject) => {
        const internal = o as unknown as { promise(): Promise<T>; isSecret: Promise<boolean> };
        Promise.all([internal.promise(), internal.isSecret]).then(([v, secret]) => resolve({ value: v, secret }), reject);
    });
    const byName = (name: string) => {
        const found = resources.filter(r => r.name === name).pop();
        if (!found) throw new Error(`no resource named ${name}; have: ${resources.map(r => r.name).join(", ")}`);
        return found;
    };
    const commands = new Map<string, HostCommandFacts>();
    const providerHosts = new Map<string, string>();
    for (const host of cluster.hosts.values()) {
        for (const [name, facts] of host.commands) commands.set(name, facts);
        if (host.provider === undefined) continue;
        const [urn, id] = await Promise.all([value(host.provider.urn), value(host.provider.id)]);
        providerHosts.set(`${urn.value}::${id.value}`, host.name);
    }
    return { resources, cluster, config, value, byName, facts: { commands, providerHosts } };
}
