// Helpers over an evaluation's recorded resources.
import assert from "node:assert/strict";
import type { Evaluation, RecordedResource } from "../../scripts/evaluate";

export const CONTAINER = "docker:index/container:Container";
export const REMOTE_COMMAND = "command:remote:Command";

export function ofType(e: Evaluation, type: string): RecordedResource[] {
    return e.resources.filter(r => r.type === type);
}

/** Whether `from` waits for `to`, directly or through its dependencies. */
export function dependsOn(e: Evaluation, from: RecordedResource, to: RecordedResource): boolean {
    const byUrn = new Map(e.resources.map(r => [r.urn, r]));
    const seen = new Set<string>();
    const stack = [...from.dependencies];
    while (stack.length > 0) {
        const urn = stack.pop()!;
        if (urn === to.urn) return true;
        if (seen.has(urn)) continue;
        seen.add(urn);
        stack.push(...(byUrn.get(urn)?.dependencies ?? []));
    }
    return false;
}

export function directlyDependsOn(from: RecordedResource, to: RecordedResource): boolean {
    return from.dependencies.includes(to.urn);
}

export function str(r: RecordedResource, input: string): string {
    const v = r.inputs[input];
    assert.equal(typeof v, "string", `${r.name}.${input} is not a string`);
    return v as string;
}

/** Every string anywhere in a value, with its dotted path. */
export function strings(value: unknown, at = ""): [string, string][] {
    if (typeof value === "string") return [[at, value]];
    if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, `${at}[${i}]`));
    if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => strings(v, at ? `${at}.${k}` : k));
    return [];
}
