// gitlab.rb for one GitLab (Rails) node behind the balancer, with external PostgreSQL and Redis.
// Settings are GitLab's documented multi-node ones (see GITLAB-HA.md).
import { rubyString, rubyValue, UnrepresentableValue, valuePath, type RubyLiteral } from "./quote";

export interface GitlabRbInput {
    readonly nodeName: string;
    readonly externalUrl: string;
    /** True on exactly one node: it runs database migrations. */
    readonly migrationNode: boolean;
    readonly database: { readonly host: string; readonly port: number; readonly name: string; readonly user: string; readonly password: string };
    readonly redis: { readonly host: string; readonly port: number; readonly password: string };
    /** Address ranges the balancer's requests come from: trusted for real IP, proxies and monitoring. */
    readonly balancerSources: readonly string[];
    /** The port git-over-SSH is reached on at the balancer. */
    readonly sshPort: number;
    /** Set on the migration node only: the password of `root` when the database is first seeded. */
    readonly initialRootPassword?: string;
    /** Backup archive retention, in seconds, on the backup node. */
    readonly backupKeepTimeSeconds?: number;
    readonly rails: Readonly<Record<string, string | number | boolean>>;
    /** `gitlab.omnibus`: `<name>['<key>'] = <value>` for any Omnibus setting the program does not manage. */
    readonly omnibus: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
    /** With a Gitaly node: repositories live there, and this node runs no Gitaly of its own. */
    readonly gitaly?: GitalyClientInput;
}

/** How a Rails node reaches the Gitaly node, and the secrets they share. */
export interface GitalyClientInput {
    readonly address: string;
    readonly port: number;
    /** Gitaly's auth token (secret). */
    readonly token: string;
    /** gitlab-shell's secret: Gitaly's git hooks call the Rails internal API with it (secret). */
    readonly shellSecret: string;
}

/** The one repository storage of the Gitaly layout, as Rails and Gitaly name it. */
export const GITALY_STORAGE = "default";
/** Where the Gitaly node keeps the repositories, inside its container (Omnibus's default). */
export const GITALY_STORAGE_PATH = "/var/opt/gitlab/git-data/repositories";

/** `tcp://host:port`, with an IPv6 address in brackets. */
export function gitalyAddress(address: string, port: number): string {
    return `tcp://${address.includes(":") ? `[${address}]` : address}:${port}`;
}

