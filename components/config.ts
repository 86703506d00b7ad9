// Stack configuration: the schema of every `gitlab-cluster:*` key, its defaults, and the
// cross-key rules (roles name known hosts, addresses are unique, keys are secret).
// Pure: takes plain values, returns a typed ClusterConfig or throws ConfigError.
import { BlockList, isIP } from "node:net";
import { posix } from "node:path";
import { z } from "zod";
import { DEFAULT_MAX_ARCHIVE_GIB, DEFAULT_MIN_FREE_GIB } from "./render/backup";
import { MANAGED_RAILS_KEYS, omnibusSettingProblems } from "./render/gitlabRb";
import { UPSTREAM_CONNECT_TIMEOUT_DEFAULT_SECONDS, UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS } from "./render/nginxConf";
import { RUBY_MAX_DEPTH } from "./render/quote";
import { DEFAULT_ASSUMED_PUMA_WORKERS, POSTGRES_MAX_BACKENDS, railsNodeDatabaseClients, SUPERUSER_RESERVED_CONNECTIONS } from "./render/postgres";

export const CONFIG_NAMESPACE = "gitlab-cluster";

/** GitLab's recommended NFS client options (see GITLAB-HA.md): never `soft`, never `nocto`. */
export const GITLAB_NFS_MOUNT_OPTIONS = [
    "vers=4.1", "hard", "rsize=1048576", "wsize=1048576", "noatime", "nofail", "_netdev", "lookupcache=positive",
];

/**
 * Default images: the newest patch release of each line in Docker's official-images library
 * (docker-library/official-images, library/{postgres,redis,nginx}, as of 2026-08-21).
 * - Redis 7.2.16: 7.2.6 fixed CVE-2024-31449 (Lua bit library, RCE), 7.2.11 CVE-2025-49844 (Lua
 *   use-after-free, RCE), later 7.2 releases further Lua and stream RCEs (official-images #20011, #22078).
 * - PostgreSQL 16.15: 16.14 fixed eleven CVEs (2026-05-14 release); bookworm kept, because a
 *   new glibc (trixie) changes collations under an existing data directory.
 * - nginx 1.30.4 (stable): 1.27 gets no fixes; 1.30.1 fixed CVE-2026-42945 (rewrite module overflow).
 */
export const DEFAULT_IMAGES = {
    postgres: "postgres:16.15-bookworm",
    redis: "redis:7.2.16-bookworm",
    loadBalancer: "nginx:1.30.4-trixie",
} as const;

const hostName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be a lower-case host name: letters, digits and '-'");

/**
 * Directories a data or config path must not be: the program creates them, chowns files in them
 * and mounts them into containers (`loadBalancer.configRoot` whole, read-only, into nginx). The
 * system's own directories, exactly, and the trees that are virtual, hold programs, or are Docker's.
 */
export const SYSTEM_DIRECTORIES: readonly string[] = [
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/etc/ssh", "/etc/ssl", "/etc/systemd", "/root/.ssh",
    "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/local/bin", "/usr/local/sbin", "/usr/sbin", "/usr/share",
    "/var/backups", "/var/cache", "/var/lib", "/var/log", "/var/mail", "/var/spool", "/var/tmp",
];
export const SYSTEM_TREES: readonly string[] = ["/bin", "/boot", "/dev", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys",
    "/usr/bin", "/usr/lib", "/usr/sbin", "/var/lib/docker", "/var/run"];

/** `p` without `//`, `/./` or a trailing `/`. */
const normalPath = (p: string) => posix.normalize(p).replace(/(.)\/+$/, "$1");

/** The system directory `p` is, or lies in, if any. */
export function systemDirectoryOf(p: string): string | undefined {
    const normal = normalPath(p);
    return SYSTEM_DIRECTORIES.find(d => d === normal) ?? SYSTEM_TREES.find(t => normal.startsWith(`${t}/`));
}

/** An absolute path of the program's own: `example` (the key's default) is offered as the fix. */
const ownPath = (example: string) => z.string().regex(/^\/[A-Za-z0-9._/-]*$/, "must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    .refine(p => !p.split("/").includes(".."), "must not contain '..'")
    .superRefine((p, ctx) => {
        const system = p.startsWith("/") && !p.split("/").includes("..") ? systemDirectoryOf(p) : undefined;
        if (system !== undefined) {
            ctx.addIssue({ code: "custom", message: `is ${system === normalPath(p) ? "" : "inside "}the system directory ${system}: the program creates files there, chowns them and mounts the directory into containers; use a directory of its own such as ${example}` });
        }
    });
const port = z.number().int().min(1).max(65535);

// Node's BlockList parses every spelling of an address (`::0`, `0:0:0:0:0:0:0:0`, `::ffff:0.0.0.0`).
const unspecifiedAddresses = new BlockList();
unspecifiedAddresses.addAddress("0.0.0.0", "ipv4");
unspecifiedAddresses.addAddress("::", "ipv6");
const groupAddresses = new BlockList();
groupAddresses.addSubnet("224.0.0.0", 4, "ipv4");
groupAddresses.addAddress("255.255.255.255", "ipv4");
groupAddresses.addSubnet("ff00::", 8, "ipv6");
const familyOf = (a: string) => (isIP(a) === 6 ? "ipv6" : "ipv4");

/** An IPv4 or IPv6 address, without an IPv6 zone ID (`fe80::1%eth0`: meaningful on one interface of one machine only). */
const ipAddress = z.string().refine(a => isIP(a) !== 0, "must be an IPv4 or IPv6 address")
    .refine(a => !a.includes("%"), "must not carry an IPv6 zone ID (%eth0): give an address that is not link-local, such as the host's unique-local or global address");
/** A host's own address: not the unspecified address (every interface) nor a multicast or broadcast group. */
const hostAddress = ipAddress
    .refine(a => isIP(a) === 0 || a.includes("%") || !unspecifiedAddresses.check(a, familyOf(a)),
        "is the unspecified address (0.0.0.0 or ::), which names no host: give the address the other hosts reach this host at, such as 10.0.0.11")
    .refine(a => isIP(a) === 0 || a.includes("%") || !groupAddresses.check(a, familyOf(a)),
        "is a multicast or broadcast address, which names no single host: give the host's own address");

/** Widest range accepted as a host's Docker bridge: it is trusted in pg_hba.conf and the firewall, so it must be the bridge, not a network. */
export const BRIDGE_MIN_PREFIX = { 4: 12, 6: 48 } as const;
const cidr = z.string().refine(c => {
    const [addr, bits, ...rest] = c.split("/");
    const family = isIP(addr ?? "");
    const n = Number(bits);
    return rest.length === 0 && family !== 0 && bits !== "" && Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128) && !c.includes("%");
}, "must be an address range such as 172.17.0.0/16").superRefine((c, ctx) => {
    const [addr = "", bits = "", ...rest] = c.split("/");
    const family = isIP(addr);
    if ((family !== 4 && family !== 6) || rest.length > 0 || !/^\d+$/.test(bits) || addr.includes("%")) return; // refused above
    const min = BRIDGE_MIN_PREFIX[family];
    if (Number(bits) < min) {
        ctx.addIssue({ code: "custom", message: `is wider than a Docker bridge (/${bits}): the range is trusted by PostgreSQL's pg_hba.conf and the data host's firewall; give the bridge's own subnet (\`docker network inspect bridge\`), /${min} or narrower` });
    } else if (unspecifiedAddresses.check(addr, family === 6 ? "ipv6" : "ipv4")) {
        ctx.addIssue({ code: "custom", message: "starts at the unspecified address (0.0.0.0 or ::): give the bridge's own subnet (`docker network inspect bridge`), such as 172.17.0.0/16" });
    }
});

