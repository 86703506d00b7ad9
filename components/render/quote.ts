// Quoting for each language a rendered file is written in. Each function either returns a
// literal that the reader turns back into exactly `value`, or throws UnrepresentableValue.

export class UnrepresentableValue extends Error {
    /**
     * `path` says where inside a nested value the offending part is (`["main", "password"]`,
     * `[0]`), empty for the value itself; `why` is the reason alone, for callers that name the key.
     */
    constructor(language: string, readonly why: string, readonly path: readonly (string | number)[] = [], kind = "string") {
        super(`${path.length > 0 ? `${valuePath(path)}: ` : ""}cannot be written as a ${language} ${kind}: ${why}`);
        this.name = "UnrepresentableValue";
    }
}

/** `["main", "bind dn", 0]` -> `main["bind dn"][0]`: a place inside a value, as a config key path continues. */
export function valuePath(path: readonly (string | number)[]): string {
    return path.map((p, i) => (typeof p === "number" ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_-]*$/.test(p) ? `${i > 0 ? "." : ""}${p}` : `[${JSON.stringify(p)}]`)).join("");
}

function refuseNul(language: string, value: string): void {
    if (value.includes("\0")) throw new UnrepresentableValue(language, "it contains a NUL character");
}

/**
 * A single-quoted Ruby literal: only `\\` and `\'` are special, so `#{}` is never interpolated.
 * Ruby's lexer reads CR LF in a source file as LF, even inside a literal, so each CR is written
 * as a separate `"\r"` literal joined by Ruby's adjacent-literal concatenation: `'a' "\r" 'b'`.
 */
export function rubyString(value: string): string {
    refuseNul("Ruby", value);
    return value.split("\r").map(part => `'${part.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`).join(` "\\r" `);
}

/** What a gitlab.rb value can be: JSON's values, which is what a stack's config is made of. */
export type RubyLiteral = string | number | boolean | null | readonly RubyLiteral[] | { readonly [key: string]: RubyLiteral };

/** Nesting deeper than this is refused: no Omnibus setting nests so deep, and it bounds the recursion. */
export const RUBY_MAX_DEPTH = 16;

/**
 * A Ruby literal for a config value: strings as rubyString, finite numbers, `true`/`false`, `nil`
 * for null, arrays, and hashes with string keys (`{ 'key' => value }`: Chef's node attributes
 * keep string keys, and `=>` takes any key, where `key:` would not). Anything else (undefined, a
 * function, a Date, a cycle) throws UnrepresentableValue, whose `path` says where in the value.
 */
export function rubyValue(value: RubyLiteral): string {
    return literal(value, []);
}

function isPlainMap(value: unknown): value is Record<string, unknown> {
    if (typeof value !== "object" || value === null) return false;
    const proto: unknown = Object.getPrototypeOf(value);
    return proto === Object.prototype || proto === null;
}

function literal(value: unknown, path: (string | number)[]): string {
    const refuse = (why: string) => new UnrepresentableValue("Ruby", why, [...path], "value");
    if (typeof value === "string") {
        try {
            return rubyString(value);
        } catch (err) {
            throw err instanceof UnrepresentableValue ? new UnrepresentableValue("Ruby", err.why, [...path]) : err;
        }
    }
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "number") {
        if (!Number.isFinite(value)) throw refuse(`${value} is not a finite number`);
        return String(value); // 1e+21, -5, 0.25: each also a Ruby numeric literal
    }
    if (value === null) return "nil";
    if (path.length >= RUBY_MAX_DEPTH) throw refuse(`it nests deeper than ${RUBY_MAX_DEPTH} levels`);
    if (Array.isArray(value)) return `[${value.map((v: unknown, i) => literal(v, [...path, i])).join(", ")}]`;
    if (isPlainMap(value)) {
        const entries = Object.entries(value);
        if (entries.length === 0) return "{}";
        const key = (k: string) => {
            if (k.includes("\0")) throw refuse(`the key ${JSON.stringify(k)} contains a NUL character`);
            return rubyString(k);
        };
        return `{ ${entries.map(([k, v]) => `${key(k)} => ${literal(v, [...path, k])}`).join(", ")} }`;
    }
    throw refuse(`${value === undefined ? "undefined" : typeof value === "object" ? "an object that is not a plain map" : `a ${typeof value}`} has no Ruby literal`);
}

/** A POSIX shell word: single quotes, with each `'` written as `'\''`. */
export function shellQuote(value: string): string {
    refuseNul("shell", value);
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * An nginx config string. nginx has no escape for a newline inside a token, so values with
 * control characters are refused; inside double quotes `\\`, `"` and `$` need escaping
 * (nginx 1.x reads `\$` as a literal dollar only in some directives, so `$` is refused too).
 */
export function nginxString(value: string): string {
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
    if (/[\x00-\x1f\x7f]/.test(value)) throw new UnrepresentableValue("nginx", "it contains a control character (newline, tab, ...)");
    if (value.includes("$")) throw new UnrepresentableValue("nginx", "it contains '$', which nginx would read as a variable");
    if (value.length === 0) return `""`;
    return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** A PostgreSQL string constant (standard_conforming_strings on): `'` doubled, nothing else special. */
export function sqlString(value: string): string {
    refuseNul("SQL", value);
    return `'${value.replace(/'/g, "''")}'`;
}

/** A PostgreSQL identifier: double-quoted, `"` doubled. */
export function sqlIdentifier(value: string): string {
    refuseNul("SQL", value);
    return `"${value.replace(/"/g, '""')}"`;
}

/** A redis.conf argument: double-quoted with C-style escapes, bytes outside printable ASCII as \xHH. */
export function redisString(value: string): string {
    let out = '"';
    for (const byte of Buffer.from(value, "utf8")) {
        const ch = String.fromCharCode(byte);
        if (ch === '"' || ch === "\\") out += `\\${ch}`;
        else if (byte === 0x0a) out += "\\n";
        else if (byte === 0x0d) out += "\\r";
        else if (byte === 0x09) out += "\\t";
        else if (byte < 0x20 || byte >= 0x7f) out += `\\x${byte.toString(16).padStart(2, "0")}`;
        else out += ch;
    }
    return `${out}"`;
}
