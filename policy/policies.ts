// The cluster's policies. Each check is a pure function of a resource's type and inputs (or, for
// the stack checks, of every resource as plain data) that returns its violations (empty:
// compliant), so the tests run it on the resources of a real evaluation; the policy objects below
// only hand the engine's resources to the checks.
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

// ---- (c) data ports stay off public interfaces

/** Ports that are a data service's wherever they are published: PostgreSQL's, Redis's and Gitaly's defaults. */
export const INTERNAL_ONLY_PORTS: Readonly<Record<number, string>> = { 5432: "PostgreSQL", 6379: "Redis", 8075: "Gitaly" };

/** Reads a property that may be unknown during a preview (the engine's proxy then throws): undefined. */
function known<T>(read: () => T): T | undefined {
    try {
        return read();
    } catch (e) {
        if (isUnknown(e)) return undefined;
        throw e;
    }
}

function isUnknown(e: unknown): boolean {
    return (e as Error | undefined)?.constructor?.name === "UnknownValueError";
}

/** Whether an address, as Docker takes a port's `ip`, means every interface: none, 0.0.0.0, ::, [::], ::0, 0:0:...:0. */
export function isAllInterfaces(ip: string | undefined): boolean {
    const a = (ip ?? "").trim().replace(/^\[(.*)\]$/, "$1");
    if (a === "") return true;
    if (/^0+(\.0+){3}$/.test(a)) return true;
    return a.includes(":") && !a.includes(".") && /^[0:]+$/.test(a); // every IPv6 spelling of ::
}

/** How a PostgreSQL, Redis or Gitaly container gives itself away, field by field. */
const SERVICES: readonly {
    readonly name: string;
    /** The image repository's last component, without tag or digest. */
    readonly image: RegExp;
    /** The container's name ends in its role (`gitlab-postgres`, `gitlab-gitaly`). */
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
    {
        // The Omnibus image with only Gitaly running (`gitlab-ctl status gitaly` is its health), or
        // GitLab's cloud-native Gitaly image (registry.gitlab.com/gitlab-org/build/cng/gitaly).
        // Its image is GitLab's own, as the Rails nodes': what it serves is read from its gitlab.rb,
        // by the stack policy no-public-gitaly-port (gitalyServers below).
        name: "Gitaly", image: /^gitaly$/, containerName: /(^|[-_])gitaly$/,
        program: /^(.*\/)?gitaly$/, env: /^GITALY_[A-Z0-9_]*=/, health: /\bgitaly\b/,
    },
];

/**
 * What data service a container is, if any, by what it is rather than its port: its image (a
 * Container holds an image ID once pulled, so also:) its name, program, environment and healthcheck.
 */
export function dataService(props: Props): string | undefined {
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

interface PublishedPort { readonly internal?: number; readonly external?: number; readonly ip?: string }

function publishedPorts(props: Props): PublishedPort[] {
    const ports = known(() => props.ports);
    return Array.isArray(ports) ? ports as PublishedPort[] : [];
}

const portProblem = (what: string, port: PublishedPort, ip: string | undefined) =>
    `${what} port ${port.internal} is published on ${ip ? ip : "every interface (no ip)"} (host port ${port.external ?? "random"}): publish it on the host's private address only`;

/** PostgreSQL, Redis and Gitaly containers (by what they are, whatever their ports) publish on one address, never on every interface. */
export function checkDatabasePorts(type: string, props: Props): string[] {
    if (type !== CONTAINER) return [];
    const service = dataService(props);
    const problems: string[] = [];
    for (const port of publishedPorts(props)) {
        const what = service ?? INTERNAL_ONLY_PORTS[port.internal ?? -1];
        const ip = known(() => port.ip);
        if (what !== undefined && isAllInterfaces(ip)) problems.push(portProblem(what, port, ip));
    }
    return problems;
}

// ---- (g) Gitaly known by its gitlab.rb, (h) data ports behind the host firewall: checks of the whole stack

/** A resource as the stack checks see it: the engine's PolicyResource, reduced to plain data. */
export interface StackResource {
    readonly urn: string;
    readonly name: string;
    readonly type: string;
    readonly props: Props;
    /** The `host` of its Docker provider (`ssh://user@address:22`, `unix:///var/run/docker.sock`), for a Docker resource. */
    readonly dockerHost?: string;
    /** URNs it waits for: dependsOn and the resources whose outputs it takes. */
    readonly dependencies: readonly string[];
}

/** The engine's resources as the stack checks take them. */
export function stackResources(resources: readonly PolicyResource[]): StackResource[] {
    return resources.map(r => ({
        urn: r.urn, name: r.name, type: r.type, props: r.props,
        dockerHost: strings(known(() => r.provider?.props?.host))[0],
        dependencies: (r.dependencies ?? []).map(d => d.urn),
    }));
}

/** A stack check's finding: the resource it concerns and what is wrong. */
export interface StackViolation { readonly urn: string; readonly name: string; readonly message: string }

/** Where a resource acts: a remote host's address, `local` (the machine running Pulumi), or undefined when it cannot be told. */
export function hostOf(r: StackResource): string | undefined {
    if (COMMAND_TYPES.includes(r.type)) {
        const host = strings(known(() => (known(() => r.props.connection) as Props | undefined)?.host))[0];
        return host !== undefined ? host.replace(/^\[(.*)\]$/, "$1") : r.type === "command:local:Command" ? "local" : undefined;
    }
    const docker = r.dockerHost;
    if (docker === undefined) return undefined;
    const ssh = /^(?:ssh|tcp|https?):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)/.exec(docker);
    if (ssh) return ssh[1]!.replace(/^\[(.*)\]$/, "$1");
    return /^(unix|npipe):\/\//.test(docker) ? "local" : undefined;
}