/** A Docker image reference: `[registry[:port]/]repository[:tag][@sha256:<64 hex>]`. */
export interface ImageRef {
    readonly repository: string;
    readonly tag?: string;
    readonly digest?: string;
}

export function parseImageRef(image: string): ImageRef | undefined {
    const component = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    const m = new RegExp(`^((?:[A-Za-z0-9.-]+(?::\\d+)?/)?${component}(?:/${component})*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$`).exec(image);
    if (!m) return undefined;
    return { repository: m[1]!, ...(m[2] !== undefined ? { tag: m[2] } : {}), ...(m[3] !== undefined ? { digest: m[3] } : {}) };
}

/**
 * How many version numbers a tag of this repository needs to name one release: Redis, nginx and
 * GitLab number releases major.minor.patch (`redis:7.2` is a line that moves), PostgreSQL (10+)
 * and everything else major.minor at least.
 */
export function releaseVersionParts(repository: string): number {
    return /^(redis|valkey|nginx|gitlab-ce|gitlab-ee)$/.test(repository.slice(repository.lastIndexOf("/") + 1)) ? 3 : 2;
}

/**
 * Why an image reference floats (moves to other content over time), or undefined when it is
 * pinned: by a digest, or by a tag that starts with a full release version (`7.2.16-bookworm`,
 * `16.15`, `v1.2.3`). `latest`, no tag, and release lines (`redis:7`, `postgres:16`,
 * `redis:7.2`, `16-alpine`, `bookworm`, `alpine3.20`) float.
 */
export function imageFloats(image: string): string | undefined {
    const ref = parseImageRef(image);
    if (!ref) return "is not an image reference of the form name:tag or name@sha256:<64 hex>";
    if (ref.digest !== undefined) return undefined;
    if (ref.tag === undefined) return "has no tag, which means 'latest'";
    if (ref.tag === "latest") return "is tagged 'latest'";
    const parts = releaseVersionParts(ref.repository);
    const version = /^v?(\d+(?:\.\d+)*)/.exec(ref.tag)?.[1];
    if (version === undefined) return `is tagged '${ref.tag}', a name that moves to each new release`;
    if (version.split(".").length < parts) return `is tagged '${ref.tag}', a release line that moves to each new ${parts === 3 ? "patch" : "minor"} release`;
    return undefined;
}

export function isPinnedImage(image: string): boolean {
    return imageFloats(image) === undefined;
}

/** A Docker image reference pinned to one release (a full version tag) or a digest. */
export const pinnedImage = z.string().superRefine((image, ctx) => {
    const floats = imageFloats(image);
    if (floats !== undefined) {
        ctx.addIssue({ code: "custom", message: `must name a pinned image: it ${floats}; pin a full release tag (such as redis:7.2.16-bookworm or postgres:16.15-bookworm) or add a digest (name:tag@sha256:<64 hex>)` });
    }
});

/** The PostgreSQL major version a postgres image's tag names (`postgres:16.15-bookworm`: 16), or undefined (a digest alone, another tag). */
export function postgresMajor(image: string): number | undefined {
    const m = /^(\d+)/.exec(parseImageRef(image)?.tag ?? "");
    return m ? Number(m[1]) : undefined;
}

export interface GitlabRelease {
    readonly major: number;
    readonly minor: number;
    readonly patch: number;
    /** The Omnibus build: `0` of `18.4.1-ce.0`. */
    readonly build: number;
    /** The tag: `18.4.1-ce.0`. */
    readonly text: string;
}

/**
 * The GitLab release of an Omnibus image reference (`gitlab/gitlab-ce:18.4.1-ce.0`, also with
 * `@sha256:...`), or undefined when its tag does not say (no tag, a digest only, another tag).
 */
export function gitlabRelease(image: string): GitlabRelease | undefined {
    const tag = parseImageRef(image)?.tag;
    const m = /^(\d+)\.(\d+)\.(\d+)(?:-(?:ce|ee)\.(\d+))?$/.exec(tag ?? "");
    if (tag === undefined || !m) return undefined;
    return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), build: Number(m[4] ?? 0), text: tag };
}

/** gitlab.image: pinned, and its tag names the release, which the PostgreSQL check, the promotion's downgrade check and restores read. */
const gitlabImage = pinnedImage.superRefine((image, ctx) => {
    if (isPinnedImage(image) && gitlabRelease(image) === undefined) {
        ctx.addIssue({ code: "custom", message: "must carry GitLab's release tag, with or without a digest (gitlab/gitlab-ce:18.4.1-ce.0 or gitlab/gitlab-ce:18.4.1-ce.0@sha256:<64 hex>): the release is read from the tag to refuse downgrades and check the PostgreSQL version" });
    }
});

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
    address: hostAddress,
    /** Commands run on the machine running Pulumi and Docker is its local socket: no SSH. */
    local: z.boolean().default(false),
    /** Run every host script through `sudo -n` (for a login user that is not root). */
    sudo: z.boolean().default(false),
    ssh: sshSettings.optional(),
    /** The address range of Docker's default bridge on this host: co-located containers reach each other from it. */
    dockerBridgeSubnet: cidr.default("172.17.0.0/16"),
    /** Labs only: reach this host without checking its SSH host key (a warning at every run names it). */
    insecureSkipHostKeyCheck: z.boolean().default(false),
});

const rolesSchema = z.strictObject({
    redis: hostName,
    postgres: hostName,
    gitlab: z.array(hostName).min(1, "must list at least one GitLab host"),
    nfsServer: hostName.optional(),
    /** The host whose Gitaly keeps the repositories (GitLab's supported storage); unset: each node's own Gitaly on NFS. */
    gitaly: hostName.optional(),
    loadBalancer: hostName,
});

const railsValue = z.union([z.string().refine(v => !v.includes("\0"), "must not contain a NUL character"), z.number(), z.boolean()]);

/** The URL's host must be a DNS name or an address: it becomes nginx's server_name. */
function isPlainUrlHost(u: string): boolean {
    if (!URL.canParse(u)) return true;
    const url = new URL(u);
    return url.username === "" && url.password === "" && (/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(url.hostname) || /^\[[0-9a-fA-F:.]+\]$/.test(url.hostname));
}
/** A key that was removed: a stack that still sets it is told why, not only "unknown key". */
const removedKey = (why: string) => z.never({ error: `was removed: ${why}; delete it` }).optional();
const GIT_IDS_REMOVED = "the GitLab Docker image ignores user['uid'] and user['gid'] (it sets manage_accounts['enable'] = false) and its git user is 998:998 on every node, which is what the NFS share needs";

