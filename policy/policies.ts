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

/** A release tag (not `latest`, with a digit) or a digest; the same rule as the stack config's images. */
export function isPinnedImage(image: string): boolean {
    if (/^sha256:[0-9a-f]{64}$/.test(image)) return true; // an image ID: as fixed as a digest
    if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
    const tagAt = image.indexOf(":", image.lastIndexOf("/") + 1);
    if (tagAt < 0) return false;
    const tag = image.slice(tagAt + 1);
    return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag) && tag !== "latest" && /\d/.test(tag);
}

export function checkPinnedImage(type: string, props: Props): string[] {
    const image = type === REMOTE_IMAGE ? props.name : type === CONTAINER ? props.image : undefined;
    if (type !== REMOTE_IMAGE && type !== CONTAINER) return [];
    if (typeof image !== "string" || !isPinnedImage(image)) {
        return [`image ${JSON.stringify(image ?? null)} floats: pin a release tag (name:1.2.3) or a digest (name@sha256:...), never 'latest' or no tag`];
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
const ALL_INTERFACES = new Set(["", "0.0.0.0", "::", "[::]"]);

export function checkDatabasePorts(type: string, props: Props): string[] {
    if (type !== CONTAINER || !Array.isArray(props.ports)) return [];
    const problems: string[] = [];
    for (const port of props.ports as { internal?: number; external?: number; ip?: string }[]) {
        const service = INTERNAL_ONLY_PORTS[port.internal ?? -1];
        if (service !== undefined && ALL_INTERFACES.has(port.ip ?? "")) {
            problems.push(`${service} port ${port.internal} is published on ${port.ip ? port.ip : "every interface (no ip)"}: publish it on the host's private address only`);
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

const WORLD_CLIENT = /\*|^0\.0\.0\.0\/0|^::\/0/;

export function checkNfsExports(type: string, props: Props): string[] {
    if (!COMMAND_TYPES.includes(type)) return [];
    const problems: string[] = [];
    for (const step of ["create", "update"] as const) {
        const script = props[step];
        if (typeof script !== "string" || !/\bexport(s|fs)\b/.test(script)) continue;
        for (const entry of exportsEntries(script)) {
            const open = entry.clients.map(c => c.replace(/\(.*$/, "")).filter(host => WORLD_CLIENT.test(host));
            if (open.length > 0) problems.push(`${step}: the NFS export of ${entry.path} names ${open.map(h => `"${h || "*"}"`).join(", ")}: export to the GitLab hosts' addresses only`);
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

const WORLD_RANGES = new Set(["0.0.0.0/0", "0.0.0.0", "::/0", "::", "*"]);

export function checkMonitoringAllowlist(type: string, props: Props): string[] {
    if (!COMMAND_TYPES.includes(type)) return [];
    const problems: string[] = [];
    for (const field of ["stdin", "create", "update"]) {
        for (const text of strings(props[field])) {
            for (const m of text.matchAll(/gitlab_rails\[\s*['"]monitoring_(?:whitelist|allowlist)['"]\s*\]\s*=\s*(.*)$/gm)) {
                const ranges = [...m[1]!.matchAll(/'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g)].map(q => (q[1] ?? q[2] ?? "").trim());
                const open = ranges.filter(r => WORLD_RANGES.has(r));
                if (open.length > 0) problems.push(`${field}: gitlab_rails['monitoring_whitelist'] allows ${open.join(", ")}: list the balancer's and localhost's ranges only`);
            }
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
    resourcePolicy("no-public-database-port", "No container publishes PostgreSQL (5432) or Redis (6379) on 0.0.0.0 or without an address.", checkDatabasePorts),
    resourcePolicy("nfs-export-names-clients", "The NFS export never names '*' (or 0.0.0.0/0): only the GitLab hosts.", checkNfsExports),
    resourcePolicy("no-plain-text-secret", "No private key, password or secret setting in container envs/command/labels or command create/update/delete.", (type, props) => checkPlainTextSecrets(type, props)),
    noEngineSecretsInPlainText,
    resourcePolicy("monitoring-allowlist-not-open", "gitlab_rails['monitoring_whitelist'] in gitlab.rb never contains 0.0.0.0/0.", checkMonitoringAllowlist),
];
