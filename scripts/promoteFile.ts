// The promotion of one stack file's text into another's: refuse what the upgrade checks refuse,
// plan the settings (promotePlan.ts), and edit the target's text so that it keeps every comment
// and every byte outside the lines of the promoted values. Pure: strings in, strings out.
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, stringify, type Node, type Pair, type YAMLMap } from "yaml";
import { CONFIG_NAMESPACE, DEFAULT_IMAGES } from "../components/config";
import { deepEqual, isPlainObject, planPromotion, type Change, type Plain } from "./promotePlan";
import { checkGitlabUpgrade, checkPostgresMajor } from "./promoteUpgrade";

// ---- the edit of the target file's text

interface Edit { readonly start: number; readonly end: number; readonly text: string }

const RENDER = { lineWidth: 0, flowCollectionPadding: true } as const;

function lineStart(text: string, pos: number): number {
    return text.lastIndexOf("\n", pos - 1) + 1;
}

function lineEnd(text: string, pos: number): number {
    const nl = text.indexOf("\n", pos);
    return nl < 0 ? text.length : nl + 1;
}

function nodeEnd(pair: Pair): number {
    const key = pair.key as Node;
    return (pair.value as Node | null)?.range?.[2] ?? key.range![2];
}

function keyOf(pair: Pair): string {
    return String(isScalar(pair.key) ? pair.key.value : pair.key);
}

function isFlow(node: unknown): boolean {
    return (isMap(node) || isSeq(node)) && node.flow === true;
}

/** `key: value` as block YAML, each line indented; collections in flow style when `flow`. */
function renderPair(key: string, value: unknown, indent: string, flow: boolean, step: number): string {
    const doc = new Document({ [key]: value });
    const node = (doc.contents as YAMLMap).items[0]?.value;
    if (flow && (isMap(node) || isSeq(node))) node.flow = true;
    return doc.toString({ ...RENDER, indent: step }).split("\n").map(l => (l === "" ? l : indent + l)).join("\n");
}

function renderScalar(original: Scalar, value: unknown): string | undefined {
    if (typeof value === "string" && original.type === Scalar.QUOTE_DOUBLE) return JSON.stringify(value);
    if (typeof value === "string" && original.type === Scalar.QUOTE_SINGLE && !value.includes("\n")) return `'${value.replace(/'/g, "''")}'`;
    if (value === undefined || (value !== null && typeof value === "object")) return undefined;
    const text = stringify(value, RENDER).trimEnd();
    return text.includes("\n") ? undefined : text;
}

/** The edits that make the map `map` (in `text`) hold `planned`, touching only the lines that differ. */
function syncMap(text: string, map: YAMLMap, planned: Plain, edits: Edit[], step: number): void {
    const current = map.toJSON() as Plain;
    if (deepEqual(current, planned)) return;
    if (map.flow) {
        const doc = new Document(planned);
        (doc.contents as YAMLMap).flow = true;
        edits.push({ start: map.range![0], end: map.range![1], text: doc.toString(RENDER).trimEnd() });
        return;
    }
    const first = map.items[0]?.key as Node | undefined;
    const indent = first?.range ? " ".repeat(first.range[0] - lineStart(text, first.range[0])) : "";
    const additions: string[] = [];
    for (const key of new Set([...Object.keys(current), ...Object.keys(planned)])) {
        const pair = map.items.find(p => keyOf(p) === key);
        const next = planned[key];
        if (deepEqual(current[key], next)) continue;
        if (!pair) {
            additions.push(renderPair(key, next, indent, false, step));
            continue;
        }
        const whole = { start: lineStart(text, (pair.key as Node).range![0]), end: lineEnd(text, nodeEnd(pair) - 1) };
        const value = pair.value as Node | null;
        const scalarText = isScalar(value) && value.range ? renderScalar(value, next) : undefined;
        if (next === undefined) {
            edits.push({ ...whole, text: "" });
        } else if (isMap(value) && isPlainObject(next) && Object.keys(next).length > 0) {
            syncMap(text, value, next, edits, step);
        } else if (scalarText !== undefined && isScalar(value)) {
            edits.push({ start: value.range![0], end: value.range![1], text: scalarText });
        } else {
            edits.push({ ...whole, text: renderPair(key, next, indent, isFlow(value), step) });
        }
    }
    if (additions.length > 0) {
        const last = map.items[map.items.length - 1]!;
        const at = lineEnd(text, nodeEnd(last) - 1);
        const sep = at === text.length && !text.endsWith("\n") ? "\n" : "";
        edits.push({ start: at, end: at, text: sep + additions.join("") });
    }
}