const gitlabSchema = z.strictObject({
    image: gitlabImage,
    externalUrl: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
        .refine(u => !URL.canParse(u) || (new URL(u).pathname === "/" && !new URL(u).search), "must have no path or query (relative URLs are not supported)")
        .refine(isPlainUrlHost, "must name its host by DNS name or address, with no user or password in it"),
    /** Host directory holding config/, logs/ and data/ of the Omnibus container. */
    dataRoot: ownPath("/srv/gitlab").default("/srv/gitlab"),
    gitUid: removedKey(GIT_IDS_REMOVED),
    gitGid: removedKey(GIT_IDS_REMOVED),
    /** Port each node's container SSH is published on (the host's own sshd keeps 22). */
    nodeSshPort: port.default(2222),
    /** How long to wait for a node's /-/readiness after start or reconfigure. */
    readinessTimeoutSeconds: z.number().int().min(30).max(7200).default(1200),
    /** Extra `gitlab_rails['<key>'] = value` settings. */
    rails: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, "must be a gitlab_rails key: lower-case letters, digits, '_'"), railsValue).default({}),
    /** Any Omnibus setting the program does not manage: `{ puma: { worker_processes: 4 } }` is `puma['worker_processes'] = 4`. */
    omnibus: z.record(z.string(), z.unknown()).superRefine((omnibus, ctx) => {
        for (const p of omnibusSettingProblems(omnibus)) ctx.addIssue({ code: "custom", path: [...p.path], message: p.message });
    }).transform(omnibus => omnibus as Record<string, Record<string, unknown>>).default({}),
});

/** Role names PostgreSQL reserves, and pg_hba.conf keywords (`all` there would admit every role). */
const RESERVED_ROLES = ["public", "none", "current_user", "session_user", "current_role", "all", "sameuser", "samerole", "samegroup", "replication"];
const postgresRole = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a plain lower-case identifier")
    .refine(u => u !== "postgres", "is PostgreSQL's superuser, whose password the program keeps apart (and the GitLab role is made NOSUPERUSER); name GitLab's own role, such as gitlab (the default)")
    .refine(u => !u.startsWith("pg_"), "is in PostgreSQL's reserved pg_ namespace: CREATE ROLE refuses it and the server logs the statement, with the password; use another name, such as gitlab (the default)")
    .refine(u => !RESERVED_ROLES.includes(u), `is reserved by PostgreSQL or pg_hba.conf (${RESERVED_ROLES.join(", ")}); use another name, such as gitlab (the default)`);
/** pg_hba.conf keywords (`all` would open every database) and the templates every new database is copied from. */
const RESERVED_DATABASES = ["all", "sameuser", "samerole", "samegroup", "replication", "template0", "template1"];

const postgresSchema = z.strictObject({
    image: pinnedImage.default(DEFAULT_IMAGES.postgres),
    port: port.default(5432),
    database: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a plain lower-case identifier")
        .refine(d => !RESERVED_DATABASES.includes(d), `is a pg_hba.conf keyword or a template database (${RESERVED_DATABASES.join(", ")}); use another name, such as gitlabhq_production (the default)`)
        .default("gitlabhq_production"),
    user: postgresRole.default("gitlab"),
    dataRoot: ownPath("/srv/gitlab-cluster/postgres").default("/srv/gitlab-cluster/postgres"),
    /** Replaces the max_connections derived from the GitLab nodes (components/render/postgres.ts). */
    maxConnections: z.number().int().min(SUPERUSER_RESERVED_CONNECTIONS + 1).max(POSTGRES_MAX_BACKENDS).optional(),
    /** Puma workers per GitLab node, for max_connections when gitlab.rb does not set them (Omnibus: one per CPU core). */
    pumaWorkersPerNode: z.number().int().min(1).max(1024).default(DEFAULT_ASSUMED_PUMA_WORKERS),
});

const redisSchema = z.strictObject({
    image: pinnedImage.default(DEFAULT_IMAGES.redis),
    port: port.default(6379),
    dataRoot: ownPath("/srv/gitlab-cluster/redis").default("/srv/gitlab-cluster/redis"),
});

/** Gitaly's default port (GitLab's docs use it throughout). */
export const GITALY_DEFAULT_PORT = 8075;

const gitalySchema = z.strictObject({
    /** Published on the Gitaly host's address, firewalled to the GitLab hosts. */
    port: port.default(GITALY_DEFAULT_PORT),
    /** Holds config/ (/etc/gitlab), logs/ and data/ (the repositories, on this host's own disk). */
    dataRoot: ownPath("/srv/gitlab-cluster/gitaly").default("/srv/gitlab-cluster/gitaly"),
});

const nfsSchema = z.strictObject({
    /** Exported on the NFS server and mounted at the same path on every other GitLab host. */
    path: ownPath("/srv/gitlab-nfs").default("/srv/gitlab-nfs"),
    mountOptions: z.array(z.string().regex(/^[a-z0-9_]+(=[A-Za-z0-9._-]+)?$/, "must be a mount option such as hard or rsize=1048576"))
        .default([...GITLAB_NFS_MOUNT_OPTIONS, "nosuid", "nodev"])
        .refine(o => !o.includes("soft") && !o.includes("nocto"), "must not contain 'soft' or 'nocto' (GitLab forbids them)")
        .refine(o => o.includes("nosuid") && o.includes("nodev") && !o.some(x => x === "suid" || x === "dev" || x === "defaults"),
            "must contain 'nosuid' and 'nodev', and not 'suid', 'dev' or 'defaults' (a setuid program or device planted on the share by one GitLab container must not work on another node)"),
});

const tlsSchema = z.strictObject({
    /** PEM certificate chain. */
    certificate: z.string().includes("BEGIN CERTIFICATE", { message: "must be a PEM certificate" }),
    /** PEM private key (a secret). */
    privateKey: z.string().includes("PRIVATE KEY", { message: "must be a PEM private key" }),
});

const loadBalancerSchema = z.strictObject({
    image: pinnedImage.default(DEFAULT_IMAGES.loadBalancer),
    /** Address the balancer's ports are published on. */
    listenAddress: ipAddress.default("0.0.0.0"),
    httpPort: port.default(80),
    httpsPort: port.default(443),
    /** Git over SSH, forwarded as TCP to the nodes' nodeSshPort; also gitlab_shell_ssh_port. */
    sshPort: port.default(2222),
    configRoot: ownPath("/srv/gitlab-cluster/nginx").default("/srv/gitlab-cluster/nginx"),
    tls: tlsSchema.optional(),
    proxyReadTimeoutSeconds: z.number().int().min(1).max(86400).default(3600),
    /** A node that is off drops the connection attempt: every request sent to it waits this out. */
    proxyConnectTimeoutSeconds: z.number().int().min(1)
        .max(UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS, `must be at most ${UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS}: a GitLab node that is off or hung drops the connection attempt, and every request the balancer sends it waits out this timeout before trying the next node`)
        .default(UPSTREAM_CONNECT_TIMEOUT_DEFAULT_SECONDS),
});