export interface GitalyRbInput {
    readonly nodeName: string;
    /** Gitaly's git hooks call GitLab's internal API here: the external URL, through the balancer. */
    readonly internalApiUrl: string;
    /** The port Gitaly listens on inside its container (published on the host's address). */
    readonly port: number;
    readonly token: string;
    readonly shellSecret: string;
    /** The `gitlab.omnibus` settings that apply to a Gitaly node (see GITALY_NODE_OMNIBUS). */
    readonly omnibus: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** The `gitlab.omnibus` names that reach the Gitaly node's gitlab.rb; the others are Rails settings. */
export const GITALY_NODE_OMNIBUS = ["gitaly", "logging", "logrotate"] as const;

/** The services an Omnibus node runs by default that a Gitaly-only node must not ("Configure Gitaly"). */
export const GITALY_NODE_DISABLED_SERVICES = [
    "postgresql", "redis", "nginx", "puma", "sidekiq", "gitlab_workhorse", "gitlab_exporter", "gitlab_kas", "prometheus_monitoring",
] as const;

/**
 * gitlab.rb of the Gitaly node: the same Omnibus image with only Gitaly running, as GitLab's
 * "Configure Gitaly" docs set it up for the Linux package.
 */
export function renderGitalyRb(input: GitalyRbInput): string {
    const stray = Object.keys(input.omnibus).filter(name => !(GITALY_NODE_OMNIBUS as readonly string[]).includes(name));
    if (stray.length > 0) throw new Error(`the Gitaly node takes only ${GITALY_NODE_OMNIBUS.join(", ")} settings, not ${stray.join(", ")}`);
    const refused = omnibusSettingProblems(input.omnibus);
    if (refused.length > 0) throw new Error(refused.map(p => `gitlab.omnibus.${valuePath(p.path)}: ${p.message}`).join("; "));
    const set = (key: string, value: RubyLiteral) => `${key} = ${rubyValue(value)}`;
    const lines = [
        "# Managed by gitlab-cluster (Pulumi): edits here are overwritten on the next `pulumi up`.",
        `# Node: ${input.nodeName.replace(/[^a-z0-9-]/g, "")} (Gitaly)`,
        "",
        "# Only Gitaly runs here.",
        ...GITALY_NODE_DISABLED_SERVICES.map(service => set(`${service}['enable']`, false)),
        set("gitlab_rails['rake_cache_clear']", false),
        set("gitlab_rails['auto_migrate']", false),
        "",
        "# Git hooks call GitLab's internal API through the balancer, with gitlab-shell's secret.",
        set("gitlab_rails['internal_api_url']", input.internalApiUrl),
        set("gitlab_shell['secret_token']", input.shellSecret),
        "",
        "# The GitLab nodes connect over TCP with the token; the host firewall admits only them.",
        `gitaly['configuration'] = {
  listen_addr: ${rubyString(`0.0.0.0:${input.port}`)},
  auth: { token: ${rubyString(input.token)} },
  storage: [{ name: ${rubyString(GITALY_STORAGE)}, path: ${rubyString(GITALY_STORAGE_PATH)} }],
}`,
    ];
    const omnibus = Object.keys(input.omnibus).sort().flatMap(name => Object.keys(input.omnibus[name]!).sort().map(key => [name, key] as const));
    if (omnibus.length > 0) {
        lines.push("", "# gitlab-cluster:gitlab.omnibus");
        for (const [name, key] of omnibus) lines.push(set(`${name}[${rubyString(key)}]`, input.omnibus[name]![key] as RubyLiteral));
    }
    return `${lines.join("\n")}\n`;
}

const LOCALHOST_RANGES = ["127.0.0.0/8", "::1/128"];

/** gitlab_rails keys this file sets itself: `gitlab.rails` may not override them. */
export const MANAGED_RAILS_KEYS = [
    "auto_migrate", "db_host", "db_port", "db_database", "db_username", "db_password", "redis_host", "redis_port",
    "redis_password", "trusted_proxies", "monitoring_whitelist", "gitlab_shell_ssh_port", "initial_root_password", "backup_keep_time",
    // The Gitaly layout's (set on the Rails nodes, or on the Gitaly node):
    "repositories_storages", "gitaly_token", "internal_api_url", "rake_cache_clear",
];

/**
 * Every top-level name of Omnibus's gitlab.rb: reconfigure loads the file in Mixlib::Config's
 * strict mode, which refuses any other name. Source: omnibus-gitlab, tag 18.4.1+ce.0,
 * files/gitlab-cookbooks/package/libraries/config/gitlab.rb (its `attribute`/`ee_attribute` and
 * `role` calls, and the defaults `node`, `roles`, `edition` it declares), checked against the
 * node['gitlab'] keys of files/gitlab-cookbooks/gitlab/attributes/default.rb. Read it again when
 * gitlab.image moves to another minor release. The stand-in loader's KNOWN list
 * (tests/integration/images/gitlab-standin/load_gitlab_rb.rb) must hold exactly these names: a test compares them.
 */
export const OMNIBUS_TOP_LEVEL = {
    /** Attribute hashes, set as `name['key'] = value`. */
    settings: [
        "actioncable", "alertmanager", "bootstrap", "consul", "crond", "geo_logcursor", "geo_postgresql", "geo_secondary",
        "git_data_dirs", "gitaly", "gitlab_backup_cli", "gitlab_ci", "gitlab_exporter", "gitlab_kas", "gitlab_kas_nginx",
        "gitlab_pages", "gitlab_rails", "gitlab_shell", "gitlab_sshd", "gitlab_workhorse", "high_availability", "letsencrypt",
        "logging", "logrotate", "mailroom", "manage_accounts", "manage_storage_directories", "mattermost", "mattermost_nginx",
        "nginx", "node_exporter", "package", "pages_nginx", "patroni", "pgbouncer", "pgbouncer_exporter", "postgres_exporter",
        "postgresql", "praefect", "prometheus", "prometheus_monitoring", "puma", "redis", "redis_exporter", "registry",
        "registry_nginx", "remote_syslog", "repmgr", "repmgrd", "sentinel", "sidekiq", "spamcheck", "storage_check",
        "suggested_reviewers", "unicorn", "user", "web_server",
    ],
    /** Single values: `external_url 'https://...'`, `roles ['application_role']`. */
    values: [
        "external_url", "git_data_dir", "gitlab_kas_external_url", "mattermost_external_url", "pages_external_url",
        "registry_external_url", "roles", "runtime_dir",
    ],
    /** Roles, `<name>_role['enable'] = true`. */
    roles: [
        "application_role", "consul_role", "geo_primary_role", "geo_secondary_role", "gitaly_role", "monitoring_role",
        "pages_role", "patroni_role", "pgbouncer_role", "postgres_role", "redis_master_role", "redis_replica_role",
        "redis_sentinel_role", "sidekiq_role", "spamcheck_role",
    ],
    /** Declared for the package's own use while it runs, not settings. */
    internal: ["edition", "node"],
} as const;

export const OMNIBUS_TOP_LEVEL_NAMES: readonly string[] = Object.values(OMNIBUS_TOP_LEVEL).flat();

/**
 * Settings this file writes itself, by top-level name: `gitlab.omnibus` may not set them (and
 * `gitlab.rails` may not set the gitlab_rails ones). A test renders every variant of this file and
 * checks that each setting it holds is listed here.
 */
export const MANAGED_OMNIBUS_SETTINGS: Readonly<Record<string, readonly string[]>> = {
    gitlab_rails: MANAGED_RAILS_KEYS,
    package: ["generate_default_secrets"],
    gitlab_kas: ["enable"],
    postgresql: ["enable"],
    redis: ["enable"],
    letsencrypt: ["enable"],
    gitaly: ["enable", "configuration"],
    gitlab_shell: ["secret_token"],
    nginx: ["listen_port", "listen_https", "proxy_set_headers", "real_ip_trusted_addresses", "real_ip_header", "real_ip_recursive"],
};

const offShare = (path: string) => `would move data off ${path}, where the program mounts the NFS share: the nodes would stop sharing it`;

/**
 * Settings this file leaves at Omnibus's default because the program relies on that default (the
 * NFS mounts, the backup scripts), and settings that do nothing in the GitLab Docker image:
 * refused, with the reason.
 */
export const REFUSED_OMNIBUS_SETTINGS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
    gitlab_rails: {
        uploads_directory: offShare("/var/opt/gitlab/gitlab-rails/uploads"),
        shared_path: offShare("/var/opt/gitlab/gitlab-rails/shared"),
        backup_path: "is /var/opt/gitlab/backups, where the program's backup and restore scripts find the archives",
    },
    gitlab_ci: { builds_directory: offShare("/var/opt/gitlab/gitlab-ci/builds") },
    user: Object.fromEntries(["uid", "gid"].map(k => [k, "is ignored by the GitLab Docker image, which sets manage_accounts['enable'] = false and fixes git at 998:998 (the same on every node, as the NFS share needs)"])),
};

