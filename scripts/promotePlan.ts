// Promotion of settings from one stack file to the next (staging -> prod): which keys move,
// GitLab's upgrade path, and the edit of the target file that keeps its comments and layout.
// Pure: strings and plain values in, strings and plain values out. `scripts/promote.ts` is the CLI.
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, stringify, type Node, type Pair, type YAMLMap } from "yaml";
import { clusterConfigSchema, CONFIG_NAMESPACE, DEFAULT_IMAGES, gitlabRelease, postgresMajor, type GitlabRelease } from "../components/config";
import { POSTGRES_UPGRADE_RUNBOOK } from "../components/render/postgres";

/**
 * The settings a promotion copies: each `gitlab-cluster:<key>` namespace, minus the sub-keys that
 * belong to one stack (a dotted path reaches further in: `omnibus.puma`). Every other key
 * (`hosts`, `roles`, `ssh`, other namespaces) and every `secure:` value is left alone.
 */
export const PROMOTABLE: Readonly<Record<string, readonly string[]>> = {
    // Per-stack (never promoted): where the environment is reached and where it keeps its data.
    // Dev runs on one laptop with other paths and ports; those must not travel to staging or prod.
    // gitlab.omnibus promotes like gitlab.rails (SMTP, LDAP, OmniAuth, registry, monitoring are
    // proven in staging first), except Puma's and Sidekiq's sizing, which fits each stack's own hosts.
    gitlab: ["externalUrl", "dataRoot", "nodeSshPort", "omnibus.puma", "omnibus.sidekiq"],
    postgres: ["dataRoot", "port"],
    redis: ["dataRoot", "port"],
    nfs: ["path"],
    loadBalancer: ["tls", "listenAddress", "httpPort", "httpsPort", "sshPort", "configRoot"],
    backup: ["node", "target", "secretsTarget"],
};

// GitLab's required upgrade stops: one list, in components/ (the program's upgrade preflight reads it too).
import { GITLAB_REQUIRED_UPGRADE_STOPS, minorOrder, UPGRADE_PATH_DOCS, type UpgradeStop } from "../components/upgradePath";
export { GITLAB_REQUIRED_UPGRADE_STOPS, UPGRADE_PATH_DOCS, type UpgradeStop };

export type GitlabVersion = GitlabRelease;

/**
 * The GitLab release in an Omnibus image reference (`gitlab/gitlab-ce:18.4.1-ce.0`, also with
 * `@sha256:...`), or undefined (a digest alone, another tag). The stack config's own parser.
 */
export function gitlabVersion(image: string): GitlabVersion | undefined {
    return gitlabRelease(image);
}

/** Negative, zero or positive as a is older than, the same as, or newer than b. */
export function compareVersions(a: GitlabVersion, b: GitlabVersion): number {
    return a.major - b.major || a.minor - b.minor || a.patch - b.patch || a.build - b.build;
}

/** The required stops strictly between the running release and the next one. */
export function skippedUpgradeStops(running: GitlabVersion, next: GitlabVersion, stops: readonly UpgradeStop[] = GITLAB_REQUIRED_UPGRADE_STOPS): UpgradeStop[] {
    return stops.filter(s => minorOrder(running) < minorOrder(s) && minorOrder(s) < minorOrder(next));
}

export interface UpgradeCheck {
    /** Set when the promotion must not happen. */
    readonly refusal?: string;
    readonly warnings: readonly string[];
}