/** Cron's five fields, their names and ranges (day-of-week 7 is Sunday, as 0). */
const CRON_FIELDS: readonly { readonly name: string; readonly lo: number; readonly hi: number }[] = [
    { name: "minute", lo: 0, hi: 59 }, { name: "hour", lo: 0, hi: 23 }, { name: "day-of-month", lo: 1, hi: 31 },
    { name: "month", lo: 1, hi: 12 }, { name: "day-of-week", lo: 0, hi: 7 },
];
/** The longest each month can be (February: 29, in leap years). */
const MONTH_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The values one cron field matches, or why it is not a field (naming it). */
function cronFieldValues(field: string, i: number): Set<number> | string {
    const { name, lo, hi } = CRON_FIELDS[i]!;
    const values = new Set<number>();
    for (const part of field.split(",")) {
        const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
        if (!m) return `the ${name} field '${field}' is not a number, range (1-5), list (1,3) or step (*/15)`;
        const nums = [m[2], m[3]].filter((x): x is string => x !== undefined).map(Number);
        const outside = nums.find(n => n < lo || n > hi);
        if (outside !== undefined) return `the ${name} field '${field}' is out of range: ${outside} is not within ${lo}-${hi}`;
        const step = m[4] !== undefined ? Number(m[4]) : 1;
        if (step < 1) return `the ${name} field '${field}' has a step of 0`;
        if (nums.length === 2 && nums[0]! > nums[1]!) return `the ${name} field '${field}' is a range that runs backwards (${nums[0]}-${nums[1]})`;
        const from = nums[0] ?? lo;
        const to = m[1] === "*" ? hi : (nums[1] ?? (m[4] !== undefined ? hi : from));
        for (let v = from; v <= to; v += step) values.add(i === 4 && v === 7 ? 0 : v);
    }
    return values;
}

/**
 * Why a five-field cron schedule (minute hour day-of-month month day-of-week) is refused, or
 * undefined. Also refused: a schedule that names no real date (`0 3 30 2 *`). As in cron, when
 * both day fields are restricted (neither starts with `*`) a day matches either; then it runs.
 */
export function cronScheduleProblem(s: string): string | undefined {
    const fields = s.trim().split(/\s+/).filter(f => f !== "");
    if (fields.length !== 5) return `must be five fields (minute hour day-of-month month day-of-week) such as '0 3 * * *'; got ${fields.length}`;
    const values: Set<number>[] = [];
    for (const [i, field] of fields.entries()) {
        const v = cronFieldValues(field, i);
        if (typeof v === "string") return v;
        values.push(v);
    }
    const [, , days, months] = values as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
    const eitherDay = !fields[2]!.startsWith("*") && !fields[4]!.startsWith("*");
    // Every date falls on every weekday in some year: only day-of-month against month can rule out all.
    if (!eitherDay && ![...months].some(m => [...days].some(d => d <= MONTH_MAX_DAYS[m - 1]!))) {
        return `never runs: no month of '${fields[3]}' has a day '${fields[2]}' (February has at most 29 days, April, June, September and November 30)`;
    }
    return undefined;
}

/** Five-field cron: minute hour day-of-month month day-of-week, numbers, ranges, lists and steps; one that runs. */
export function isCronSchedule(s: string): boolean {
    return cronScheduleProblem(s) === undefined;
}

/** How many times an hour a valid schedule runs, at most (the minutes it names). */
export function cronRunsPerHour(s: string): number {
    const minutes = cronFieldValues(s.trim().split(/\s+/)[0] ?? "", 0);
    return typeof minutes === "string" ? 0 : minutes.size;
}

/**
 * An off-host copy: a host of the inventory and an absolute path there; the receiver refuses an
 * archive larger than maxArchiveGiB, or one that would leave less than minFreeGiB free.
 */
const offHostCopySchema = (examplePath: string) => z.strictObject({
    host: hostName, path: ownPath(examplePath),
    maxArchiveGiB: z.number().positive().max(1_000_000).default(DEFAULT_MAX_ARCHIVE_GIB),
    minFreeGiB: z.number().min(0).max(1_000_000).default(DEFAULT_MIN_FREE_GIB),
});

const backupSchema = z.strictObject({
    /** The GitLab host that backs up; default the migration node. */
    node: hostName.optional(),
    schedule: z.string().superRefine((schedule, ctx) => {
        const problem = cronScheduleProblem(schedule);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    }).default("0 3 * * *"),
    keepDays: z.number().int().min(1).max(3650).default(7),
    /** Optional off-host copy of the data archives (and of the /etc/gitlab archives when there is no secretsTarget). */
    target: offHostCopySchema("/srv/gitlab-backups").optional(),
    /** Optional off-host copy of the /etc/gitlab archives (gitlab-secrets.json, gitlab.rb): on another host than target. */
    secretsTarget: offHostCopySchema("/srv/gitlab-secrets-backups").optional(),
});

/** What a promotion (`npm run promote`, scripts/promotePlan.ts) does with one top-level key. */
export type ConfigKeyPromotion =
    /** Never copied: each stack keeps its own. */
    | "per-stack"
    /** Copied from the source stack except these sub-keys, which belong to each stack (a dotted path reaches further in: `omnibus.puma`). */
    | { readonly except: readonly string[] };

/** One `gitlab-cluster:<key>`: its schema, what it holds, and whether a promotion copies it. */
export interface ConfigKeySpec {
    readonly schema: z.ZodType;
    /** One line, plain text: README.md's configuration reference and Pulumi.yaml's key list show it (tests hold them to it). */
    readonly description: string;
    readonly promotion: ConfigKeyPromotion;
}

/**
 * Every `gitlab-cluster:<key>`, in the order the schema, errors and docs list them: the one list
 * of keys. The schema (clusterConfigSchema), CONFIG_KEYS and PROMOTABLE are built from it.
 * Pulumi.yaml's key list and README.md's key table are text, checked against it
 * (tests/stacks/projectFile.test.ts, tests/config/configKeys.test.ts): adding a key is an entry
 * here, and those tests print the lines to paste. Whether a key is required is the schema's say
 * (no default, not optional). Every key holds a map (readFlatConfig refuses anything else).
 *
 * Promotion: where each environment is reached and where it keeps its data stay per stack (dev
 * runs on one laptop with other paths and ports; those must not travel to staging or prod), and
 * so does every `secure:` value and every other namespace. gitlab.omnibus promotes like
 * gitlab.rails (SMTP, LDAP, OmniAuth, registry, monitoring are proven in staging first), except
 * Puma's and Sidekiq's sizing, which fits each stack's own hosts.
 */
