// Promotion of settings from one stack file to the next (staging -> prod): which keys move, what
// the target's configuration becomes, and how each change reads (old -> new, or the default).
// Pure: plain values in, plain values out. The upgrade checks are in promoteUpgrade.ts, the edit
// of the target file's text in promoteFile.ts; `scripts/promote.ts` is the CLI.
import { clusterConfigSchema, CONFIG_NAMESPACE } from "../components/config";

// The settings a promotion copies (each promoted key minus its per-stack sub-keys): derived from
// the one table of config keys, CONFIG_KEY_TABLE in components/config.ts, which says why.
import { PROMOTABLE } from "../components/config";
export { PROMOTABLE };

// ---- plain values

export type Plain = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Plain {
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

/** Equal as JSON (key order counts: callers compare values read the same way). */
export function deepEqual(a: unknown, b: unknown): boolean {
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