/** Checks moving `to` (the target stack) from its GitLab image to the source stack's image. */
export function checkGitlabUpgrade(targetImage: string | undefined, sourceImage: string | undefined, to = "the target stack"): UpgradeCheck {
    if (targetImage === undefined || sourceImage === undefined || targetImage === sourceImage) return { warnings: [] };
    const running = gitlabVersion(targetImage), next = gitlabVersion(sourceImage);
    if (!running || !next) {
        // Without both versions a downgrade cannot be told from an upgrade: refuse, as the stack config does.
        const unreadable = [!running ? `"${targetImage}" (${to})` : undefined, !next ? `"${sourceImage}" (the source)` : undefined].filter(Boolean).join(" and ");
        return {
            refusal: `gitlab.image: cannot read a GitLab release from ${unreadable}, so a downgrade cannot be ruled out: ` +
                "give gitlab.image with its release tag, with or without a digest (gitlab/gitlab-ce:18.4.1-ce.0 or gitlab/gitlab-ce:18.4.1-ce.0@sha256:<64 hex>)",
            warnings: [],
        };
    }
    if (compareVersions(next, running) < 0) {
        return {
            refusal: `gitlab.image: refusing to downgrade ${to} from GitLab ${running.text} to ${next.text}: ` +
                "GitLab does not support downgrades (the database has already migrated); restore a backup of the older release instead",
            warnings: [],
        };
    }
    const skipped = skippedUpgradeStops(running, next);
    if (skipped.length === 0) return { warnings: [] };
    const list = skipped.map(s => `${s.major}.${s.minor}${s.onlyFor ? ` (for ${s.onlyFor})` : ""}`).join(", ");
    return {
        warnings: [`gitlab.image: upgrading ${to} from GitLab ${running.text} to ${next.text} skips required upgrade stop${skipped.length > 1 ? "s" : ""} ${list}: ` +
            `upgrade to the latest patch of each stop first and let its background migrations finish (${UPGRADE_PATH_DOCS})`],
    };
}

/**
 * Why moving `to` from one PostgreSQL image to another must not happen by promotion: a new major
 * cannot start on the existing data directory (the data host's check would refuse it at deploy).
 */
export function checkPostgresMajor(targetImage: string, sourceImage: string, to = "the target stack"): string | undefined {
    const running = postgresMajor(targetImage), next = postgresMajor(sourceImage);
    if (running === undefined || next === undefined || running === next) return undefined;
    return `postgres.image: refusing to move ${to} from PostgreSQL ${running} (${targetImage}) to ${next} (${sourceImage}): ` +
        `a PostgreSQL ${next} server cannot start on data written by ${running}; upgrade ${to}'s data first (${POSTGRES_UPGRADE_RUNBOOK}), then promote`;
}

// ---- plain values

type Plain = Record<string, unknown>;