export const CONFIG_KEY_TABLE = {
    hosts: {
        schema: z.record(hostName, hostSchema).refine(h => Object.keys(h).length > 0, "must name at least one host"),
        description: "the machines, by name: address, local or over SSH (overriding ssh), sudo, Docker's bridge range",
        promotion: "per-stack",
    },
    ssh: {
        schema: sshSettings.default({}),
        description: "SSH defaults for every host: user, port, the key (privateKey, a secret, or useAgent), host key",
        promotion: "per-stack",
    },
    roles: {
        schema: rolesSchema,
        description: "which host runs what: redis, postgres, gitlab (migration node first), nfsServer, gitaly, loadBalancer",
        promotion: "per-stack",
    },
    gitlab: {
        schema: gitlabSchema,
        description: "the GitLab nodes: pinned Omnibus image, external URL, data directory, SSH port, readiness wait, gitlab.rb settings",
        promotion: { except: ["externalUrl", "dataRoot", "nodeSshPort", "omnibus.puma", "omnibus.sidekiq"] },
    },
    postgres: {
        schema: postgresSchema.default(() => postgresSchema.parse({})),
        description: "PostgreSQL: image, port, database, role, data directory, connection sizing",
        promotion: { except: ["dataRoot", "port"] },
    },
    redis: {
        schema: redisSchema.default(() => redisSchema.parse({})),
        description: "Redis: image, port, data directory",
        promotion: { except: ["dataRoot", "port"] },
    },
    gitaly: {
        schema: gitalySchema.default(() => gitalySchema.parse({})),
        description: "the Gitaly node of roles.gitaly (repositories on its own disk): port, data directory",
        promotion: { except: ["dataRoot", "port"] },
    },
    nfs: {
        schema: nfsSchema.default(() => nfsSchema.parse({})),
        description: "the NFS share between the GitLab hosts (with roles.gitaly, no repositories on it): exported path, mount options",
        promotion: { except: ["path"] },
    },
    loadBalancer: {
        schema: loadBalancerSchema.default(() => loadBalancerSchema.parse({})),
        description: "nginx in front: image, listen address, ports, TLS, proxy timeouts, config directory",
        promotion: { except: ["tls", "listenAddress", "httpPort", "httpsPort", "sshPort", "configRoot"] },
    },
    backup: {
        schema: backupSchema.optional(),
        description: "scheduled backups (none when unset): node, schedule, retention, off-host copies",
        promotion: { except: ["node", "target", "secretsTarget"] },
    },
} as const satisfies Readonly<Record<string, ConfigKeySpec>>;

export type ConfigKey = keyof typeof CONFIG_KEY_TABLE;
type ConfigKeyTable = typeof CONFIG_KEY_TABLE;

/** The keys the program reads, in the table's order. */
export const CONFIG_KEYS: readonly ConfigKey[] = Object.keys(CONFIG_KEY_TABLE) as ConfigKey[];

/**
 * The settings a promotion copies: each promoted key, minus the sub-keys that belong to one stack
 * (a dotted path reaches further in: `omnibus.puma`). Keys absent here are never promoted.
 */
export const PROMOTABLE: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
    CONFIG_KEYS.flatMap(key => {
        const promotion: ConfigKeyPromotion = CONFIG_KEY_TABLE[key].promotion;
        return promotion === "per-stack" ? [] : [[key, promotion.except]];
    }));

/** The top-level object: each key's schema, with its own types (a mapped type, so z.infer sees each one). */
const topLevelShape = Object.fromEntries(CONFIG_KEYS.map(key => [key, CONFIG_KEY_TABLE[key].schema])) as { -readonly [K in ConfigKey]: ConfigKeyTable[K]["schema"] };

export const clusterConfigSchema = z.strictObject(topLevelShape);

export type ClusterConfigInput = z.input<typeof clusterConfigSchema>;
type ParsedConfig = z.output<typeof clusterConfigSchema>;

/** A host with its SSH settings resolved (host overrides over the `ssh` defaults). */
export interface HostConfig {
    readonly name: string;
    readonly address: string;
    readonly local: boolean;
    readonly sudo: boolean;
    readonly dockerBridgeSubnet: string;
    /** Set only by `hosts.<name>.insecureSkipHostKeyCheck` (labs); otherwise a remote host has `ssh.hostKey`. */
    readonly insecureSkipHostKeyCheck: boolean;
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

/** gitlab.rails settings whose names say they hold a secret (smtp_password, ..._token, otp_key_base). */
const SECRET_RAILS_KEY = /password|passwd|secret|token|private_key|key_base|api_key|access_key/i;

/** The keys that hold secrets, as key paths (a RegExp matches any key it accepts): stored encrypted, never echoed. */
export const SECRET_KEY_PATHS: readonly (readonly (string | RegExp)[])[] = [
    ["ssh", "privateKey"],
    ["hosts", /^/, "ssh", "privateKey"],
    ["loadBalancer", "tls", "privateKey"],
    ["gitlab", "rails", SECRET_RAILS_KEY],
    // gitlab.omnibus.<name>.<key>..., a secret-named key at any depth (LDAP's password, OmniAuth's app_secret).
    ...Array.from({ length: RUBY_MAX_DEPTH + 1 }, (_, depth) => ["gitlab", "omnibus", /^/, ...Array<RegExp>(depth).fill(/^/), SECRET_RAILS_KEY]),
];

const keyMatches = (segment: string | RegExp, key: PropertyKey) => (typeof segment === "string" ? segment === String(key) : segment.test(String(key)));

/** Whether `path` is a secret key, or lies inside one. */
export function isSecretKeyPath(path: readonly PropertyKey[]): boolean {
    return SECRET_KEY_PATHS.some(p => path.length >= p.length && p.every((segment, i) => keyMatches(segment, path[i]!)));
}

/** Whether the value at `path` may contain a secret key (`ssh`, `hosts.app1`, `loadBalancer.tls`, ...). */
function mayHoldSecret(path: readonly PropertyKey[]): boolean {
    return SECRET_KEY_PATHS.some(p => path.length < p.length && path.every((key, i) => keyMatches(p[i]!, key)));
}

/** A value for an error message: `[secret]` for a secret key's value, only the shape of a value that may hold one. */
function describe(value: unknown, path: readonly PropertyKey[] = []): string {
    if (value === undefined) return "nothing";
    if (isSecretKeyPath(path)) return "[secret]";
    if (mayHoldSecret(path) && value !== null && typeof value === "object") return Array.isArray(value) ? `a list of ${value.length}` : "an object";
    if (mayHoldSecret(path) && typeof value === "string") return "[secret]";
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
    let v: unknown = raw;
    for (const p of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
    return v;
}

export interface SecretFlags {
    /**
     * Whether the value at a key path (`ssh.privateKey`, `hosts.app2.ssh.privateKey`, without the
     * namespace) is stored encrypted in the stack. The engine tells a program only which top-level
     * keys hold an encrypted value (see loadClusterConfig); a stack file tells each leaf (secretLeaves).
     */
    readonly isSecret: (keyPath: string) => boolean;
}

/** The key paths of a stack file's `gitlab-cluster:*` values that are encrypted (`{ secure: ... }`), unprefixed. */
export function secretLeaves(stackConfig: Readonly<Record<string, unknown>>): string[] {
    const leaves: string[] = [];
    const walk = (value: unknown, at: string) => {
        if (value === null || typeof value !== "object") return;
        const obj = value as Record<string, unknown>;
        if (!Array.isArray(value) && Object.keys(obj).length === 1 && typeof obj.secure === "string") {
            leaves.push(at);
            return;
        }
        for (const [k, v] of Object.entries(obj)) walk(v, Array.isArray(value) ? `${at}[${k}]` : `${at}.${k}`);
    };
    for (const [key, value] of Object.entries(stackConfig)) {
        if (key.startsWith(`${CONFIG_NAMESPACE}:`)) walk(value, key.slice(CONFIG_NAMESPACE.length + 1));
        else if (!key.includes(":")) walk(value, key); // already unprefixed; other namespaces are not ours
    }
    return leaves;
}

/** Secret flags from a stack file's encrypted leaves: a key path is secret when it or a key above it is encrypted. */
export function secretFlagsOf(leaves: readonly string[]): SecretFlags {
    return { isSecret: keyPath => leaves.some(l => keyPath === l || keyPath.startsWith(`${l}.`)) };
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
            return value === undefined ? `${at}: ${msg}` : `${at}: ${msg} (got ${describe(value, issue.path)})`;
        }));
    }
    return checkCrossKeyRules(result.data, secrets);
}