/** Why a top-level name cannot take `name['key'] = value` settings here, or undefined when it can. */
function unsupportedTopLevel(name: string): string | undefined {
    if (name === "external_url") return "is set by the program, from gitlab.externalUrl";
    if (name === "git_data_dirs") return "was removed in GitLab 18.0 (reconfigure aborts on it): each node's Gitaly serves /var/opt/gitlab/git-data";
    if (name.endsWith("_external_url")) return "is a URL Omnibus serves on a host name of its own, and the balancer routes only gitlab.externalUrl: not supported";
    if (name === "roles" || (OMNIBUS_TOP_LEVEL.roles as readonly string[]).includes(name)) {
        return "assigns an Omnibus role, which decides the services a node runs: the cluster's roles decide that (every GitLab node is an application node)";
    }
    if ((OMNIBUS_TOP_LEVEL.values as readonly string[]).includes(name)) return `is a single value (${name} '...'), not a hash of settings: gitlab.omnibus writes only ${name}['key'] = value`;
    if ((OMNIBUS_TOP_LEVEL.internal as readonly string[]).includes(name)) return "is internal to Omnibus (the package sets it while it runs), not a gitlab.rb setting";
    if (!OMNIBUS_TOP_LEVEL_NAMES.includes(name)) {
        const near = OMNIBUS_TOP_LEVEL.settings.find(known => editDistance(known, name) <= 2);
        return `is not a top-level setting of Omnibus 18.4's gitlab.rb (reconfigure would fail on it)${near !== undefined ? `; did you mean ${near}?` : ""}`;
    }
    return undefined;
}

