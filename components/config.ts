// Stack configuration: the schema of every `gitlab-cluster:*` key, its defaults, and the
// cross-key rules (roles name known hosts, addresses are unique, keys are secret).
// Pure: takes plain values, returns a typed ClusterConfig or throws ConfigError.
import { isIP } from "node:net";
import { z } from "zod";
import { DEFAULT_MAX_ARCHIVE_GIB, DEFAULT_MIN_FREE_GIB } from "./render/backup";
import { MANAGED_RAILS_KEYS } from "./render/gitlabRb";

export const CONFIG_NAMESPACE = "gitlab-cluster";

/** GitLab's recommended NFS client options (see GITLAB-HA.md): never `soft`, never `nocto`. */
export const GITLAB_NFS_MOUNT_OPTIONS = [
    "vers=4.1", "hard", "rsize=1048576", "wsize=1048576", "noatime", "nofail", "_netdev", "lookupcache=positive",
];

const hostName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be a lower-case host name: letters, digits and '-'");
const absolutePath = z.string().regex(/^\/[A-Za-z0-9._/-]*$/, "must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    .refine(p => !p.split("/").includes(".."), "must not contain '..'");
const port = z.number().int().min(1).max(65535);
const ipAddress = z.string().refine(a => isIP(a) !== 0, "must be an IPv4 or IPv6 address");
const cidr = z.string().refine(c => {
    const [addr, bits, ...rest] = c.split("/");
    const family = isIP(addr ?? "");
    const n = Number(bits);
    return rest.length === 0 && family !== 0 && Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128);
}, "must be an address range such as 172.17.0.0/16");

/** A Docker image reference pinned to a release tag or a digest: never `latest`, never untagged. */
export const pinnedImage = z.string().refine(isPinnedImage,
    "must name a pinned image: a release tag such as name:1.2.3 or a digest name@sha256:..., not 'latest' or no tag");

export function isPinnedImage(image: string): boolean {
    if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
    const lastSlash = image.lastIndexOf("/");
    const tagAt = image.indexOf(":", lastSlash + 1);
    if (tagAt < 0) return false;
    const tag = image.slice(tagAt + 1);
    return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag) && tag !== "latest" && /\d/.test(tag);
}

const sshSettings = z.strictObject({
    /** Login user; it must be able to run `docker` and write the data paths (root, or in the docker group with sudo-free writes). */
    user: z.string().regex(/^[a-z_][a-z0-9_-]*$/, "must be a Unix user name").optional(),
    port: port.optional(),
    /** Private key contents (a secret). The program writes it to keyDir for the Docker provider's ssh client. */
    privateKey: z.string().min(1).optional(),
    /** Use the ssh-agent at $SSH_AUTH_SOCK instead of a key: both connections then take the key from the agent. */
    useAgent: z.boolean().optional(),
    /** The host's public key line (`ssh-ed25519 AAAA...`), pinned for every connection to it. */
    hostKey: z.string().regex(/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$/,
        "must be a public host key line such as 'ssh-ed25519 AAAA...'").optional(),
});
export type SshSettings = z.infer<typeof sshSettings>;

const hostSchema = z.strictObject({
    address: ipAddress,
    /** Commands run on the machine running Pulumi and Docker is its local socket: no SSH. */
    local: z.boolean().default(false),
    /** Run every host script through `sudo -n` (for a login user that is not root). */
    sudo: z.boolean().default(false),
    ssh: sshSettings.optional(),
    /** The address range of Docker's default bridge on this host: co-located containers reach each other from it. */
    dockerBridgeSubnet: cidr.default("172.17.0.0/16"),
});

const rolesSchema = z.strictObject({
    redis: hostName,
    postgres: hostName,
    gitlab: z.array(hostName).min(1, "must list at least one GitLab host"),
    nfsServer: hostName.optional(),
    loadBalancer: hostName,
});

const railsValue = z.union([z.string().refine(v => !v.includes("\0"), "must not contain a NUL character"), z.number(), z.boolean()]);

