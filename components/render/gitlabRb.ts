// gitlab.rb for one GitLab (Rails) node behind the balancer, with external PostgreSQL and Redis.
// Settings are GitLab's documented multi-node ones (see GITLAB-HA.md).
import { rubyString, rubyValue } from "./quote";

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
    readonly gitUid: number;
    readonly gitGid: number;
    /** Set on the migration node only: the password of `root` when the database is first seeded. */
    readonly initialRootPassword?: string;
    /** Backup archive retention, in seconds, on the backup node. */
    readonly backupKeepTimeSeconds?: number;
    readonly rails: Readonly<Record<string, string | number | boolean>>;
}

const LOCALHOST_RANGES = ["127.0.0.0/8", "::1/128"];

/** gitlab_rails keys this file sets itself: `gitlab.rails` may not override them. */
export const MANAGED_RAILS_KEYS = [
    "auto_migrate", "db_host", "db_port", "db_database", "db_username", "db_password", "redis_host", "redis_port",
    "redis_password", "trusted_proxies", "monitoring_whitelist", "gitlab_shell_ssh_port", "initial_root_password", "backup_keep_time",
];

export function renderGitlabRb(input: GitlabRbInput): string {
    const https = new URL(input.externalUrl).protocol === "https:";
    const set = (key: string, value: string | number | boolean | readonly string[]) => `${key} = ${rubyValue(value)}`;
    const rails = (key: string, value: string | number | boolean | readonly string[]) => set(`gitlab_rails['${key}']`, value);
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
        "# The same git uid/gid on every node: they share Git data over NFS.",
        set("user['uid']", input.gitUid),
        set("user['gid']", input.gitGid),
        "",
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
    const extra = Object.keys(input.rails).sort();
    if (extra.length > 0) {
        lines.push("", "# gitlab-cluster:gitlab.rails");
        for (const key of extra) lines.push(rails(key, input.rails[key]!));
    }
    return `${lines.join("\n")}\n`;
}