function editDistance(a: string, b: string): number {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        const next = [i];
        for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
        row = next;
    }
    return row[b.length]!;
}

export interface OmnibusProblem {
    /** Where, under gitlab.omnibus: `["gitlab_rails", "ldap_servers", "main", "password"]`. */
    readonly path: readonly (string | number)[];
    readonly message: string;
}

const isPlainObject = (v: unknown): v is Readonly<Record<string, unknown>> => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * What stops `gitlab.omnibus` from being written into gitlab.rb: a top-level name Omnibus does
 * not know or that takes no `['key']` settings, a setting the program manages or relies on (or
 * that does nothing in the image), one that `gitlab.rails` sets too, and a value Ruby cannot hold.
 */
export function omnibusSettingProblems(omnibus: Readonly<Record<string, unknown>>, rails: Readonly<Record<string, unknown>> = {}): OmnibusProblem[] {
    const problems: OmnibusProblem[] = [];
    for (const [name, settings] of Object.entries(omnibus)) {
        const unsupported = unsupportedTopLevel(name);
        if (unsupported !== undefined) {
            problems.push({ path: [name], message: unsupported });
            continue;
        }
        if (!isPlainObject(settings)) {
            problems.push({ path: [name], message: `must be a map of ${name}['<key>'] settings` });
            continue;
        }
        for (const [key, value] of Object.entries(settings)) {
            const at = [name, key];
            const refused = REFUSED_OMNIBUS_SETTINGS[name]?.[key];
            if (!/^[a-z][a-z0-9_]*$/.test(key)) problems.push({ path: at, message: "must be an Omnibus setting name: lower-case letters, digits, '_'" });
            else if (MANAGED_OMNIBUS_SETTINGS[name]?.includes(key)) problems.push({ path: at, message: "is set by the program (from the cluster's topology and generated secrets) and cannot be overridden" });
            else if (refused !== undefined) problems.push({ path: at, message: refused });
            else if (name === "gitlab_rails" && key in rails) problems.push({ path: at, message: `is also set as gitlab.rails.${key}: set it in one place` });
            else {
                try {
                    rubyValue(value as RubyLiteral); // checked here: rubyValue refuses what is not one
                } catch (err) {
                    if (!(err instanceof UnrepresentableValue)) throw err;
                    problems.push({ path: [...at, ...err.path], message: err.why.replace(/^it contains/, "must not contain") });
                }
            }
        }
    }
    return problems;
}

