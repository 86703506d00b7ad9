// Quoting for each language a rendered file is written in. Each function either returns a
// literal that the reader turns back into exactly `value`, or throws UnrepresentableValue.

export class UnrepresentableValue extends Error {
    constructor(language: string, why: string) {
        super(`cannot be written as a ${language} string: ${why}`);
        this.name = "UnrepresentableValue";
    }
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

/** A Ruby literal for a scalar config value. */
export function rubyValue(value: string | number | boolean | readonly string[]): string {
    if (typeof value === "string") return rubyString(value);
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "number") {
        if (!Number.isFinite(value)) throw new UnrepresentableValue("Ruby", `${value} is not a finite number`);
        return String(value);
    }
    return `[${value.map(rubyString).join(", ")}]`;
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
