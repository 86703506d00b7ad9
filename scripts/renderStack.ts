// Turns an evaluation into the files the program would push, per host, for review:
//   <host>/files/<path on host>              content a command writes from stdin (gitlab.rb, nginx.conf, ...)
//   <host>/commands/<resource>.<step>.sh     every create/update/delete script
//   <host>/commands/<resource>.stdin         stdin of commands that write no file (e.g. SQL)
//   <host>/containers/<resource>.json        container settings
//   manifest.json                            all of the above with dependencies, for tools and tests
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_NAMESPACE } from "../components/config";
import type { Evaluation, RecordedResource } from "./evaluate";

export interface ManifestCommand {
    readonly resource: string;
    readonly host: string;
    readonly create?: string;
    readonly update?: string;
    readonly delete?: string;
    readonly stdin?: string;
    /** The file this command writes from stdin, if any. */
    readonly writes?: { readonly path: string; readonly mode: string };
    readonly secretStdin: boolean;
    readonly dependsOn: readonly string[];
}

export interface ManifestContainer {
    readonly resource: string;
    readonly host: string;
    readonly inputs: Readonly<Record<string, unknown>>;
    readonly dependsOn: readonly string[];
}

export interface Manifest {
    readonly hosts: Readonly<Record<string, { readonly address: string; readonly local: boolean }>>;
    readonly commands: readonly ManifestCommand[];
    readonly containers: readonly ManifestContainer[];
}

const COMMAND_TYPES = new Set(["command:remote:Command", "command:local:Command"]);

function nameOf(urn: string): string {
    return urn.split("::").pop() ?? urn;
}

/** The host a recorded resource acts on, as the program recorded it; "cluster" for what belongs to no host. */
function hostResolver(evaluation: Evaluation): (r: RecordedResource) => string {
    const { commands, providerHosts } = evaluation.facts;
    return r => commands.get(r.name)?.host ?? providerHosts.get(r.provider) ?? "cluster";
}

/**
 * A container's `image` input is its RemoteImage's image ID, which under mocks is a made-up digest
 * that does not change with the configured image. Show the configured reference instead, so a
 * version bump shows in the review tree.
 */
function withImageReference(container: RecordedResource, imageRefs: ReadonlyMap<string, string>): Readonly<Record<string, unknown>> {
    const sources = container.propertyDependencies.image ?? [];
    const reference = sources.map(urn => imageRefs.get(urn)).find(r => r !== undefined);
    return reference === undefined ? container.inputs : { ...container.inputs, image: reference };
}

export function buildManifest(evaluation: Evaluation): Manifest {
    const hostOf = hostResolver(evaluation);
    const imageRefs = new Map(evaluation.resources
        .filter(r => r.type === "docker:index/remoteImage:RemoteImage" && typeof r.inputs.name === "string")
        .map(r => [r.urn, r.inputs.name as string]));
    const commands: ManifestCommand[] = [];
    const containers: ManifestContainer[] = [];
    for (const r of evaluation.resources) {
        const dependsOn = r.dependencies.map(nameOf);
        if (COMMAND_TYPES.has(r.type)) {
            const writes = evaluation.facts.commands.get(r.name)?.writes;
            commands.push({
                resource: r.name, host: hostOf(r), create: r.inputs.create as string | undefined,
                update: r.inputs.update as string | undefined,
                delete: r.inputs.delete as string | undefined,
                stdin: r.inputs.stdin as string | undefined,
                writes: writes === undefined ? undefined : { path: writes.path, mode: writes.mode },
                secretStdin: r.secretInputs.includes("stdin"),
                dependsOn,
            });
        } else if (r.type === "docker:index/container:Container") {
            containers.push({ resource: r.name, host: hostOf(r), inputs: withImageReference(r, imageRefs), dependsOn });
        }
    }
    const hosts = Object.fromEntries(Object.values(evaluation.config.hosts).map(h => [h.name, { address: h.address, local: h.local }]));
    return { hosts, commands, containers };
}

/** Every file of the review tree, by relative path. */
export function renderTree(evaluation: Evaluation): Map<string, string> {
    const manifest = buildManifest(evaluation);
    const files = new Map<string, string>();
    for (const c of manifest.commands) {
        for (const step of ["create", "update", "delete"] as const) {
            const script = c[step];
            if (script !== undefined) files.set(`${c.host}/commands/${c.resource}.${step}.sh`, script);
        }
        if (c.stdin !== undefined) {
            files.set(c.writes ? `${c.host}/files${c.writes.path}` : `${c.host}/commands/${c.resource}.stdin`, c.stdin);
        }
    }
    for (const c of manifest.containers) {
        files.set(`${c.host}/containers/${c.resource}.json`, `${JSON.stringify(c.inputs, null, 2)}\n`);
    }
    files.set("manifest.json", `${JSON.stringify(manifest, null, 2)}\n`);
    return files;
}

export function writeTree(dir: string, files: ReadonlyMap<string, string>): void {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const [rel, content] of files) {
        const file = path.join(dir, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, content);
    }
}

export interface StackFile {
    /** Raw `gitlab-cluster:*` values, unprefixed; encrypted values replaced by labelled placeholders. */
    readonly config: Record<string, unknown>;
    /** Top-level keys that hold an encrypted value. */
    readonly secretKeys: string[];
}

/** A stand-in for an encrypted value: says what it is, and keeps the shape validation expects. */
function placeholder(keyPath: string): string {
    const label = `[secret ${keyPath}: encrypted in the stack file]`;
    return /privateKey$/.test(keyPath) ? `-----BEGIN PRIVATE KEY-----\n${label}\n-----END PRIVATE KEY-----` : label;
}

/** Reads Pulumi.<stack>.yaml without the CLI. */
export function readStackFile(file: string): StackFile {
    const doc = parseYaml(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
    const config: Record<string, unknown> = {};
    const secretKeys: string[] = [];
    const replaceSecure = (value: unknown, at: string, top: string): unknown => {
        if (Array.isArray(value)) return value.map((v, i) => replaceSecure(v, `${at}[${i}]`, top));
        if (value !== null && typeof value === "object") {
            const obj = value as Record<string, unknown>;
            if (Object.keys(obj).length === 1 && typeof obj.secure === "string") {
                if (!secretKeys.includes(top)) secretKeys.push(top);
                return placeholder(at);
            }
            return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, replaceSecure(v, `${at}.${k}`, top)]));
        }
        return value;
    };
    for (const [fullKey, value] of Object.entries(doc?.config ?? {})) {
        if (!fullKey.startsWith(`${CONFIG_NAMESPACE}:`)) continue;
        const key = fullKey.slice(CONFIG_NAMESPACE.length + 1);
        config[key] = replaceSecure(value, key, key);
    }
    return { config, secretKeys };
}