export function renderGitlabRb(input: GitlabRbInput): string {
    const refused = omnibusSettingProblems(input.omnibus, input.rails);
    if (refused.length > 0) throw new Error(refused.map(p => `gitlab.omnibus.${valuePath(p.path)}: ${p.message}`).join("; "));
    const https = new URL(input.externalUrl).protocol === "https:";
    const set = (key: string, value: RubyLiteral) => `${key} = ${rubyValue(value)}`;
    const rails = (key: string, value: RubyLiteral) => set(`gitlab_rails['${key}']`, value);
    const lines = [
        "# Managed by gitlab-cluster (Pulumi): edits here are overwritten on the next `pulumi up`.",
        `# Node: ${input.nodeName.replace(/[^a-z0-9-]/g, "")}${input.migrationNode ? " (migration node)" : ""}`,
        `external_url ${rubyString(input.externalUrl)}`,
        "",
        "# Exactly one node migrates the database; the others start after it is ready.",
        rails("auto_migrate", input.migrationNode),
        ...(input.migrationNode ? [] : [
            "# Secrets come from the migration node's gitlab-secrets.json only: a reconfigure here must",
            "# never generate one of its own (after an upgrade that adds a secret, nodes would differ).",
            set("package['generate_default_secrets']", false),
        ]),
        "",
        "# KAS keeps its private API on localhost: agent tunnels would break across nodes.",
        set("gitlab_kas['enable']", false),
        "",
        "# External PostgreSQL",
        set("postgresql['enable']", false),
        rails("db_host", input.database.host),
        rails("db_port", input.database.port),
        rails("db_database", input.database.name),
        rails("db_username", input.database.user),
        rails("db_password", input.database.password),
        "",
        "# External Redis",
        set("redis['enable']", false),
        rails("redis_host", input.redis.host),
        rails("redis_port", input.redis.port),
        rails("redis_password", input.redis.password),
        "",
        // No user['uid']/['gid']: the Docker image ignores them (manage_accounts['enable'] = false)
        // and its git user is 998:998 on every node, which is what the NFS share needs.
        "# Behind the load balancer",
        set("letsencrypt['enable']", false),
        set("nginx['listen_port']", 80),
        set("nginx['listen_https']", false),
        ...(https ? [`nginx['proxy_set_headers'] = { 'X-Forwarded-Proto' => 'https', 'X-Forwarded-Ssl' => 'on' }`] : []),
        set("nginx['real_ip_trusted_addresses']", input.balancerSources),
        set("nginx['real_ip_header']", "X-Forwarded-For"),
        set("nginx['real_ip_recursive']", "on"),
        rails("trusted_proxies", input.balancerSources),
        rails("monitoring_whitelist", [...LOCALHOST_RANGES, ...input.balancerSources]),
        rails("gitlab_shell_ssh_port", input.sshPort),
    ];
    if (input.initialRootPassword !== undefined) {
        lines.push("", "# Used once, when the migration node first seeds the database.", rails("initial_root_password", input.initialRootPassword));
    }
    if (input.backupKeepTimeSeconds !== undefined) {
        lines.push("", "# This node makes the scheduled backups.", rails("backup_keep_time", input.backupKeepTimeSeconds));
    }
    if (input.gitaly !== undefined) {
        lines.push(
            "",
            "# Repositories are on the Gitaly node (GitLab's supported storage): no Gitaly runs here.",
            set("gitaly['enable']", false),
            rails("repositories_storages", { [GITALY_STORAGE]: { gitaly_address: gitalyAddress(input.gitaly.address, input.gitaly.port) } }),
            rails("gitaly_token", input.gitaly.token),
            set("gitlab_shell['secret_token']", input.gitaly.shellSecret),
        );
    }
    const extra = Object.keys(input.rails).sort();
    if (extra.length > 0) {
        lines.push("", "# gitlab-cluster:gitlab.rails");
        for (const key of extra) lines.push(rails(key, input.rails[key]!));
    }
    const omnibus = Object.keys(input.omnibus).sort().flatMap(name => Object.keys(input.omnibus[name]!).sort().map(key => [name, key] as const));
    if (omnibus.length > 0) {
        // `name['key'] = value` merges into Omnibus's attribute hash; `name = {...}` would replace its defaults.
        lines.push("", "# gitlab-cluster:gitlab.omnibus");
        for (const [name, key] of omnibus) lines.push(set(`${name}[${rubyString(key)}]`, input.omnibus[name]![key] as RubyLiteral));
    }
    return `${lines.join("\n")}\n`;
}