/** The URL's host must be a DNS name or an address: it becomes nginx's server_name. */
function isPlainUrlHost(u: string): boolean {
    if (!URL.canParse(u)) return true;
    const url = new URL(u);
    return url.username === "" && url.password === "" && (/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(url.hostname) || /^\[[0-9a-fA-F:.]+\]$/.test(url.hostname));
}
const gitlabSchema = z.strictObject({
    image: pinnedImage,
    externalUrl: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
        .refine(u => !URL.canParse(u) || (new URL(u).pathname === "/" && !new URL(u).search), "must have no path or query (relative URLs are not supported)")
        .refine(isPlainUrlHost, "must name its host by DNS name or address, with no user or password in it"),
    /** Host directory holding config/, logs/ and data/ of the Omnibus container. */
    dataRoot: absolutePath.default("/srv/gitlab"),
    /** Fixed uid/gid of the `git` user on every node, as NFS requires. */
    gitUid: z.number().int().min(100).max(65000).default(998),
    gitGid: z.number().int().min(100).max(65000).default(998),
    /** Port each node's container SSH is published on (the host's own sshd keeps 22). */
    nodeSshPort: port.default(2222),
    /** How long to wait for a node's /-/readiness after start or reconfigure. */
    readinessTimeoutSeconds: z.number().int().min(30).max(7200).default(1200),
    /** Extra `gitlab_rails['<key>'] = value` settings. */
    rails: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, "must be a gitlab_rails key: lower-case letters, digits, '_'"), railsValue).default({}),
});

const postgresSchema = z.strictObject({
    image: pinnedImage.default("postgres:16.8-bookworm"),
    port: port.default(5432),
    database: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a plain lower-case identifier").default("gitlabhq_production"),
    user: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a plain lower-case identifier").default("gitlab"),
    dataRoot: absolutePath.default("/srv/gitlab-cluster/postgres"),
});

const redisSchema = z.strictObject({
    image: pinnedImage.default("redis:7.2.5-bookworm"),
    port: port.default(6379),
    dataRoot: absolutePath.default("/srv/gitlab-cluster/redis"),
});

const nfsSchema = z.strictObject({
    /** Exported on the NFS server and mounted at the same path on every other GitLab host. */
    path: absolutePath.default("/srv/gitlab-nfs"),
    mountOptions: z.array(z.string().regex(/^[a-z0-9_]+(=[A-Za-z0-9._-]+)?$/, "must be a mount option such as hard or rsize=1048576"))
        .default(GITLAB_NFS_MOUNT_OPTIONS)
        .refine(o => !o.includes("soft") && !o.includes("nocto"), "must not contain 'soft' or 'nocto' (GitLab forbids them)"),
});

const tlsSchema = z.strictObject({
    /** PEM certificate chain. */
    certificate: z.string().includes("BEGIN CERTIFICATE", { message: "must be a PEM certificate" }),
    /** PEM private key (a secret). */
    privateKey: z.string().includes("PRIVATE KEY", { message: "must be a PEM private key" }),
});

const loadBalancerSchema = z.strictObject({
    image: pinnedImage.default("nginx:1.27.4-bookworm"),
    /** Address the balancer's ports are published on. */
    listenAddress: ipAddress.default("0.0.0.0"),
    httpPort: port.default(80),
    httpsPort: port.default(443),
    /** Git over SSH, forwarded as TCP to the nodes' nodeSshPort; also gitlab_shell_ssh_port. */
    sshPort: port.default(2222),
    configRoot: absolutePath.default("/srv/gitlab-cluster/nginx"),
    tls: tlsSchema.optional(),
    proxyReadTimeoutSeconds: z.number().int().min(1).max(86400).default(3600),
    proxyConnectTimeoutSeconds: z.number().int().min(1).max(3600).default(300),
});

/** Five-field cron: minute hour day-of-month month day-of-week, numbers, ranges, lists and steps. */
export function isCronSchedule(s: string): boolean {
    const fields = s.trim().split(/\s+/);
    const ranges: [number, number][] = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];
    if (fields.length !== 5) return false;
    return fields.every((field, i) => field.split(",").every(part => {
        const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
        if (!m) return false;
        const [lo, hi] = ranges[i]!;
        const nums = [m[2], m[3]].filter((x): x is string => x !== undefined).map(Number);
        if (m[4] !== undefined && Number(m[4]) < 1) return false;
        if (nums.length === 2 && nums[0]! > nums[1]!) return false;
        return nums.every(n => n >= lo && n <= hi);
    }));
}

