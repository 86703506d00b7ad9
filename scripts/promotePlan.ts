// Promotion of settings from one stack file to the next (staging -> prod): which keys move,
// GitLab's upgrade path, and the edit of the target file that keeps its comments and layout.
// Pure: strings and plain values in, strings and plain values out. `scripts/promote.ts` is the CLI.
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, stringify, type Node, type Pair, type YAMLMap } from "yaml";
import { CONFIG_NAMESPACE, gitlabRelease, type GitlabRelease } from "../components/config";

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

export interface UpgradeStop {
    readonly major: number;
    readonly minor: number;
    /** Set when GitLab requires the stop only for some instances: the condition. */
    readonly onlyFor?: string;
}

/**
 * GitLab's required upgrade stops from 15.0 on: versions an instance must run (latest patch of
 * that minor, background migrations finished) before it may go further. From 17.5 the stops are
 * x.2, x.5, x.8 and x.11.
 * Sources: https://docs.gitlab.com/update/upgrade_paths/ ("Required upgrade stops") and GitLab's
 * own list, config/upgrade_path.yml in gitlab-org/gitlab. Add a major's stops when GitLab publishes them.
 */
export const GITLAB_REQUIRED_UPGRADE_STOPS: readonly UpgradeStop[] = [
    { major: 15, minor: 0 },
    { major: 15, minor: 4 },
    { major: 15, minor: 11 },
    { major: 16, minor: 0, onlyFor: "instances with lots of users or a large pipeline variables history" },
    { major: 16, minor: 1, onlyFor: "instances with NPM packages in their package registry" },
    { major: 16, minor: 2, onlyFor: "instances with a large pipeline variables history" },
    { major: 16, minor: 3 },
    { major: 16, minor: 7 },
    { major: 16, minor: 11 },
    { major: 17, minor: 1, onlyFor: "instances with a large ci_pipeline_messages table" },
    { major: 17, minor: 3 },
    { major: 17, minor: 5 },
    { major: 17, minor: 8 },
    { major: 17, minor: 11 },
    { major: 18, minor: 2 },
    { major: 18, minor: 5 },
    { major: 18, minor: 8 },
    { major: 18, minor: 11 },
];

export const UPGRADE_PATH_DOCS = "https://docs.gitlab.com/update/upgrade_paths/";

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
    const at = (v: { major: number; minor: number }) => v.major * 1000 + v.minor;
    return stops.filter(s => at(running) < at(s) && at(s) < at(next));
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
    readonly from: unknown;
    readonly to: unknown;
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
    // Last first so earlier offsets stay valid; at one offset, a replaced range before an insertion.
    const ordered = [...edits].sort((a, b) => b.start - a.start || b.end - a.end);
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