/** The secret keys a configuration sets, each with the command that stores it encrypted. */
/** `["gitlab", "omnibus", "x", 0, "y"]` -> `gitlab.omnibus.x[0].y`, as secretLeaves and `pulumi config set --path` write it. */
const dottedPath = (path: readonly (string | number)[]) => path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i > 0 ? "." : ""}${p}`)).join("");

function secretKeysSet(cfg: ParsedConfig): { path: (string | number)[]; fix: string }[] {
    const set: { path: (string | number)[]; fix: string }[] = [];
    if (cfg.ssh.privateKey !== undefined) set.push({ path: ["ssh", "privateKey"], fix: "pulumi config set --secret --path ssh.privateKey < key" });
    for (const [name, h] of Object.entries(cfg.hosts)) {
        if (h.ssh?.privateKey !== undefined) set.push({ path: ["hosts", name, "ssh", "privateKey"], fix: `pulumi config set --secret --path 'hosts.${name}.ssh.privateKey' < key` });
    }
    if (cfg.loadBalancer.tls !== undefined) set.push({ path: ["loadBalancer", "tls", "privateKey"], fix: "pulumi config set --secret --path loadBalancer.tls.privateKey < key.pem" });
    for (const key of Object.keys(cfg.gitlab.rails)) {
        if (isSecretKeyPath(["gitlab", "rails", key])) set.push({ path: ["gitlab", "rails", key], fix: `pulumi config set --secret --path 'gitlab.rails.${key}'` });
    }
    // Strings only under gitlab.omnibus: a number or a switch under a secret-looking name is no secret.
    const walk = (value: unknown, path: (string | number)[]): void => {
        if (typeof value === "string" && isSecretKeyPath(path)) set.push({ path, fix: `pulumi config set --secret --path '${dottedPath(path)}'` });
        else if (Array.isArray(value)) value.forEach((v: unknown, i) => walk(v, [...path, i]));
        else if (value !== null && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
    };
    walk(cfg.gitlab.omnibus, ["gitlab", "omnibus"]);
    return set;
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
    // The NFS server may be a storage host of its own (then every GitLab host mounts the share, and
    // losing one GitLab host hangs no other), but not the balancer: its users' traffic passes there.
    if (cfg.roles.nfsServer !== undefined && cfg.roles.nfsServer === cfg.roles.loadBalancer && !cfg.roles.gitlab.includes(cfg.roles.nfsServer)) {
        problems.push(`${keyPath(["roles", "nfsServer"])}: "${cfg.roles.nfsServer}" is the load balancer: serve the share from a GitLab host or a storage host of its own`);
    }
    known(["roles", "gitaly"], cfg.roles.gitaly);
    const gitalyHost = cfg.roles.gitaly;
    if (gitalyHost !== undefined) {
        // Each runs an Omnibus container from the same data root and config directory.
        if (cfg.roles.gitlab.includes(gitalyHost)) {
            problems.push(`${keyPath(["roles", "gitaly"])}: "${gitalyHost}" is also in ${keyPath(["roles", "gitlab"])}: the Gitaly node needs a host of its own (GitLab runs Gitaly apart from the Rails nodes)`);
        }
        if (gitalyHost === cfg.roles.nfsServer) {
            problems.push(`${keyPath(["roles", "gitaly"])}: "${gitalyHost}" is also ${keyPath(["roles", "nfsServer"])}: the repositories and the NFS share would be lost together; use another host for one of them`);
        }
    }
    if (cfg.backup?.node !== undefined && !cfg.roles.gitlab.includes(cfg.backup.node)) {
        problems.push(`${keyPath(["backup", "node"])}: "${cfg.backup.node}" must be one of the GitLab hosts (${cfg.roles.gitlab.join(", ")})`);
    }
    known(["backup", "target", "host"], cfg.backup?.target?.host);
    known(["backup", "secretsTarget", "host"], cfg.backup?.secretsTarget?.host);
    const secretsHost = cfg.backup?.secretsTarget?.host;
    if (secretsHost !== undefined && secretsHost === cfg.backup?.target?.host) {
        problems.push(`${keyPath(["backup", "secretsTarget", "host"])}: "${secretsHost}" is also ${keyPath(["backup", "target", "host"])}: the /etc/gitlab archives ` +
            "(gitlab-secrets.json, gitlab.rb with every password) decrypt the data archives and must be stored apart from them, as GitLab's backup docs say; name another host");
    }
    if (secretsHost !== undefined && secretsHost === (cfg.backup?.node ?? cfg.roles.gitlab[0])) {
        problems.push(`${keyPath(["backup", "secretsTarget", "host"])}: "${secretsHost}" is the backup node, which keeps its own copy in <gitlab.dataRoot>/etc-backups; name another host`);
    }

    for (const key of Object.keys(cfg.gitlab.rails)) {
        if (MANAGED_RAILS_KEYS.includes(key)) {
            problems.push(`${keyPath(["gitlab", "rails", key])}: is set by the program (from the cluster's topology and generated secrets) and cannot be overridden`);
        }
    }
    // The schema checked gitlab.omnibus on its own; what is left is its overlap with gitlab.rails.
    for (const p of omnibusSettingProblems(cfg.gitlab.omnibus, cfg.gitlab.rails)) problems.push(`${keyPath(["gitlab", "omnibus", ...p.path])}: ${p.message}`);
    // Puma's and Sidekiq's settings also size PostgreSQL's max_connections: they must be countable.
    try { railsNodeDatabaseClients(cfg.gitlab.omnibus, cfg.postgres.pumaWorkersPerNode); } catch (err) { problems.push((err as Error).message); }
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
        const sshPort = ssh.port ?? 22;
        if (!h.local && ssh.hostKey === undefined && !h.insecureSkipHostKeyCheck) {
            problems.push(`${keyPath(["hosts", name, "ssh", "hostKey"])}: is required for a host reached over SSH: without it the deploy connection trusts whatever answers at ${h.address}. ` +
                `Pin it with: pulumi config set --path 'hosts.${name}.ssh.hostKey' "$(ssh-keyscan -t ed25519 -p ${sshPort} ${h.address} | cut -d' ' -f2-)" ` +
                `(compare the key with the host's console), or, for a lab only, set ${keyPath(["hosts", name, "insecureSkipHostKeyCheck"])}: true`);
        }
        if (h.insecureSkipHostKeyCheck && (h.local || ssh.hostKey !== undefined)) {
            problems.push(`${keyPath(["hosts", name, "insecureSkipHostKeyCheck"])}: ${h.local ? "has no effect on a local host (no SSH)" : "is set together with ssh.hostKey, which is then checked anyway"}; remove it`);
        }
        if (!h.local && ssh.privateKey === undefined && ssh.useAgent !== true) {
            problems.push(`${keyPath(["hosts", name])}: has no SSH key: set ${keyPath(["ssh", "privateKey"])} (a secret), hosts.${name}.ssh.privateKey, or ssh.useAgent: true`);
        }
        if (ssh.privateKey !== undefined && ssh.useAgent === true) {
            problems.push(`${keyPath(["hosts", name, "ssh"])}: sets both privateKey and useAgent; choose one so both connections use the same key`);
        }
        resolved[name] = {
            name, address: h.address, local: h.local, sudo: h.sudo, dockerBridgeSubnet: h.dockerBridgeSubnet, insecureSkipHostKeyCheck: h.insecureSkipHostKeyCheck,
            ssh: { user: ssh.user ?? "root", port: sshPort, privateKey: ssh.privateKey, useAgent: ssh.useAgent ?? false, hostKey: ssh.hostKey },
        };
    }
    // Each secret key on its own: a stack may hold one host's key encrypted and another's in plain text.
    for (const { path, fix } of secretKeysSet(cfg)) {
        if (!secrets.isSecret(dottedPath(path))) problems.push(`${keyPath(path)}: is stored in plain text; set it with \`${fix}\``);
    }
    const https = new URL(cfg.gitlab.externalUrl).protocol === "https:";
    if (https && cfg.loadBalancer.tls === undefined) {
        problems.push(`${keyPath(["loadBalancer", "tls"])}: is required because ${keyPath(["gitlab", "externalUrl"])} is https (TLS ends at the balancer)`);
    }
    // A digest-only PostgreSQL image says no version: then this check cannot run (gitlab.image always has its tag).
    const pgMajor = postgresMajor(cfg.postgres.image) ?? Number.NaN;
    const gitlabMajor = gitlabRelease(cfg.gitlab.image)?.major ?? Number.NaN;
    const minPg = gitlabMajor >= 18 ? 16 : gitlabMajor >= 17 ? 14 : 0;
    if (Number.isFinite(pgMajor) && Number.isFinite(gitlabMajor) && pgMajor < minPg) {
        problems.push(`${keyPath(["postgres", "image"])}: PostgreSQL ${pgMajor} is too old for GitLab ${gitlabMajor} (needs ${minPg} or newer)`);
    }
    problems.push(...layoutProblems(cfg, resolved));
    if (problems.length > 0) throw new ConfigError(problems);
    return { ...cfg, hosts: resolved };
}