function applyEdits(text: string, edits: readonly Edit[]): string {
    // Last first so earlier offsets stay valid; at one offset, a replaced range before an insertion,
    // and insertions in reverse order of recording: a nested map records its additions before the
    // map around it, and both land at the same offset when the nested map ends the outer one; the
    // nested map's lines must come first, or they end up under the outer map's new last key.
    const ordered = edits.map((e, i) => ({ e, i })).sort((a, b) => b.e.start - a.e.start || b.e.end - a.e.end || b.i - a.i).map(x => x.e);
    let out = text;
    for (const e of ordered) out = out.slice(0, e.start) + e.text + out.slice(e.end);
    return out;
}

export class PromotionRefused extends Error {
    constructor(message: string) {
        super(message);
        this.name = "PromotionRefused";
    }
}

export interface Promotion {
    /** The target file's new text (equal to the old one when nothing changes). */
    readonly text: string;
    readonly changes: readonly Change[];
    readonly skippedSecure: readonly string[];
    readonly warnings: readonly string[];
}

function configMap(doc: Document.Parsed, file: string): YAMLMap | undefined {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    if (!isMap(doc.contents)) throw new Error(`${file}: not a Pulumi stack file (no top-level map)`);
    const config = doc.contents.get("config", true);
    if (config === undefined || (isScalar(config) && config.value === null)) return undefined;
    if (!isMap(config)) throw new Error(`${file}: 'config' is not a map`);
    return config;
}

/**
 * Promotes the settings of the stack file `sourceText` into the stack file `targetText`: the new
 * target text keeps every comment and every byte outside the lines of the promoted values.
 * Throws PromotionRefused for a GitLab downgrade.
 */
export function promoteStackFile(sourceText: string, targetText: string, names: { from: string; to: string } = { from: "source", to: "target" }): Promotion {
    const sourceDoc = parseDocument(sourceText), targetDoc = parseDocument(targetText);
    const sourceConfig = (configMap(sourceDoc, names.from)?.toJSON() ?? {}) as Plain;
    const targetMap = configMap(targetDoc, names.to);
    const targetConfig = (targetMap?.toJSON() ?? {}) as Plain;
    const gitlabKey = `${CONFIG_NAMESPACE}:gitlab`;
    const imageOf = (c: Plain) => {
        const image = isPlainObject(c[gitlabKey]) ? (c[gitlabKey] as Plain).image : undefined;
        return typeof image === "string" ? image : undefined;
    };
    const upgrade = checkGitlabUpgrade(imageOf(targetConfig), imageOf(sourceConfig), names.to);
    if (upgrade.refusal) throw new PromotionRefused(upgrade.refusal);
    const postgresImageOf = (c: Plain) => {
        const image = isPlainObject(c[`${CONFIG_NAMESPACE}:postgres`]) ? (c[`${CONFIG_NAMESPACE}:postgres`] as Plain).image : undefined;
        return typeof image === "string" ? image : DEFAULT_IMAGES.postgres;
    };
    const majorChange = checkPostgresMajor(postgresImageOf(targetConfig), postgresImageOf(sourceConfig), names.to);
    if (majorChange !== undefined) throw new PromotionRefused(majorChange);

    const plan = planPromotion(sourceConfig, targetConfig);
    if (plan.changes.length === 0) return { text: targetText, changes: [], skippedSecure: plan.skippedSecure, warnings: upgrade.warnings };
    if (!targetMap) throw new Error(`${names.to}: has no 'config:' map to promote into`);

    const edits: Edit[] = [];
    // New nested keys use the file's own indentation step: the column of the first key under `config:`.
    const firstKey = targetMap.items[0]?.key as Node | undefined;
    const step = firstKey?.range ? Math.max(1, firstKey.range[0] - lineStart(targetText, firstKey.range[0])) : 2;
    syncMap(targetText, targetMap, plan.config, edits, step);
    const text = applyEdits(targetText, edits);

    // The text edit must say exactly what the plan says: anything else is a bug, not a promotion.
    const check = parseDocument(text);
    const result = (configMap(check, names.to)?.toJSON() ?? {}) as Plain;
    if (!deepEqual(sortKeys(result), sortKeys(plan.config))) {
        throw new Error(`internal error: editing ${names.to} did not produce the planned configuration; nothing was written`);
    }
    return { text, changes: plan.changes, skippedSecure: plan.skippedSecure, warnings: upgrade.warnings };
}

function sortKeys(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (isPlainObject(v)) return Object.fromEntries(Object.keys(v).sort().map(k => [k, sortKeys(v[k])]));
    return v;
}