const backupSchema = z.strictObject({
    /** The GitLab host that backs up; default the migration node. */
    node: hostName.optional(),
    schedule: z.string().refine(isCronSchedule, "must be a five-field cron schedule such as '0 3 * * *'").default("0 3 * * *"),
    keepDays: z.number().int().min(1).max(3650).default(7),
    /**
     * Optional off-host copy: a host of the inventory and an absolute path there; the receiver
     * refuses an archive larger than maxArchiveGiB, or one that would leave less than minFreeGiB free.
     */
    target: z.strictObject({
        host: hostName, path: absolutePath,
        maxArchiveGiB: z.number().positive().max(1_000_000).default(DEFAULT_MAX_ARCHIVE_GIB),
        minFreeGiB: z.number().min(0).max(1_000_000).default(DEFAULT_MIN_FREE_GIB),
    }).optional(),
});

export const clusterConfigSchema = z.strictObject({
    hosts: z.record(hostName, hostSchema).refine(h => Object.keys(h).length > 0, "must name at least one host"),
    ssh: sshSettings.default({}),
    roles: rolesSchema,
    gitlab: gitlabSchema,
    postgres: postgresSchema.default(() => postgresSchema.parse({})),
    redis: redisSchema.default(() => redisSchema.parse({})),
    nfs: nfsSchema.default(() => nfsSchema.parse({})),
    loadBalancer: loadBalancerSchema.default(() => loadBalancerSchema.parse({})),
    backup: backupSchema.optional(),
});

export type ClusterConfigInput = z.input<typeof clusterConfigSchema>;
type ParsedConfig = z.output<typeof clusterConfigSchema>;

/** A host with its SSH settings resolved (host overrides over the `ssh` defaults). */
export interface HostConfig {
    readonly name: string;
    readonly address: string;
    readonly local: boolean;
    readonly sudo: boolean;
    readonly dockerBridgeSubnet: string;
    readonly ssh: { readonly user: string; readonly port: number; readonly privateKey?: string; readonly useAgent: boolean; readonly hostKey?: string };
}

export type ClusterConfig = Omit<ParsedConfig, "hosts"> & { readonly hosts: Readonly<Record<string, HostConfig>> };

export class ConfigError extends Error {
    constructor(readonly problems: string[]) {
        super(problems.length === 1 ? problems[0] : `${problems.length} problems in the stack configuration:\n  - ${problems.join("\n  - ")}`);
        this.name = "ConfigError";
    }
}

/** `["roles", "gitlab", 2]` -> `gitlab-cluster:roles.gitlab[2]`. */
export function keyPath(path: readonly PropertyKey[]): string {
    const [first, ...rest] = path;
    let out = `${CONFIG_NAMESPACE}:${String(first ?? "")}`;
    for (const p of rest) out += typeof p === "number" ? `[${p}]` : `.${String(p)}`;
    return out;
}

