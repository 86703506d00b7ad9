// The cluster's policies. Each check is a pure function of a resource's type and inputs that
// returns its violations (empty: compliant), so the tests run it on the resources of a real
// evaluation; the policy objects below only hand the engine's resources to the checks.
// Self-contained on purpose: the pack runs from policy/ with its own node_modules.
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";

export const CONTAINER = "docker:index/container:Container";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
export const COMMAND_TYPES: readonly string[] = ["command:remote:Command", "command:local:Command"];
const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";

type Props = Record<string, unknown>;

function strings(value: unknown): string[] {
    if (typeof value === "string") return [value];
    if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
    return [];
}

// ---- (a) pinned images

const IMAGE_REF = /^((?:[A-Za-z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@sha256:[0-9a-f]{64})?$/;

/**
 * Pinned: a digest (`name@sha256:...`, `name:tag@sha256:...`), an image ID (`sha256:...`, what a
 * Container holds once its RemoteImage is pulled), or a tag that starts with a full release
 * version: major.minor.patch for Redis, nginx and GitLab, major.minor for the rest. `latest`, no
 * tag and release lines (`redis:7`, `postgres:16`, `redis:7.2`, `16-alpine`, `bookworm`) float.
 * The same rule as the stack config's (components/config.ts imageFloats; tests/policy checks both agree).
 */
export function isPinnedImage(image: string): boolean {
    if (/^sha256:[0-9a-f]{64}$/.test(image)) return true;
    const m = IMAGE_REF.exec(image);
    if (!m) return false;
    const [, repository = "", tag, digest] = m;
    if (digest !== undefined) return true;
    if (tag === undefined || tag === "latest") return false;
    const parts = /^(redis|valkey|nginx|gitlab-ce|gitlab-ee)$/.test(repository.slice(repository.lastIndexOf("/") + 1)) ? 3 : 2;
    const version = /^v?(\d+(?:\.\d+)*)/.exec(tag)?.[1];
    return version !== undefined && version.split(".").length >= parts;
}

export function checkPinnedImage(type: string, props: Props): string[] {
    const image = type === REMOTE_IMAGE ? props.name : type === CONTAINER ? props.image : undefined;
    if (type !== REMOTE_IMAGE && type !== CONTAINER) return [];
    if (typeof image !== "string" || !isPinnedImage(image)) {
        return [`image ${JSON.stringify(image ?? null)} floats: pin a full release tag (redis:7.2.16-bookworm, postgres:16.15-bookworm) or a digest (name:tag@sha256:...), never 'latest', no tag, or a release line such as redis:7 or postgres:16`];
    }
    return [];
}

// ---- (b) restart policy and healthcheck

export function checkRestartAndHealthcheck(type: string, props: Props): string[] {
    if (type !== CONTAINER) return [];
    const problems: string[] = [];
    const restart = props.restart;
    if (typeof restart !== "string" || restart === "no" || restart === "") {
        problems.push(`restart is ${JSON.stringify(restart ?? null)}: set unless-stopped, always or on-failure so the container comes back after a crash or reboot`);
    }
    const tests = strings((props.healthcheck as Props | undefined)?.tests);
    if (tests.length === 0 || tests[0] === "NONE") {
        problems.push("no healthcheck: dependents wait for a healthy container, and Docker reports an unhealthy one");
    }
    return problems;
}

// ---- (c) database ports stay off public interfaces

export const INTERNAL_ONLY_PORTS: Readonly<Record<number, string>> = { 5432: "PostgreSQL", 6379: "Redis" };

/** Reads a property that may be unknown during a preview (the engine's proxy then throws): undefined. */
function known<T>(read: () => T): T | undefined {
    try {
        return read();
    } catch (e) {
        if ((e as Error).constructor?.name === "UnknownValueError") return undefined;
        throw e;
    }
}

/** Whether an address, as Docker takes a port's `ip`, means every interface: none, 0.0.0.0, ::, [::], ::0, 0:0:...:0. */
export function isAllInterfaces(ip: string | undefined): boolean {
    const a = (ip ?? "").trim().replace(/^\[(.*)\]$/, "$1");
    if (a === "") return true;
    if (/^0+(\.0+){3}$/.test(a)) return true;
    return a.includes(":") && !a.includes(".") && /^[0:]+$/.test(a); // every IPv6 spelling of ::
}

/** How a PostgreSQL or Redis container gives itself away, field by field. */
const SERVICES: readonly {
    readonly name: string;
    /** The image repository's last component, without tag or digest. */
    readonly image: RegExp;
    /** The container's name ends in its role (`gitlab-postgres`). */
    readonly containerName: RegExp;
    /** The program it runs: the first word of its command or entrypoint. */
    readonly program: RegExp;
    /** Environment only the server image reads. */
    readonly env?: RegExp;
    /** The healthcheck asks the server itself. */
    readonly health: RegExp;
}[] = [
    {
        name: "PostgreSQL", image: /^(postgres(ql)?|postgis|timescaledb(-ha)?|pgvector)$/, containerName: /(^|[-_])postgres(ql)?$/,
        program: /^(.*\/)?(postgres(ql)?|pg_ctl)$/, env: /^(POSTGRES_(PASSWORD|PASSWORD_FILE|HOST_AUTH_METHOD|INITDB_ARGS|INITDB_WALDIR)|PGDATA)=/, health: /\bpg_isready\b/,
    },
    {
        name: "Redis", image: /^(redis(-stack(-server)?)?|valkey|keydb)$/, containerName: /(^|[-_])(redis|valkey|keydb)$/,
        program: /^(.*\/)?(redis|valkey|keydb)-server$/, health: /\b(redis|valkey|keydb)-cli\b/,
    },
];

/**
 * What database a container is, if any, by what it is rather than its port: its image (a
 * Container holds an image ID once pulled, so also:) its name, program, environment and healthcheck.
 */
export function databaseService(props: Props): string | undefined {
    const read = (get: () => unknown) => strings(known(get));
    const image = read(() => props.image)[0] ?? "";
    const repo = image.startsWith("sha256:") ? "" : image.replace(/@.*$/, "").replace(/:[^/]*$/, "").split("/").pop() ?? "";
    const name = read(() => props.name)[0] ?? "";
    const programs = [read(() => props.command)[0], read(() => props.entrypoints)[0]].filter((p): p is string => p !== undefined);
    const envs = read(() => props.envs);
    const health = read(() => (props.healthcheck as Props | undefined)?.tests).join(" ");
    return SERVICES.find(s => s.image.test(repo) || s.containerName.test(name) || programs.some(p => s.program.test(p))
        || (s.env !== undefined && envs.some(e => s.env!.test(e))) || s.health.test(health))?.name;
}

/** PostgreSQL and Redis containers (by what they are, whatever their ports) publish on one address, never on every interface. */
export function checkDatabasePorts(type: string, props: Props): string[] {
    if (type !== CONTAINER) return [];
    const ports = known(() => props.ports);
    if (!Array.isArray(ports)) return [];
    const service = databaseService(props);
    const problems: string[] = [];
    for (const port of ports as { internal?: number; external?: number; ip?: string }[]) {
        const what = service ?? INTERNAL_ONLY_PORTS[port.internal ?? -1];
        const ip = known(() => port.ip);
        if (what !== undefined && isAllInterfaces(ip)) {
            problems.push(`${what} port ${port.internal} is published on ${ip ? ip : "every interface (no ip)"} (host port ${port.external ?? "random"}): publish it on the host's private address only`);
        }
    }
    return problems;
}

// ---- (d) NFS exports name their clients

/** The client fields of every exports(5) entry a script writes: `/path client(opts) ...`. */
export function exportsEntries(script: string): { path: string; clients: string[] }[] {
    const entries: { path: string; clients: string[] }[] = [];
    for (const raw of script.split(/\n|\\n/)) {
        const tokens = raw.replace(/['"]/g, " ").trim().split(/\s+/);
        const at = tokens.findIndex(t => t.startsWith("/"));
        const clients = at < 0 ? [] : tokens.slice(at + 1);
        // An entry has at least one `host(options)` or a bare `*` after the path.
        if (clients.length > 0 && clients.some(c => /^[^\s()]*\([^)]*\)$/.test(c) || c === "*")) {
            entries.push({ path: tokens[at]!, clients });
        }
    }
    return entries;
}

/** A client field that admits every host: `*`, a /0 range, a 0.0.0.0 netmask, or none (`/path (rw)`: exports(5) reads a bare option list as "everyone"). */
const WORLD_CLIENT = /\*|^$|^\[?[0-9a-fA-F.:]*\]?\/(0+|0\.0\.0\.0)$/;

export function checkNfsExports(type: string, props: Props): string[] {
    if (!COMMAND_TYPES.includes(type)) return [];
    const problems: string[] = [];
    for (const step of ["create", "update"] as const) {
        const script = props[step];
        if (typeof script !== "string" || !/\bexport(s|fs)\b/.test(script)) continue;
        for (const entry of exportsEntries(script)) {
            const open = entry.clients.map(c => c.replace(/\(.*$/, "")).filter(host => WORLD_CLIENT.test(host));
            if (open.length > 0) problems.push(`${step}: the NFS export of ${entry.path} names ${open.map(h => (h ? `"${h}"` : "no client before its options (\"/path (rw)\" exports to everyone)")).join(", ")}: export to the GitLab hosts' addresses only`);
        }
        if (/\bexportfs\b[^\n]*\s['"]?\*:/.test(script)) problems.push(`${step}: exportfs exports to "*": export to the GitLab hosts' addresses only`);
    }
    return problems;
}

// ---- (e) no secret in plain-text inputs

/** What a plain-text secret looks like. Values that are references (`$VAR`, `$(cat file)`) are fine. */
export const SECRET_PATTERNS: readonly { readonly what: string; readonly pattern: RegExp }[] = [
    { what: "a PEM private key", pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/ },
    { what: "a Redis requirepass", pattern: /\brequirepass\s+(?!["']?\$)\S/i },
    { what: "a GitLab secret setting", pattern: /\[\s*['"](?:db_password|redis_password|initial_root_password|smtp_password|bind_password|password|secret_key_base|db_key_base|otp_key_base|encrypted_settings_key_base|openid_connect_signing_key)['"]\s*\]\s*=\s*['"][^'"]/ },
    { what: "a password assignment", pattern: /[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*(?!["']?\$)["']?[^\s"'$]{3}/i },
    { what: "a password option", pattern: /--(?:password|passwd|token|secret)(?:=|\s+)(?!["']?\$)["']?[^\s"'$-]/i },
    { what: "a SQL PASSWORD literal", pattern: /\bPASSWORD\s+'[^']+'/i },
];

/** The plain-text inputs a secret must not be in, by field name (`envs[1]`, `create`, ...). */
export function plainTextFields(type: string, props: Props): [string, string][] {
    const fields: [string, string][] = [];
    if (type === CONTAINER) {
        strings(props.envs).forEach((v, i) => fields.push([`envs[${i}]`, v]));
        // Joined, so `--requirepass value` split over two arguments is seen as one.
        if (strings(props.command).length > 0) fields.push(["command", strings(props.command).join(" ")]);
        if (Array.isArray(props.labels)) {
            (props.labels as { label?: string; value?: string }[]).forEach((l, i) => fields.push([`labels[${i}]`, `${l.label ?? ""}=${l.value ?? ""}`]));
        }
    } else if (COMMAND_TYPES.includes(type)) {
        for (const step of ["create", "update", "delete"]) strings(props[step]).forEach(v => fields.push([step, v]));
    }
    return fields;
}

/**
 * Secrets in plain text: values that look like secrets, and any of `secretValues` (what the
 * engine holds as secret elsewhere in the stack). Messages never repeat the value.
 */
export function checkPlainTextSecrets(type: string, props: Props, secretValues: readonly string[] = []): string[] {
    const problems: string[] = [];
    const secrets = secretValues.filter(s => s.length >= 8);
    for (const [field, value] of plainTextFields(type, props)) {
        const found = SECRET_PATTERNS.find(p => p.pattern.test(value));
        if (found) problems.push(`${field} holds ${found.what} in plain text: send it as a secret (stdin, or a 0600 file)`);
        else if (secrets.some(s => value.includes(s))) problems.push(`${field} holds a value the stack keeps as a secret, in plain text: send it as a secret (stdin, or a 0600 file)`);
    }
    return problems;
}

/** Values the engine treats as secret in a stack's resources: generated passwords and SSH credentials. */
export function secretValuesOf(resources: readonly { readonly type: string; readonly props: Props }[]): string[] {
    const values: string[] = [];
    for (const r of resources) {
        // During a preview a value may not be known yet; an unknown one cannot leak.
        const known = (read: () => unknown) => {
            try { values.push(...strings(read())); } catch (e) { if ((e as Error).constructor?.name !== "UnknownValueError") throw e; }
        };
        if (r.type === RANDOM_PASSWORD) known(() => r.props.result);
        known(() => (r.props.connection as Props | undefined)?.privateKey);
        known(() => (r.props.connection as Props | undefined)?.password);
    }
    return [...new Set(values)];
}

// ---- (f) the monitoring allowlist is not the world

/** A range that admits every address: `*`, any /0, or the unspecified address. */
export function isWorldRange(range: string): boolean {
    const r = range.trim();
    if (r === "*") return true;
    const [addr = "", bits, ...rest] = r.split("/");
    if (rest.length > 0) return false;
    if (bits !== undefined && /^0+$/.test(bits)) return true;
    return bits === undefined && isAllInterfaces(addr);
}

const CLOSING: Readonly<Record<string, string>> = { "[": "]", "(": ")", "{": "}", "<": ">" };

/** One Ruby operand at the start of `text`: a quoted string, an array (nested, across lines) or a %w[]/%W()/%i{} literal. */
function rubyOperand(text: string): { strings: string[]; rest: string } | undefined {
    const t = text.replace(/^\s+/, "");
    const percent = /^%[wWiI]([^A-Za-z0-9\s])/.exec(t);
    if (percent) {
        const close = CLOSING[percent[1]!] ?? percent[1]!;
        const end = t.indexOf(close, percent[0].length);
        const body = t.slice(percent[0].length, end < 0 ? undefined : end);
        return { strings: body.split(/\s+/).filter(Boolean), rest: end < 0 ? "" : t.slice(end + 1) };
    }
    const quoted = /^'((?:[^'\\]|\\.)*)'|^"((?:[^"\\]|\\.)*)"/.exec(t);
    if (quoted) return { strings: [quoted[1] ?? quoted[2] ?? ""], rest: t.slice(quoted[0].length) };
    if (t.startsWith("[")) {
        const strings: string[] = [];
        let rest = t.slice(1);
        for (;;) {
            rest = rest.replace(/^[\s,]+/, "");
            if (rest === "" || rest.startsWith("]")) return { strings, rest: rest.slice(1) };
            const inner = rubyOperand(rest);
            if (!inner) {
                // Not a literal (a variable, a call): skip to the next element.
                const next = rest.search(/[,\]]/);
                if (next < 0) return { strings, rest: "" };
                rest = rest.slice(next);
                continue;
            }
            strings.push(...inner.strings);
            rest = inner.rest;
        }
    }
    return undefined;
}

/** The strings of a Ruby expression of literals joined by `+`, `,` or `<<` (`[...] + %w[...]`, `push(a, b)`, `<< a << b`). */
function rubyStrings(text: string): string[] {
    const strings: string[] = [];
    let rest = text;
    for (let operand = rubyOperand(rest); operand; operand = rubyOperand(rest)) {
        strings.push(...operand.strings);
        const joined = /^[ \t]*(\+|,|<<)\s*/.exec(operand.rest);
        if (!joined) break;
        rest = operand.rest.slice(joined[0].length);
    }
    return strings;
}

/** Every value given to gitlab_rails['monitoring_whitelist'] in a gitlab.rb: `=` (array, %w[] literal), `+=`, `<<`, `push`, `concat`. */
export function monitoringAllowlistEntries(rb: string): string[] {
    const entries: string[] = [];
    const target = /gitlab_rails\[\s*['"]monitoring_(?:whitelist|allowlist)['"]\s*\]\s*(?:\+?=|<<|\.(?:push|concat|unshift|append|prepend)\s*\(?)\s*/g;
    for (const m of rb.matchAll(target)) entries.push(...rubyStrings(rb.slice(m.index + m[0].length)));
    return entries;
}

export function checkMonitoringAllowlist(type: string, props: Props): string[] {
    if (!COMMAND_TYPES.includes(type)) return [];
    const problems: string[] = [];
    for (const field of ["stdin", "create", "update"]) {
        for (const text of strings(props[field])) {
            const open = monitoringAllowlistEntries(text).map(r => r.trim()).filter(isWorldRange);
            if (open.length > 0) problems.push(`${field}: gitlab_rails['monitoring_whitelist'] allows ${[...new Set(open)].join(", ")}: list the balancer's and localhost's ranges only`);
        }
    }
    return problems;
}

// ---- the policies

const resourcePolicy = (name: string, description: string, check: (type: string, props: Props) => string[]): ResourceValidationPolicy => ({
    name, description, enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => { for (const problem of check(args.type, args.props)) reportViolation(problem); },
});

const noEngineSecretsInPlainText: StackValidationPolicy = {
    name: "no-stack-secret-in-plain-text",
    description: "No generated password or SSH credential of the stack appears in a container's envs/command/labels or a command's scripts.",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const secrets = secretValuesOf(args.resources);
        for (const r of args.resources as PolicyResource[]) {
            try {
                for (const problem of checkPlainTextSecrets(r.type, r.props, secrets).filter(p => p.includes("keeps as a secret"))) reportViolation(problem, r.urn);
            } catch (e) {
                if ((e as Error).constructor?.name !== "UnknownValueError") throw e; // not known in this preview: checked on the next
            }
        }
    },
};

export const policies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
    resourcePolicy("no-floating-image-tag", "Images (docker.RemoteImage, docker.Container) are pinned to a release tag or digest, never 'latest' or untagged.", checkPinnedImage),
    resourcePolicy("container-restart-and-healthcheck", "Every docker.Container has a restart policy other than 'no' and a healthcheck.", checkRestartAndHealthcheck),
    resourcePolicy("no-public-database-port", "No PostgreSQL or Redis container (known by its image, name, command, environment or healthcheck) publishes any port on 0.0.0.0, :: or without an address.", checkDatabasePorts),
    resourcePolicy("nfs-export-names-clients", "The NFS export never names '*' (or 0.0.0.0/0): only the GitLab hosts.", checkNfsExports),
    resourcePolicy("no-plain-text-secret", "No private key, password or secret setting in container envs/command/labels or command create/update/delete.", (type, props) => checkPlainTextSecrets(type, props)),
    noEngineSecretsInPlainText,
    resourcePolicy("monitoring-allowlist-not-open", "gitlab_rails['monitoring_whitelist'] in gitlab.rb never contains 0.0.0.0/0.", checkMonitoringAllowlist),
];