function isPlainObject(v: unknown): v is Plain {
    return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A Pulumi encrypted value: `{ secure: <ciphertext> }`. */
export function isSecureValue(v: unknown): boolean {
    return isPlainObject(v) && Object.keys(v).length === 1 && typeof v.secure === "string";
}

function containsSecure(v: unknown): boolean {
    if (isSecureValue(v)) return true;
    if (Array.isArray(v)) return v.some(containsSecure);
    return isPlainObject(v) && Object.values(v).some(containsSecure);
}

function deepEqual(a: unknown, b: unknown): boolean {
    return JSON.stringify(a) === JSON.stringify(b);
}

export interface Change {
    /** `gitlab.image`, `gitlab.rails.time_zone`, ... */
    readonly path: string;
    /** The target's value before (undefined: not set). */
    readonly from: unknown;
    /** The target's value after (undefined: removed, so the default applies). */
    readonly to: unknown;
}

/** What a setting that no stack file sets is: the program's default, or nothing (GitLab's own default). */
export interface EffectiveValue {
    readonly value: unknown;
    /** Set when the stack file does not set the value: where the value comes from. */
    readonly source?: "default" | "unset";
}

interface SchemaLike { readonly shape?: Readonly<Record<string, SchemaLike>>; readonly def?: { readonly innerType?: SchemaLike; readonly in?: SchemaLike }; safeParse?(v: unknown): { success: boolean; data?: unknown } }

function objectShape(schema: SchemaLike | undefined): Readonly<Record<string, SchemaLike>> | undefined {
    for (let s = schema, i = 0; s !== undefined && i < 10; i++) {
        if (s.shape !== undefined) return s.shape;
        s = s.def?.innerType ?? s.def?.in;
    }
    return undefined;
}

/**
 * The value a key path (`gitlab.readinessTimeoutSeconds`) takes when a stack file does not set it:
 * the schema's default, or unset (no default: Omnibus's own applies).
 */
export function defaultValue(keyPath: string): EffectiveValue {
    let schema: SchemaLike | undefined = clusterConfigSchema as unknown as SchemaLike;
    for (const part of keyPath.split(".")) schema = objectShape(schema)?.[part];
    const parsed = schema?.safeParse?.(undefined);
    return parsed?.success && parsed.data !== undefined ? { value: parsed.data, source: "default" } : { value: undefined, source: "unset" };
}

/** `1800`, `"UTC"`, or for an unset value what applies instead. */
export function describeValue(value: unknown, keyPath: string): string {
    if (value !== undefined) return JSON.stringify(value);
    const d = defaultValue(keyPath);
    return d.source === "default" ? `${JSON.stringify(d.value)} (the default)` : "unset (GitLab's or the image's own default)";
}

/** One line per change: `gitlab.image: "a" → "b"`, and for a removal what the value becomes. */
export function describeChange(change: Change, from: string): string {
    const fallback = defaultValue(change.path);
    const sameToday = change.to === undefined && fallback.source === "default" && deepEqual(fallback.value, change.from);
    const note = change.to === undefined
        ? ` [reset: only the target sets it, ${from} does not${sameToday ? "; the same value today, but no longer pinned: it follows the program's default from now on" : ""}]`
        : change.from === undefined ? " [the target did not set it]" : "";
    return `${change.path}: ${describeValue(change.from, change.path)} → ${describeValue(change.to, change.path)}${note}`;
}

/** The changes that remove a setting the target has and the source does not: they reset it to its default. */
export function resets(changes: readonly Change[]): Change[] {
    return changes.filter(c => c.to === undefined && c.from !== undefined);
}

export interface PromotionPlan {
    readonly changes: readonly Change[];
    /** Promotable keys left alone because one side holds an encrypted value. */
    readonly skippedSecure: readonly string[];
    /** The target's `config:` map after the promotion. */
    readonly config: Plain;
}

/** What promoting `source`'s settings does to `target` (both a stack file's `config:` map). */
export function planPromotion(source: Plain, target: Plain): PromotionPlan {
    const changes: Change[] = [];
    const skippedSecure: string[] = [];
    const merge = (t: unknown, s: unknown, except: readonly string[], at: string): unknown => {
        const out: Plain = isPlainObject(t) ? { ...t } : {};
        const src = isPlainObject(s) ? s : {};
        for (const key of new Set([...Object.keys(out), ...Object.keys(src)])) {
            if (except.includes(key)) continue;
            const path = `${at}.${key}`, tv = out[key], sv = src[key];
            if (deepEqual(tv, sv)) continue;
            const inside = except.filter(e => e.startsWith(`${key}.`)).map(e => e.slice(key.length + 1));
            const mergeable = (v: unknown) => v === undefined || (isPlainObject(v) && !isSecureValue(v));
            if (inside.length > 0 && mergeable(tv) && mergeable(sv)) {
                // A per-stack key lies inside: merge around it, even where one side has nothing.
                const merged = merge(tv, sv, inside, path) as Plain;
                if (Object.keys(merged).length === 0) delete out[key];
                else out[key] = merged;
            } else if (isPlainObject(tv) && isPlainObject(sv) && Object.keys(sv).length > 0 && !isSecureValue(tv) && !isSecureValue(sv)) {
                out[key] = merge(tv, sv, [], path);
            } else if (containsSecure(tv) || containsSecure(sv)) {
                skippedSecure.push(path);
            } else {
                changes.push({ path, from: tv, to: sv });
                if (sv === undefined) delete out[key];
                else out[key] = sv;
            }
        }
        return out;
    };
    const config: Plain = { ...target };
    for (const [ns, except] of Object.entries(PROMOTABLE)) {
        const key = `${CONFIG_NAMESPACE}:${ns}`;
        if (source[key] === undefined && target[key] === undefined) continue;
        const merged = merge(target[key], source[key], except, ns) as Plain;
        if (Object.keys(merged).length === 0) delete config[key];
        else config[key] = merged;
    }
    return { changes, skippedSecure, config };
}

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
