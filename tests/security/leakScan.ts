// A reusable secret-leak scanner over an evaluation's recorded resources: given the secret
// values a stack was evaluated with, it reports every place one of them shows where it must
// not — a plain (not secret) input, a command's script, a container's command line, labels,
// env, entrypoint or healthcheck, a resource name or URN — and every command whose stdout
// carries a secret without being stored as one and kept out of the logs.
import type { RecordedResource } from "../../scripts/evaluate";
import { strings } from "../support/graph";

export interface KnownSecret {
    /** What the secret is, for the report: `ssh.privateKey`, `gitlab-redis-password`, ... */
    readonly label: string;
    /** The value the stack was evaluated with. */
    readonly value: string;
    /** Distinctive fragments that also count as the secret (e.g. a PEM key's body); default the value. */
    readonly fragments?: readonly string[];
    /** The command whose stdout yields this secret (read back from a host), if any. */
    readonly producedBy?: string;
}

export interface Leak {
    readonly resource: string;
    readonly type: string;
    /** The input path, `name`, `urn` or `stdout`. */
    readonly where: string;
    readonly secret: string;
    readonly why: string;
}

const COMMAND_TYPES = new Set(["command:remote:Command", "command:local:Command"]);
const CONTAINER_TYPE = "docker:index/container:Container";
/** Container inputs that `docker inspect`, `ps` and the engine's logs show: never a place for a secret. */
const CONTAINER_EXPOSED = ["command", "labels", "entrypoints", "healthcheck"];
const SCRIPT_INPUTS = ["create", "update", "delete"];

function needles(secret: KnownSecret): string[] {
    return [secret.value, ...(secret.fragments ?? [])].filter(n => n.length >= 8);
}

/** Whether the input at `at` (dotted path as strings() and evaluate() write it) is inside a secret input. */
export function isSecretPath(at: string, secretInputs: readonly string[]): boolean {
    return secretInputs.some(s => s === "" || at === s || at.startsWith(`${s}.`) || at.startsWith(`${s}[`));
}

function topKey(at: string): string {
    return /^[^.[]*/.exec(at)![0];
}

/** Every leak of a known secret in the recorded resources. */
export function scanForLeaks(resources: readonly RecordedResource[], secrets: readonly KnownSecret[]): Leak[] {
    const leaks: Leak[] = [];
    const found = (text: string) => secrets.filter(s => needles(s).some(n => text.includes(n)));
    for (const r of resources) {
        const leak = (where: string, secret: KnownSecret, why: string) =>
            leaks.push({ resource: r.name, type: r.type, where, secret: secret.label, why });
        const inName = found(r.name);
        for (const s of inName) leak("name", s, "a resource name is shown in every preview, log and state file");
        for (const s of found(r.urn).filter(s => !inName.includes(s))) leak("urn", s, "a URN is shown in every preview, log and state file");
        const isCommand = COMMAND_TYPES.has(r.type);
        const isContainer = r.type === CONTAINER_TYPE;
        for (const [at, text] of strings(r.inputs)) {
            const hits = found(text);
            if (hits.length === 0) continue;
            const top = topKey(at);
            const secretHere = isSecretPath(at, r.secretInputs);
            for (const s of hits) {
                if (isCommand && SCRIPT_INPUTS.includes(top)) {
                    leak(at, s, "in a command's script: it is a command line on the host (ps, audit logs) and printed by the provider");
                } else if (isContainer && CONTAINER_EXPOSED.includes(top)) {
                    leak(at, s, `in a container's ${top}: shown by docker inspect and ps`);
                } else if (isContainer && top === "envs" && !secretHere) {
                    leak(at, s, "in a container's env, not marked secret");
                } else if (!secretHere) {
                    leak(at, s, "in an input not marked secret: stored in plain text in the state and shown by preview");
                }
            }
        }
    }
    leaks.push(...scanSecretStdout(resources, secrets));
    return leaks;
}

/**
 * Commands whose stdout carries a secret: those named as a known secret's producer, and those
 * whose outputs bring a known secret into another resource's secret input. Each must store stdout as a secret and log nothing.
 */
export function scanSecretStdout(resources: readonly RecordedResource[], secrets: readonly KnownSecret[]): Leak[] {
    const commands = resources.filter(r => COMMAND_TYPES.has(r.type));
    const byUrn = new Map(commands.map(c => [c.urn, c]));
    const carriers = new Map<string, string>();
    for (const s of secrets) {
        if (s.producedBy === undefined) continue;
        const producer = commands.find(c => c.name === s.producedBy);
        if (producer) carriers.set(producer.urn, s.label);
        else throw new Error(`known secret ${s.label} names producer ${s.producedBy}, which is not a command of this stack`);
    }
    // A secret input that holds a known secret and takes values from commands but from no generated
    // password: the secret was read back from a host by one of those commands.
    const generated = new Set(resources.filter(r => r.type === "random:index/randomPassword:RandomPassword").map(r => r.urn));
    for (const r of resources) {
        for (const key of new Set(r.secretInputs.map(topKey))) {
            const deps = r.propertyDependencies[key] ?? [];
            const held = secrets.filter(s => needles(s).some(n => JSON.stringify(r.inputs[key] ?? "").includes(JSON.stringify(n).slice(1, -1))));
            if (held.length === 0 || deps.some(urn => generated.has(urn))) continue;
            for (const urn of deps) {
                if (byUrn.has(urn) && !carriers.has(urn)) carriers.set(urn, `${held[0]!.label}, read back into ${r.name}.${key}`);
            }
        }
    }
    const leaks: Leak[] = [];
    for (const [urn, label] of carriers) {
        const c = byUrn.get(urn)!;
        if (!c.additionalSecretOutputs.includes("stdout")) {
            leaks.push({ resource: c.name, type: c.type, where: "stdout", secret: label, why: "stdout carries a secret but is not in additionalSecretOutputs: stored in plain text in the state" });
        }
        if (c.inputs.logging !== "none") {
            leaks.push({ resource: c.name, type: c.type, where: "logging", secret: label, why: `stdout carries a secret but logging is ${JSON.stringify(c.inputs.logging ?? "default (stdout and stderr)")}, not "none"` });
        }
    }
    return leaks;
}

/** The generated passwords of an evaluation, as `passwordFor` gave them to the mocks. */
export function generatedPasswords(resources: readonly RecordedResource[], passwordFor: (name: string) => string): KnownSecret[] {
    return resources.filter(r => r.type === "random:index/randomPassword:RandomPassword")
        .map(r => ({ label: `${r.name} (generated)`, value: passwordFor(r.name) }));
}

export function formatLeaks(leaks: readonly Leak[]): string {
    return leaks.map(l => `${l.resource} (${l.type}) ${l.where}: ${l.secret} ${l.why}`).join("\n");
}
