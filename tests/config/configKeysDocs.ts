// The text README.md and Pulumi.yaml must hold for the config keys, rendered from the one table
// (CONFIG_KEY_TABLE in components/config.ts), and the schema's key paths read by introspection.
// Used by tests/config/configKeys.test.ts (README) and tests/stacks/projectFile.test.ts (Pulumi.yaml).
import { z } from "zod";
import { CONFIG_KEY_TABLE, CONFIG_KEYS, CONFIG_NAMESPACE, clusterConfigSchema, type ConfigKey, type ConfigKeyPromotion } from "../../components/config";

/** The key a map of hosts (or any map whose values are objects) is documented under: `hosts.<name>.address`. */
export const MAP_KEY_PLACEHOLDER = "<name>";

/** The schema under its defaults, optionals and transforms. */
function unwrap(schema: z.ZodType): z.ZodType {
    for (let s = schema; ;) {
        if (s instanceof z.ZodOptional || s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
        else if (s instanceof z.ZodPipe) s = s.in as z.ZodType;
        else return s;
    }
}

/** A map whose values are objects (`hosts`): its entries are documented as `<name>`. Other maps (`gitlab.rails`, `gitlab.omnibus`) are one setting. */
function mapOfObjects(s: z.ZodType): z.ZodType | undefined {
    return s instanceof z.ZodRecord && unwrap(s.valueType as z.ZodType) instanceof z.ZodObject ? (s.valueType as z.ZodType) : undefined;
}

export interface SchemaPaths {
    /** Every key path the schema has, objects included (`loadBalancer.tls`), `<name>` for a host's entry. */
    readonly nodes: ReadonlySet<string>;
    /** The settings: key paths that hold a value, not an object of further keys. */
    readonly leaves: readonly string[];
}

/** The schema's key paths below the top-level keys. A removed key (z.never: `gitlab.gitUid`) is not one. */
export function schemaPaths(): SchemaPaths {
    const nodes = new Set<string>();
    const leaves: string[] = [];
    const walk = (schema: z.ZodType, at: string): void => {
        const s = unwrap(schema);
        if (s instanceof z.ZodNever) return;
        nodes.add(at);
        const entries = mapOfObjects(s);
        if (s instanceof z.ZodObject) for (const [k, v] of Object.entries(s.shape)) walk(v as z.ZodType, `${at}.${k}`);
        else if (entries !== undefined) walk(entries, `${at}.${MAP_KEY_PLACEHOLDER}`);
        else leaves.push(at);
    };
    for (const key of CONFIG_KEYS) walk(clusterConfigSchema.shape[key], key);
    return { nodes, leaves };
}

/** Whether a dotted key path can be set: each part a key of its object, any key of a map (`gitlab.omnibus.puma`). */
export function schemaHasPath(path: string): boolean {
    const [top, ...rest] = path.split(".");
    let s: z.ZodType | undefined = (clusterConfigSchema.shape as Record<string, z.ZodType>)[top ?? ""];
    for (const part of rest) {
        if (s === undefined) return false;
        const u = unwrap(s);
        if (u instanceof z.ZodRecord) {
            if (mapOfObjects(u) === undefined) return true; // a map of settings: any key below it
            s = u.valueType as z.ZodType;
        } else {
            s = u instanceof z.ZodObject ? (u.shape as Record<string, z.ZodType>)[part] : undefined;
        }
    }
    return s !== undefined && !(unwrap(s) instanceof z.ZodNever);
}

/** A stack must set the key: the schema has no default for it and it is not optional. */
export function isRequired(key: ConfigKey): boolean {
    return !clusterConfigSchema.shape[key].safeParse(undefined).success;
}

function promotionText(p: ConfigKeyPromotion): string {
    return p === "per-stack" ? "no: each stack keeps its own" : `yes, except ${p.except.map(e => `\`${e}\``).join(", ")}`;
}

/** The top-level key table of README.md's configuration reference, line by line. */
export function readmeKeyTable(): string[] {
    return [
        "| key | | holds | promoted (`npm run promote`) |",
        "|---|---|---|---|",
        ...CONFIG_KEYS.map(key => {
            const spec = CONFIG_KEY_TABLE[key];
            return `| \`${key}\` | ${isRequired(key) ? "required" : "optional"} | ${spec.description} | ${promotionText(spec.promotion)} |`;
        }),
    ];
}

/** Pulumi.yaml's comment lines that list the keys. */
export function pulumiYamlKeyLines(): string[] {
    const width = Math.max(...CONFIG_KEYS.map(k => `${CONFIG_NAMESPACE}:${k}`.length));
    return CONFIG_KEYS.map(key => `#   ${`${CONFIG_NAMESPACE}:${key}`.padEnd(width)}  ${(isRequired(key) ? "required" : "optional")}  ${CONFIG_KEY_TABLE[key].description}`);
}

/**
 * What a `config:` block in Pulumi.yaml gets wrong about the program's keys. Pulumi (v3.274.1,
 * pkg/workspace/config.go mergeConfig) demands of every stack a declared key of the project's
 * namespace that has no `default` or `value`, and merges a declared default into every stack that
 * does not set the key; a typed key's value must be of its type.
 */
export function projectConfigDeclarationProblems(projectName: string, config: Readonly<Record<string, unknown>> | undefined): string[] {
    const problems: string[] = [];
    for (const [fullKey, decl] of Object.entries(config ?? {})) {
        const colon = fullKey.indexOf(":");
        if (colon >= 0 && fullKey.slice(0, colon) !== projectName) continue; // another namespace: not the program's
        const key = fullKey.slice(colon + 1);
        if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
            problems.push(`${fullKey}: is not a key the program reads (${CONFIG_KEYS.join(", ")})`);
            continue;
        }
        const d = (decl !== null && typeof decl === "object" && !Array.isArray(decl) ? decl : { value: decl }) as { type?: unknown; default?: unknown; value?: unknown };
        const given = d.default ?? d.value;
        if (d.type !== undefined && d.type !== "object") problems.push(`${fullKey}: type "${String(d.type)}", but the program reads a map (object)`);
        if (given === undefined && !isRequired(key as ConfigKey)) problems.push(`${fullKey}: has no default, so Pulumi would demand it of every stack, but the program does not require it`);
        if (given !== undefined && isRequired(key as ConfigKey)) problems.push(`${fullKey}: has a default, but every stack must set it (the schema has no default)`);
        if (given !== undefined && !CONFIG_KEY_TABLE[key as ConfigKey].schema.safeParse(given).success) problems.push(`${fullKey}: its default is not a valid value of the key`);
    }
    return problems;
}