/** The brace-balanced text after `open` (which ends in `{`), without the closing brace. */
function braced(text: string, open: number): string {
    let depth = 1;
    for (let i = open; i < text.length; i++) {
        if (text[i] === "{") depth++;
        else if (text[i] === "}" && --depth === 0) return text.slice(open, i);
    }
    return text.slice(open);
}

/**
 * The TCP ports a gitlab.rb makes Gitaly listen on: `listen_addr` and `tls_listen_addr` of
 * `gitaly['configuration'] = { ... }` (symbol or string keys), `gitaly['configuration'][:listen_addr] = ...`,
 * and the older `gitaly['listen_addr'] = ...`. Not `prometheus_listen_addr`, nor other services' listen_addr.
 */
export function gitalyListenPorts(rb: string): number[] {
    const addresses: string[] = [];
    const key = String.raw`(?<![A-Za-z0-9_])(?:tls_)?listen_addr`;
    const value = String.raw`\s*['"]([^'"]*)['"]`;
    for (const m of rb.matchAll(new RegExp(String.raw`\bgitaly\[\s*['"]${key}['"]\s*\]\s*=${value}`, "g"))) addresses.push(m[1]!);
    for (const m of rb.matchAll(new RegExp(String.raw`\bgitaly\[\s*['"]configuration['"]\s*\]\s*\[\s*(?::|['"])${key}['"]?\s*\]\s*=${value}`, "g"))) addresses.push(m[1]!);
    for (const m of rb.matchAll(/\bgitaly\[\s*['"]configuration['"]\s*\]\s*=\s*\{/g)) {
        const block = braced(rb, m.index + m[0].length);
        for (const v of block.matchAll(new RegExp(String.raw`['":]?${key}['"]?\s*(?::|=>)${value}`, "g"))) addresses.push(v[1]!);
    }
    return [...new Set(addresses.map(a => Number(/:(\d+)$/.exec(a.trim())?.[1])).filter(p => Number.isInteger(p) && p > 0))];
}

/** The host directory a container mounts at /etc/gitlab: where its gitlab.rb is. */
function omnibusConfigDir(props: Props): string | undefined {
    const volumes = known(() => props.volumes);
    if (!Array.isArray(volumes)) return undefined;
    const v = (volumes as { containerPath?: string; hostPath?: string }[]).find(x => known(() => x.containerPath)?.replace(/\/+$/, "") === "/etc/gitlab");
    return known(() => v?.hostPath)?.replace(/\/+$/, "");
}

/**
 * Containers that serve Gitaly over TCP according to the gitlab.rb they run with: the file a
 * command on the same host writes into the directory mounted at /etc/gitlab (the command's stdin,
 * or the script itself), or GITLAB_OMNIBUS_CONFIG. By what the container is configured to do,
 * not by its name, image or port: the Omnibus image is the Rails nodes' image too.
 */
export function gitalyServers(resources: readonly StackResource[]): { container: StackResource; ports: number[] }[] {
    const servers: { container: StackResource; ports: number[] }[] = [];
    const commands = resources.filter(r => COMMAND_TYPES.includes(r.type));
    for (const c of resources.filter(r => r.type === CONTAINER)) {
        const texts = strings(known(() => c.props.envs)).filter(e => e.startsWith("GITLAB_OMNIBUS_CONFIG=")).map(e => e.slice(e.indexOf("=") + 1));
        const dir = omnibusConfigDir(c.props);
        const host = hostOf(c);
        if (dir !== undefined && host !== undefined) {
            const file = `${dir}/gitlab.rb`;
            for (const cmd of commands.filter(x => hostOf(x) === host)) {
                const scripts = ["create", "update"].flatMap(step => strings(known(() => cmd.props[step])));
                if (scripts.some(s => s.includes(file))) texts.push(...scripts, ...strings(known(() => cmd.props.stdin)));
            }
        }
        const ports = [...new Set(texts.flatMap(gitalyListenPorts))];
        if (ports.length > 0) servers.push({ container: c, ports });
    }
    return servers;
}

/** A container configured (by its gitlab.rb) to serve Gitaly publishes that port on one address, never on every interface. */
export function checkGitalyPorts(resources: readonly StackResource[]): StackViolation[] {
    const problems: StackViolation[] = [];
    for (const { container, ports } of gitalyServers(resources)) {
        for (const port of publishedPorts(container.props).filter(p => ports.includes(p.internal ?? -1))) {
            const ip = known(() => port.ip);
            if (isAllInterfaces(ip)) problems.push({ urn: container.urn, name: container.name, message: `${portProblem("Gitaly", port, ip)} (gitlab.rb makes it Gitaly's listen_addr)` });
        }
    }
    return problems;
}

/** One host firewall a command installs: a jump for an address:port into a chain, and that chain's rules (one list per iptables-restore table it writes, e.g. IPv6 and IPv4). */
interface FirewallRule { readonly command: StackResource; readonly chain: string; readonly rules: string[][] }

/** The chains a command's script jumps to from DOCKER-USER for `ip:port` (conntrack's original destination), with their rules. */
function firewallsFor(command: StackResource, ip: string, port: number): FirewallRule[] {
    // Read as it is: a script not known in this preview throws, and the container is checked on the next.
    const script = strings(command.props.create).join("\n");
    const bare = ip.replace(/^\[(.*)\]$/, "$1");
    const chains = new Set<string>();
    for (const m of script.matchAll(/-[IA]\s+DOCKER-USER\b([^\n']*?)-j\s+([A-Za-z0-9_-]+)/g)) {
        const match = m[1]!;
        const dst = /--ctorigdst\s+(\S+)/.exec(match)?.[1]?.replace(/\/(32|128)$/, "");
        const dport = /--ctorigdstport\s+(\d+)/.exec(match)?.[1];
        if (dst === bare && Number(dport) === port) chains.add(m[2]!);
    }
    return [...chains].map(chain => {
        // Each table that declares the chain (`:CHAIN - [0:0]`), up to its COMMIT; rules appended elsewhere count as one more.
        const tables = script.split(new RegExp(String.raw`^:${chain}\s`, "m"));
        const rulesOf = (text: string) => [...text.matchAll(new RegExp(String.raw`-A\s+${chain}\s+([^\n']*)`, "g"))].map(r => r[1]!.trim());
        const rules = [rulesOf(tables[0]!), ...tables.slice(1).map(t => rulesOf(t.split(/^COMMIT\b/m)[0]!))].filter(r => r.length > 0);
        const outside = tables.slice(1).flatMap(t => rulesOf(t.split(/^COMMIT\b/m).slice(1).join("\n")));
        return { command, chain, rules: outside.length > 0 ? [...rules, outside] : rules.length > 0 ? rules : [[]] };
    });
}

/** What is wrong with a chain: an allowed source that is everyone, or no final drop. Empty: it admits named sources only. */
function chainProblems(rules: readonly string[]): string[] {
    const problems: string[] = [];
    for (const rule of rules.filter(r => /-j\s+(RETURN|ACCEPT)\b/.test(r))) {
        const source = /(?:^|\s)(!\s+)?-s\s+(\S+)/.exec(rule);
        if (!source || source[1] !== undefined || source[2]!.split(",").some(isWorldRange)) problems.push(`admits ${source ? `"${rule}"` : "every source"}`);
    }
    if (!/^-j\s+(DROP|REJECT)\b/.test(rules[rules.length - 1] ?? "")) problems.push("does not end in a DROP of every other source");
    return problems;
}

/**
 * Every published port of a data container (PostgreSQL, Redis, Gitaly, by what it is or by its
 * gitlab.rb) on a remote host is behind a host firewall on that host: a DOCKER-USER jump for its
 * address and host port into a chain that admits named sources only and drops the rest, installed
 * before the container starts (the container depends on it). A local host (a lab on one machine)
 * has no LAN to keep out; a port on every interface is no-public-database-port's.
 */
export function checkDataPortsFirewalled(resources: readonly StackResource[]): StackViolation[] {
    const problems: StackViolation[] = [];
    const byUrn = new Map(resources.map(r => [r.urn, r]));
    const waitsFor = (from: StackResource, urn: string): boolean => {
        const seen = new Set<string>();
        const todo = [...from.dependencies];
        while (todo.length > 0) {
            const next = todo.pop()!;
            if (next === urn) return true;
            if (seen.has(next)) continue;
            seen.add(next);
            todo.push(...(byUrn.get(next)?.dependencies ?? []));
        }
        return false;
    };
    const gitaly = new Map(gitalyServers(resources).map(s => [s.container.urn, s.ports]));
    const commands = resources.filter(r => COMMAND_TYPES.includes(r.type));
    for (const c of resources.filter(r => r.type === CONTAINER)) {
        try {
            const host = hostOf(c);
            if (host === "local") continue;
            const service = dataService(c.props);
            for (const port of publishedPorts(c.props)) {
                const what = service ?? (gitaly.get(c.urn)?.includes(port.internal ?? -1) ? "Gitaly" : INTERNAL_ONLY_PORTS[port.internal ?? -1]);
                const ip = known(() => port.ip);
                if (what === undefined || isAllInterfaces(ip) || port.external === undefined) continue;
                const at = `${what} port ${port.internal} published on ${ip}:${port.external}`;
                const report = (message: string) => problems.push({ urn: c.urn, name: c.name, message: `${at} ${message}` });
                if (host === undefined) { report("is on a host the policy cannot tell (no Docker provider host): cannot check its firewall"); continue; }
                const firewalls = commands.filter(x => hostOf(x) === host).flatMap(x => firewallsFor(x, ip!, port.external!));
                if (firewalls.length === 0) {
                    report(`has no host firewall on ${host}: install one that admits only the GitLab hosts (a DOCKER-USER jump for ${ip}:${port.external} into a chain that drops every other source)`);
                    continue;
                }
                for (const f of firewalls) {
                    for (const p of [...new Set(f.rules.flatMap(chainProblems))]) report(`is behind firewall chain ${f.chain} (${f.command.name}), which ${p}: admit the GitLab hosts' addresses only`);
                }
                if (!firewalls.some(f => waitsFor(c, f.command.urn))) {
                    report(`starts before its host firewall (${firewalls.map(f => f.command.name).join(", ")}) is installed: make the container depend on it`);
                }
            }
        } catch (e) {
            if (!isUnknown(e)) throw e; // not known in this preview: checked on the next
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
    { what: "a GitLab secret setting", pattern: /\[\s*['"](?:db_password|redis_password|initial_root_password|smtp_password|bind_password|password|secret_key_base|db_key_base|otp_key_base|encrypted_settings_key_base|openid_connect_signing_key|gitaly_token|secret_token|auth_token|token)['"]\s*\]\s*=\s*['"][^'"]/ },
    // gitaly['configuration'] = { auth: { token: '...' } } is a password assignment (below); the same with string keys is this.
    { what: "a secret in a Ruby hash", pattern: /(?:password|passwd|secret|token)['"]?\s*=>\s*['"](?!\$)[^'"]/i },
    { what: "a password assignment", pattern: /[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*(?!["']?\$)["']?[^\s"'$]{3}/i },
    { what: "a password option", pattern: /--(?:password|passwd|token|secret)(?:=|\s+)(?!["']?\$)["']?[^\s"'$-]/i },
    { what: "a SQL PASSWORD literal", pattern: /\bPASSWORD\s+'[^']+'/i },
];

/**
 * The plain-text inputs a secret must not be in, by field name (`envs[1]`, `create`, ...): what
 * `docker inspect`, `ps`, the host's audit log and the provider's output show, and files a
 * container gets through its plain `uploads` rather than a command's stdin.
 */
export function plainTextFields(type: string, props: Props): [string, string][] {
    const fields: [string, string][] = [];
    if (type === CONTAINER) {
        strings(props.envs).forEach((v, i) => fields.push([`envs[${i}]`, v]));
        // Joined, so `--requirepass value` split over two arguments is seen as one.
        for (const field of ["command", "entrypoints"]) if (strings(props[field]).length > 0) fields.push([field, strings(props[field]).join(" ")]);
        const health = strings((props.healthcheck as Props | undefined)?.tests);
        if (health.length > 0) fields.push(["healthcheck", health.join(" ")]);
        if (Array.isArray(props.labels)) {
            (props.labels as { label?: string; value?: string }[]).forEach((l, i) => fields.push([`labels[${i}]`, `${l.label ?? ""}=${l.value ?? ""}`]));
        }
        if (Array.isArray(props.uploads)) {
            (props.uploads as { file?: string; content?: string; contentBase64?: string }[]).forEach((u, i) => {
                if (typeof u.content === "string") fields.push([`uploads[${i}] (${u.file ?? "?"})`, u.content]);
                if (typeof u.contentBase64 === "string") fields.push([`uploads[${i}] (${u.file ?? "?"})`, Buffer.from(u.contentBase64, "base64").toString("utf8")]);
            });
        }
    } else if (COMMAND_TYPES.includes(type)) {
        for (const step of ["create", "update", "delete"]) strings(props[step]).forEach(v => fields.push([step, v]));
        const environment = props.environment;
        if (environment !== null && typeof environment === "object" && !Array.isArray(environment)) {
            for (const [k, v] of Object.entries(environment as Props)) if (typeof v === "string") fields.push([`environment.${k}`, `${k}=${v}`]);
        }
    }
    return fields;
}

/**
 * Secrets in plain text: values that look like secrets, and any of `secretValues` (what the
 * engine holds as secret elsewhere in the stack), each reported on its own. Messages never repeat the value.
 */
export function checkPlainTextSecrets(type: string, props: Props, secretValues: readonly string[] = []): string[] {
    const problems: string[] = [];
    const secrets = secretValues.filter(s => s.length >= 8);
    for (const [field, value] of plainTextFields(type, props)) {
        const found = SECRET_PATTERNS.find(p => p.pattern.test(value));
        if (found) problems.push(`${field} holds ${found.what} in plain text: send it as a secret (stdin, or a 0600 file)`);
        // Both, when both: each policy (by shape, by the stack's values) then refuses it on its own.
        if (secrets.some(s => value.includes(s))) problems.push(`${field} holds a value the stack keeps as a secret, in plain text: send it as a secret (stdin, or a 0600 file)`);
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
    description: "No generated password or token (the Gitaly token, gitlab-shell's secret) or SSH credential of the stack appears in a container's envs/command/entrypoints/healthcheck/labels/uploads or a command's scripts or environment.",
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

const stackPolicy = (name: string, description: string, check: (resources: readonly StackResource[]) => StackViolation[]): StackValidationPolicy => ({
    name, description, enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => { for (const v of check(stackResources(args.resources))) reportViolation(v.message, v.urn); },
});

export const policies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
    resourcePolicy("no-floating-image-tag", "Images (docker.RemoteImage, docker.Container) are pinned to a release tag or digest, never 'latest' or untagged.", checkPinnedImage),
    resourcePolicy("container-restart-and-healthcheck", "Every docker.Container has a restart policy other than 'no' and a healthcheck.", checkRestartAndHealthcheck),
    resourcePolicy("no-public-database-port", "No PostgreSQL, Redis or Gitaly container (known by its image, name, command, environment or healthcheck) publishes any port, nor any container port 5432, 6379 or 8075, on 0.0.0.0, :: or without an address.", checkDatabasePorts),
    stackPolicy("no-public-gitaly-port", "A container whose gitlab.rb (the file a command writes into its /etc/gitlab mount, or GITLAB_OMNIBUS_CONFIG) makes Gitaly listen on TCP publishes that port on one address, never 0.0.0.0, :: or without an address.", checkGitalyPorts),
    stackPolicy("data-port-firewalled", "Every published port of a PostgreSQL, Redis or Gitaly container on a remote host is behind a host firewall there (a DOCKER-USER jump for its address:port into a chain that admits named sources only and drops the rest), installed before the container starts.", checkDataPortsFirewalled),
    resourcePolicy("nfs-export-names-clients", "The NFS export never names '*' (or 0.0.0.0/0): only the GitLab hosts.", checkNfsExports),
    resourcePolicy("no-plain-text-secret", "No private key, password, token or secret setting in container envs/command/entrypoints/healthcheck/labels/uploads or command create/update/delete/environment.", (type, props) => checkPlainTextSecrets(type, props)),
    noEngineSecretsInPlainText,
    resourcePolicy("monitoring-allowlist-not-open", "gitlab_rails['monitoring_whitelist'] in gitlab.rb never contains 0.0.0.0/0.", checkMonitoringAllowlist),
];