function describe(value: unknown): string {
    if (value === undefined) return "nothing";
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
    let v: unknown = raw;
    for (const p of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
    return v;
}

export interface SecretFlags {
    /** Whether a top-level config key (e.g. "ssh", "hosts") is stored as a secret in the stack. */
    readonly isSecret: (key: string) => boolean;
}

/**
 * Validates raw stack values (objects keyed by config key without namespace) and returns the
 * resolved configuration. Every problem names its key path and the offending value.
 */
export function parseClusterConfig(raw: Record<string, unknown>, secrets: SecretFlags): ClusterConfig {
    const result = clusterConfigSchema.safeParse(raw);
    if (!result.success) {
        throw new ConfigError(result.error.issues.map(issue => {
            const at = keyPath(issue.path);
            if (issue.code === "unrecognized_keys") {
                return `${at}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map(k => `"${k}"`).join(", ")}`;
            }
            const value = valueAt(raw, issue.path);
            const msg = value === undefined && issue.code === "invalid_type" ? "is required" : issue.message;
            return value === undefined ? `${at}: ${msg}` : `${at}: ${msg} (got ${describe(value)})`;
        }));
    }
    return checkCrossKeyRules(result.data, secrets);
}

function checkCrossKeyRules(cfg: ParsedConfig, secrets: SecretFlags): ClusterConfig {
    const problems: string[] = [];
    const hostNames = Object.keys(cfg.hosts);
    const known = (path: PropertyKey[], host: string | undefined) => {
        if (host !== undefined && !(host in cfg.hosts)) {
            problems.push(`${keyPath(path)}: names host "${host}", which is not in ${keyPath(["hosts"])} (${hostNames.join(", ")})`);
        }
    };
    known(["roles", "redis"], cfg.roles.redis);
    known(["roles", "postgres"], cfg.roles.postgres);
    known(["roles", "loadBalancer"], cfg.roles.loadBalancer);
    known(["roles", "nfsServer"], cfg.roles.nfsServer);
    cfg.roles.gitlab.forEach((h, i) => known(["roles", "gitlab", i], h));
    const seen = new Map<string, number>();
    cfg.roles.gitlab.forEach((h, i) => {
        if (seen.has(h)) problems.push(`${keyPath(["roles", "gitlab", i])}: host "${h}" is listed twice (also at [${seen.get(h)}])`);
        seen.set(h, i);
    });
    if (cfg.roles.gitlab.length > 1 && cfg.roles.nfsServer === undefined) {
        problems.push(`${keyPath(["roles", "nfsServer"])}: is required when ${keyPath(["roles", "gitlab"])} lists more than one host (got ${cfg.roles.gitlab.length})`);
    }
    if (cfg.roles.nfsServer !== undefined && !cfg.roles.gitlab.includes(cfg.roles.nfsServer)) {
        problems.push(`${keyPath(["roles", "nfsServer"])}: "${cfg.roles.nfsServer}" must be one of the GitLab hosts (${cfg.roles.gitlab.join(", ")})`);
    }
    if (cfg.backup?.node !== undefined && !cfg.roles.gitlab.includes(cfg.backup.node)) {
        problems.push(`${keyPath(["backup", "node"])}: "${cfg.backup.node}" must be one of the GitLab hosts (${cfg.roles.gitlab.join(", ")})`);
    }
    known(["backup", "target", "host"], cfg.backup?.target?.host);

    for (const key of Object.keys(cfg.gitlab.rails)) {
        if (MANAGED_RAILS_KEYS.includes(key)) {
            problems.push(`${keyPath(["gitlab", "rails", key])}: is set by the program (from the cluster's topology and generated secrets) and cannot be overridden`);
        }
    }
    const families = new Set(Object.values(cfg.hosts).map(h => (h.address.includes(":") ? "IPv6" : "IPv4")));
    if (families.size > 1) {
        problems.push(`${keyPath(["hosts"])}: mixes IPv4 and IPv6 addresses; give every host an address of one family (access rules and firewalls compare them)`);
    }
    // A GitLab container on Docker's IPv4-only default bridge cannot reach its own host's IPv6 address.
    for (const role of ["redis", "postgres"] as const) {
        const host = cfg.roles[role];
        if (cfg.roles.gitlab.includes(host) && cfg.hosts[host]?.address.includes(":")) {
            problems.push(`${keyPath(["roles", role])}: "${host}" is also in ${keyPath(["roles", "gitlab"])} and has an IPv6 address: GitLab's container, on Docker's IPv4-only default bridge, cannot reach ${role} there; put ${role} on a host that runs no GitLab node, or give the hosts IPv4 addresses`);
        }
    }
    const byAddress = new Map<string, string>();
    for (const [name, h] of Object.entries(cfg.hosts)) {
        const other = byAddress.get(h.address);
        if (other !== undefined) problems.push(`${keyPath(["hosts", name, "address"])}: ${h.address} is also the address of host "${other}"`);
        byAddress.set(h.address, name);
    }

    const resolved: Record<string, HostConfig> = {};
    for (const [name, h] of Object.entries(cfg.hosts)) {
        const ssh = { ...cfg.ssh, ...h.ssh };
        if (h.ssh?.privateKey !== undefined && !secrets.isSecret("hosts")) {
            problems.push(`${keyPath(["hosts", name, "ssh", "privateKey"])}: is stored in plain text; set it with \`pulumi config set --secret --path 'hosts.${name}.ssh.privateKey'\``);
        }
        if (!h.local && ssh.privateKey === undefined && ssh.useAgent !== true) {
            problems.push(`${keyPath(["hosts", name])}: has no SSH key: set ${keyPath(["ssh", "privateKey"])} (a secret), hosts.${name}.ssh.privateKey, or ssh.useAgent: true`);
        }
        if (ssh.privateKey !== undefined && ssh.useAgent === true) {
            problems.push(`${keyPath(["hosts", name, "ssh"])}: sets both privateKey and useAgent; choose one so both connections use the same key`);
        }
        resolved[name] = {
            name, address: h.address, local: h.local, sudo: h.sudo, dockerBridgeSubnet: h.dockerBridgeSubnet,
            ssh: { user: ssh.user ?? "root", port: ssh.port ?? 22, privateKey: ssh.privateKey, useAgent: ssh.useAgent ?? false, hostKey: ssh.hostKey },
        };
    }
    if (cfg.ssh.privateKey !== undefined && !secrets.isSecret("ssh")) {
        problems.push(`${keyPath(["ssh", "privateKey"])}: is stored in plain text; set it with \`pulumi config set --secret --path ssh.privateKey < key\``);
    }
    if (cfg.loadBalancer.tls !== undefined && !secrets.isSecret("loadBalancer")) {
        problems.push(`${keyPath(["loadBalancer", "tls", "privateKey"])}: is stored in plain text; set it with \`pulumi config set --secret --path loadBalancer.tls.privateKey < key.pem\``);
    }
    const https = new URL(cfg.gitlab.externalUrl).protocol === "https:";
    if (https && cfg.loadBalancer.tls === undefined) {
        problems.push(`${keyPath(["loadBalancer", "tls"])}: is required because ${keyPath(["gitlab", "externalUrl"])} is https (TLS ends at the balancer)`);
    }
    const pgMajor = Number(/:(\d+)/.exec(cfg.postgres.image.slice(cfg.postgres.image.lastIndexOf("/") + 1))?.[1]);
    const gitlabMajor = Number(/:(\d+)\./.exec(cfg.gitlab.image.slice(cfg.gitlab.image.lastIndexOf("/") + 1))?.[1]);
    const minPg = gitlabMajor >= 18 ? 16 : gitlabMajor >= 17 ? 14 : 0;
    if (Number.isFinite(pgMajor) && Number.isFinite(gitlabMajor) && pgMajor < minPg) {
        problems.push(`${keyPath(["postgres", "image"])}: PostgreSQL ${pgMajor} is too old for GitLab ${gitlabMajor} (needs ${minPg} or newer)`);
    }
    const lbHost = cfg.roles.loadBalancer;
    if (cfg.roles.gitlab.includes(lbHost) && [cfg.loadBalancer.httpPort, cfg.loadBalancer.sshPort].some(p => p === 80 || p === cfg.gitlab.nodeSshPort)) {
        problems.push(`${keyPath(["roles", "loadBalancer"])}: "${lbHost}" also runs GitLab, whose container publishes ports 80 and ${cfg.gitlab.nodeSshPort}; give ${keyPath(["loadBalancer", "httpPort"])} and ${keyPath(["loadBalancer", "sshPort"])} other ports`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return { ...cfg, hosts: resolved };
}

export const CONFIG_KEYS = ["hosts", "ssh", "roles", "gitlab", "postgres", "redis", "nfs", "loadBalancer", "backup"] as const;

/**
 * Reads the flat `gitlab-cluster:<key>` map Pulumi hands a program (object values as JSON
 * text) into raw values, refusing keys this program does not know.
 */
export function readFlatConfig(flat: Readonly<Record<string, string>>): Record<string, unknown> {
    const raw: Record<string, unknown> = {};
    const problems: string[] = [];
    for (const [fullKey, text] of Object.entries(flat)) {
        if (!fullKey.startsWith(`${CONFIG_NAMESPACE}:`)) continue;
        const key = fullKey.slice(CONFIG_NAMESPACE.length + 1);
        if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
            problems.push(`${fullKey}: unknown key (known: ${CONFIG_KEYS.join(", ")})`);
            continue;
        }
        try {
            raw[key] = JSON.parse(text);
        } catch {
            problems.push(`${fullKey}: must be an object (got ${describe(text)})`);
        }
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return raw;
}

/** Reads and validates the stack's configuration. */
export function loadClusterConfig(flat: Readonly<Record<string, string>>, isSecretKey: (fullKey: string) => boolean): ClusterConfig {
    return parseClusterConfig(readFlatConfig(flat), { isSecret: key => isSecretKey(`${CONFIG_NAMESPACE}:${key}`) });
}