/** One port a host listens on: the address it is bound to, and the key that decides it. */
interface PublishedPort {
    readonly address: string;
    readonly port: number;
    /** The key path that sets it (`["redis", "port"]`), and what listens there. */
    readonly key: readonly PropertyKey[];
    readonly what: string;
}

/** The address every interface answers at, in either family. */
const isWildcard = (a: string) => isIP(a) !== 0 && unspecifiedAddresses.check(a, familyOf(a));

/**
 * Every (address, port) the cluster publishes on each host, the host's own sshd included (it
 * listens on every address): two of them on one host would fail only at deploy, when Docker or
 * the container cannot bind.
 */
function publishedPorts(cfg: ParsedConfig, hosts: Readonly<Record<string, HostConfig>>): Map<string, PublishedPort[]> {
    const byHost = new Map<string, PublishedPort[]>();
    const add = (host: string, p: PublishedPort) => { if (host in hosts) byHost.set(host, [...(byHost.get(host) ?? []), p]); };
    for (const [name, h] of Object.entries(hosts)) {
        if (!h.local) {
            const key = cfg.hosts[name]?.ssh?.port !== undefined ? ["hosts", name, "ssh", "port"] : ["ssh", "port"];
            add(name, { address: "0.0.0.0", port: h.ssh.port, key, what: `the host's own sshd, which the deploy connects to` });
        }
    }
    const address = (host: string) => hosts[host]?.address ?? "";
    // Fixed ports first, so that a clash is reported on the key that can move.
    for (const g of new Set(cfg.roles.gitlab)) {
        add(g, { address: address(g), port: 80, key: ["roles", "gitlab"], what: "GitLab's HTTP port (80, fixed)" });
        add(g, { address: address(g), port: cfg.gitlab.nodeSshPort, key: ["gitlab", "nodeSshPort"], what: "GitLab's SSH" });
    }
    add(cfg.roles.redis, { address: address(cfg.roles.redis), port: cfg.redis.port, key: ["redis", "port"], what: "Redis" });
    add(cfg.roles.postgres, { address: address(cfg.roles.postgres), port: cfg.postgres.port, key: ["postgres", "port"], what: "PostgreSQL" });
    if (cfg.roles.gitaly !== undefined) add(cfg.roles.gitaly, { address: address(cfg.roles.gitaly), port: cfg.gitaly.port, key: ["gitaly", "port"], what: "Gitaly" });
    const lb = cfg.roles.loadBalancer;
    const listen = cfg.loadBalancer.listenAddress;
    add(lb, { address: listen, port: cfg.loadBalancer.httpPort, key: ["loadBalancer", "httpPort"], what: "the balancer's HTTP" });
    if (cfg.loadBalancer.tls !== undefined) add(lb, { address: listen, port: cfg.loadBalancer.httpsPort, key: ["loadBalancer", "httpsPort"], what: "the balancer's HTTPS" });
    add(lb, { address: listen, port: cfg.loadBalancer.sshPort, key: ["loadBalancer", "sshPort"], what: "the balancer's git-over-SSH" });
    return byHost;
}

/** The directories the program owns on each host, each with its key: none may be or hold another. */
function ownedPaths(cfg: ParsedConfig): Map<string, { path: string; key: readonly PropertyKey[] }[]> {
    const byHost = new Map<string, { path: string; key: readonly PropertyKey[] }[]>();
    const add = (host: string | undefined, path: string, key: readonly PropertyKey[]) => {
        if (host !== undefined) byHost.set(host, [...(byHost.get(host) ?? []), { path: normalPath(path), key }]);
    };
    const shared = cfg.roles.gitlab.length > 1;
    for (const g of new Set(cfg.roles.gitlab)) {
        add(g, cfg.gitlab.dataRoot, ["gitlab", "dataRoot"]);
        if (shared) add(g, cfg.nfs.path, ["nfs", "path"]);
    }
    add(cfg.roles.redis, cfg.redis.dataRoot, ["redis", "dataRoot"]);
    add(cfg.roles.postgres, cfg.postgres.dataRoot, ["postgres", "dataRoot"]);
    add(cfg.roles.gitaly, cfg.gitaly.dataRoot, ["gitaly", "dataRoot"]);
    // A storage host of its own exports the share too.
    if (shared && cfg.roles.nfsServer !== undefined && !cfg.roles.gitlab.includes(cfg.roles.nfsServer)) add(cfg.roles.nfsServer, cfg.nfs.path, ["nfs", "path"]);
    add(cfg.roles.loadBalancer, cfg.loadBalancer.configRoot, ["loadBalancer", "configRoot"]);
    add(cfg.backup?.target?.host, cfg.backup?.target?.path ?? "", ["backup", "target", "path"]);
    // A secrets target on the target's host is refused on its own (checkCrossKeyRules).
    if (cfg.backup?.secretsTarget?.host !== cfg.backup?.target?.host) add(cfg.backup?.secretsTarget?.host, cfg.backup?.secretsTarget?.path ?? "", ["backup", "secretsTarget", "path"]);
    return byHost;
}

/** Layouts that validate key by key but cannot deploy: two listeners on one port, one directory inside another. */
function layoutProblems(cfg: ParsedConfig, hosts: Readonly<Record<string, HostConfig>>): string[] {
    const problems: string[] = [];
    const sameKey = (a: readonly PropertyKey[], b: readonly PropertyKey[]) => keyPath(a) === keyPath(b);
    for (const [host, ports] of publishedPorts(cfg, hosts)) {
        ports.forEach((p, i) => {
            const clash = ports.slice(0, i).find(q => q.port === p.port && (q.address === p.address || isWildcard(q.address) || isWildcard(p.address)));
            if (clash === undefined) return;
            const both = sameKey(clash.key, p.key) ? `${keyPath(p.key)} (${p.what} and ${clash.what})` : `${keyPath(clash.key)} (${clash.what})`;
            problems.push(`${keyPath(p.key)}: port ${p.port} on host "${host}" (${hosts[host]?.address}) is also ${both}: only one can listen there, and the deploy would fail when the second binds; give one of them another port`);
        });
    }
    const inside = (a: string, b: string) => a === b || b === "/" || a.startsWith(`${b}/`);
    for (const [host, paths] of ownedPaths(cfg)) {
        paths.forEach((p, i) => {
            for (const q of paths.slice(0, i)) {
                if (sameKey(p.key, q.key) || !(inside(p.path, q.path) || inside(q.path, p.path))) continue;
                const how = p.path === q.path ? "is the same directory as" : inside(p.path, q.path) ? "is inside" : "holds";
                problems.push(`${keyPath(p.key)}: ${p.path} on host "${host}" ${how} ${keyPath(q.key)} (${q.path}): the program writes, chowns and mounts each on its own, so one would overwrite or expose the other; give each a directory of its own`);
            }
        });
    }
    return problems;
}

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
            const near = CONFIG_KEYS.find(k => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
            problems.push(`${fullKey}: unknown key (known: ${CONFIG_KEYS.join(", ")})${near !== undefined ? `; did you mean ${CONFIG_NAMESPACE}:${near}?` : ""}`);
            continue;
        }
        try {
            raw[key] = JSON.parse(text);
        } catch {
            problems.push(`${fullKey}: must be a map of settings (got ${describe(text, [key])}); write it as a YAML map in the stack file, or set each setting with pulumi config set --path '${key}.<setting>'`);
        }
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return raw;
}

/** Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
    const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            const row = d[i]!;
            row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
        }
    }
    return d[a.length]![b.length]!;
}

/**
 * Warnings for keys of the stack that the program never reads although they look meant for it:
 * a namespace one edit from `gitlab-cluster` (`gitlab_cluster:backup` would turn backups off
 * without a word). `allKeys` are every key of the stack (`pulumi.runtime.allConfig()`), any namespace.
 */
export function ignoredConfigWarnings(allKeys: readonly string[]): string[] {
    const warnings: string[] = [];
    for (const fullKey of allKeys) {
        const colon = fullKey.indexOf(":");
        if (colon < 0) continue;
        const namespace = fullKey.slice(0, colon);
        const key = fullKey.slice(colon + 1);
        if (namespace === CONFIG_NAMESPACE || editDistance(namespace.toLowerCase(), CONFIG_NAMESPACE) > 1) continue;
        const top = key.split(/[.[]/)[0] ?? key;
        const known = (CONFIG_KEYS as readonly string[]).includes(top);
        warnings.push(`${fullKey}: is ignored: its namespace "${namespace}" is not "${CONFIG_NAMESPACE}", the only one this program reads` +
            (known ? `; did you mean ${CONFIG_NAMESPACE}:${key}?` : `, and "${top}" is not one of its keys either (${CONFIG_KEYS.join(", ")})`));
    }
    return warnings;
}

/** Warnings for a valid configuration: settings that work but are likely mistakes. */
export function configWarnings(cfg: ClusterConfig): string[] {
    const warnings: string[] = [];
    if (cfg.roles.gitlab.length > 1 && cfg.roles.gitaly === undefined) {
        warnings.push(`${keyPath(["roles", "gitaly"])}: is not set, so the Git repositories are on the NFS share, which GitLab does not support for repository storage ` +
            "(since 15.6; its support declines issues about it). Set roles.gitaly to a host of its own: see README, \"Repository storage: Gitaly\".");
    }
    const schedule = cfg.backup?.schedule;
    if (schedule !== undefined && cronRunsPerHour(schedule) > 1) {
        warnings.push(`${keyPath(["backup", "schedule"])}: "${schedule}" runs a full backup ${cronRunsPerHour(schedule)} times an hour; each copies all of GitLab's data and takes longer than that on most instances, so runs overlap. Did you mean a daily schedule such as '0 3 * * *'?`);
    }
    return warnings;
}

/**
 * Reads and validates the stack's configuration. `isSecretKey` answers for a top-level key
 * (`gitlab-cluster:ssh`), which is all the engine tells a program: a key path counts as secret when
 * its top-level key holds an encrypted value. Stack files are checked leaf by leaf (secretLeaves).
 */
export function loadClusterConfig(flat: Readonly<Record<string, string>>, isSecretKey: (fullKey: string) => boolean): ClusterConfig {
    return parseClusterConfig(readFlatConfig(flat), { isSecret: path => isSecretKey(`${CONFIG_NAMESPACE}:${path.split(".")[0]}`) });
}
