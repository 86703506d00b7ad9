// PostgreSQL access rules and the idempotent SQL that creates GitLab's role, database and extensions.
import { shellQuote, sqlIdentifier, sqlString } from "./quote";
import { whenContainerExists } from "./scripts";

export interface PgHbaInput {
    readonly database: string;
    readonly user: string;
    /** Address ranges (CIDR) the GitLab nodes connect from. */
    readonly clientRanges: readonly string[];
}

/** pg_hba.conf: the local superuser by peer, the GitLab user by scram from the GitLab nodes only. */
export function renderPgHba(input: PgHbaInput): string {
    if (input.clientRanges.length === 0) throw new Error("pg_hba.conf needs at least one GitLab client range");
    const rows = [
        "# Managed by gitlab-cluster (Pulumi).",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "local   all       postgres           peer",
        ...[...new Set(input.clientRanges)].sort().map(r => `host    ${input.database}  ${input.user}  ${r}  scram-sha-256`),
    ];
    return `${rows.join("\n")}\n`;
}

/** The extensions GitLab needs in its database. */
export const GITLAB_EXTENSIONS = ["pg_trgm", "btree_gist", "plpgsql"];

/** SQL for psql run as the superuser: creates or updates the role, database and extensions. */
export function renderGitlabRoleSql(database: string, user: string, password: string): string {
    const role = sqlIdentifier(user);
    const db = sqlIdentifier(database);
    return [
        "\\set ON_ERROR_STOP on",
        "SET password_encryption = 'scram-sha-256';",
        `SELECT format('CREATE ROLE %I LOGIN', ${sqlString(user)}) WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${sqlString(user)}) \\gexec`,
        `ALTER ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEROLE PASSWORD ${sqlString(password)};`,
        `SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L', ${sqlString(database)}, ${sqlString(user)}, 'UTF8') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = ${sqlString(database)}) \\gexec`,
        `ALTER DATABASE ${db} OWNER TO ${role};`,
        `\\connect ${db}`,
        ...GITLAB_EXTENSIONS.map(e => `CREATE EXTENSION IF NOT EXISTS ${e};`),
        "",
    ].join("\n");
}

/**
 * What the PostgreSQL container runs: the official image's entrypoint reads
 * POSTGRES_PASSWORD_FILE on every start and exports the password as POSTGRES_PASSWORD to the
 * server it execs, where it would stay readable in /proc/1/environ. Given a command other than
 * `postgres`, that entrypoint runs it as is; this one initialises an empty data directory with
 * the image's docker-ensure-initdb.sh in a child process (the only step that needs the
 * password), then starts the server through the entrypoint without the password's variables.
 */
export const POSTGRES_START_SCRIPT = [
    "set -eu",
    "if command -v docker-ensure-initdb.sh >/dev/null 2>&1; then",
    "    docker-ensure-initdb.sh \"$@\"",
    "    unset POSTGRES_PASSWORD_FILE POSTGRES_PASSWORD",
    "else",
    "    echo \"gitlab-cluster: this postgres image has no docker-ensure-initdb.sh (built before December 2023): the superuser password stays in the server's environment\" >&2",
    "fi",
    "exec docker-entrypoint.sh \"$@\"",
    "",
].join("\n");

/**
 * Sizing PostgreSQL for GitLab's connections, after GitLab's "Tune PostgreSQL" page
 * (docs.gitlab.com/administration/postgresql/tune, "Plan your database connections"):
 *
 *   per node = 2 × ( puma    × (max_threads + DB_POOL_HEADROOM)
 *                  + sidekiq × (concurrency + 1 + DB_POOL_HEADROOM)
 *                  + 1 × (1 + DB_POOL_HEADROOM) )
 *   max_connections = max(400, sized-for nodes × per node + superuser_reserved_connections)
 *
 * Sized for the node count rounded up to a block of NODE_CAPACITY_BLOCK (a single node stays 1):
 * max_connections takes effect only at a server start, so a value that followed the node count
 * exactly would restart PostgreSQL, and every node with it, each time a node is added. Within a
 * block, adding a node changes nothing on the data host; crossing one restarts PostgreSQL once,
 * and the preview shows its container replaced. `postgres.maxConnections` overrides all this.
 *
 * The 2 is GitLab's two connection sets (`main` and `ci`, even on one database). The third term
 * is ours, not GitLab's: one more one-thread Rails process per node (gitlab-exporter's database
 * probes, gitlab-rake and gitlab-backup runs, the migration node's migrations), counted the way
 * GitLab counts its Geo log cursor. 400 is GitLab's minimum for an external server and what
 * Omnibus gives its own. Every GitLab node runs both Puma and Sidekiq here.
 */
export const DB_POOL_HEADROOM = 10;
/** GitLab's minimum `max_connections` for an external PostgreSQL; Omnibus's own server has 400 too. */
export const GITLAB_MIN_MAX_CONNECTIONS = 400;
/** PostgreSQL's default `superuser_reserved_connections`: slots the GitLab role can never take. */
export const SUPERUSER_RESERVED_CONNECTIONS = 3;
/** Omnibus's defaults at 18.4.1+ce.0 (files/gitlab-cookbooks/gitlab/attributes/default.rb). */
export const OMNIBUS_PUMA_MAX_THREADS = 4;
export const OMNIBUS_SIDEKIQ_CONCURRENCY = 20;
/** Puma workers assumed per node when gitlab.rb does not set them: GitLab's own example (8 vCPU). */
export const DEFAULT_ASSUMED_PUMA_WORKERS = 8;
/** PostgreSQL's ceiling for max_connections (MAX_BACKENDS, 2^18 - 1). */
export const POSTGRES_MAX_BACKENDS = 262143;

/** The processes of one GitLab node that hold database connections. */
export interface RailsNodeDatabaseClients {
    /** Puma worker processes: 0 when Puma is off; single mode (worker_processes = 0) is one process. */
    readonly pumaProcesses: number;
    readonly pumaMaxThreads: number;
    /** Sidekiq processes (one per entry of sidekiq['queue_groups']); 0 when Sidekiq is off. */
    readonly sidekiqProcesses: number;
    readonly sidekiqConcurrency: number;
}

/** Connections one GitLab node may open, by the formula above. */
export function railsNodeConnections(c: RailsNodeDatabaseClients): number {
    const puma = c.pumaProcesses * (c.pumaMaxThreads + DB_POOL_HEADROOM);
    const sidekiq = c.sidekiqProcesses * (c.sidekiqConcurrency + 1 + DB_POOL_HEADROOM);
    const otherRailsProcesses = 1 + DB_POOL_HEADROOM;
    return 2 * (puma + sidekiq + otherRailsProcesses);
}

/** The connections `gitlabNodes` nodes alike may open, plus the superuser's reserved slots. */
export function postgresConnectionDemand(gitlabNodes: number, perNode: RailsNodeDatabaseClients): number {
    if (!Number.isInteger(gitlabNodes) || gitlabNodes < 1) throw new Error(`max_connections needs a whole number of GitLab nodes, not ${gitlabNodes}`);
    return gitlabNodes * railsNodeConnections(perNode) + SUPERUSER_RESERVED_CONNECTIONS;
}

/** Nodes per capacity block that max_connections is sized for (see above). */
export const NODE_CAPACITY_BLOCK = 4;

/** The node count max_connections is sized for: one node, or the next whole block. */
export function sizedForNodes(gitlabNodes: number): number {
    if (!Number.isInteger(gitlabNodes) || gitlabNodes < 1) throw new Error(`max_connections needs a whole number of GitLab nodes, not ${gitlabNodes}`);
    return gitlabNodes === 1 ? 1 : Math.ceil(gitlabNodes / NODE_CAPACITY_BLOCK) * NODE_CAPACITY_BLOCK;
}

/** `max_connections` for `gitlabNodes` nodes alike, by the formula above (sized for the block). */
export function postgresMaxConnections(gitlabNodes: number, perNode: RailsNodeDatabaseClients): number {
    return Math.max(GITLAB_MIN_MAX_CONNECTIONS, postgresConnectionDemand(sizedForNodes(gitlabNodes), perNode));
}

/** One Omnibus setting as a whole number, or its default; `min` is the least value that makes sense. */
function wholeNumber(section: Readonly<Record<string, unknown>> | undefined, name: string, key: string, min: number, fallback: number): number {
    const value = section?.[key];
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
        throw new Error(`gitlab-cluster:gitlab.omnibus.${name}.${key}: must be a whole number from ${min} (it also sizes PostgreSQL's max_connections), not ${JSON.stringify(value)}`);
    }
    return value;
}

/** Omnibus's settings by name, as `gitlab.omnibus` holds them: `{ puma: { max_threads: 4 } }`. */
export type OmnibusSettings = Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>;

/** Whether `<name>['enable']` leaves the service on (Omnibus's default: on). */
function enabled(section: Readonly<Record<string, unknown>> | undefined, name: string): boolean {
    const value = section?.enable;
    if (value === undefined) return true;
    if (typeof value !== "boolean") throw new Error(`gitlab-cluster:gitlab.omnibus.${name}.enable: must be true or false, not ${JSON.stringify(value)}`);
    return value;
}

/**
 * The database clients of each GitLab node: from `gitlab.omnibus` where it sets them
 * (`puma.worker_processes`, `puma.max_threads`, `puma.enable`, `sidekiq.concurrency`,
 * `sidekiq.queue_groups`, `sidekiq.enable`), else Omnibus's defaults. Omnibus starts one Puma
 * worker per CPU core (fewer when memory is short), which the program cannot see:
 * `assumedPumaWorkers` stands in for it. Throws, naming the key, on a value it cannot count with.
 */
export function railsNodeDatabaseClients(omnibus: OmnibusSettings, assumedPumaWorkers: number): RailsNodeDatabaseClients {
    const puma = omnibus.puma;
    const sidekiq = omnibus.sidekiq;
    const queueGroups = sidekiq?.queue_groups;
    if (queueGroups !== undefined && (!Array.isArray(queueGroups) || queueGroups.length === 0)) {
        throw new Error(`gitlab-cluster:gitlab.omnibus.sidekiq.queue_groups: must be a non-empty list (one Sidekiq process per entry), not ${JSON.stringify(queueGroups)}`);
    }
    // Puma's single mode (worker_processes = 0) serves from the one master process.
    const workers = wholeNumber(puma, "puma", "worker_processes", 0, assumedPumaWorkers);
    return {
        pumaProcesses: enabled(puma, "puma") ? Math.max(1, workers) : 0,
        pumaMaxThreads: wholeNumber(puma, "puma", "max_threads", 1, OMNIBUS_PUMA_MAX_THREADS),
        sidekiqProcesses: enabled(sidekiq, "sidekiq") ? (queueGroups?.length ?? 1) : 0,
        sidekiqConcurrency: wholeNumber(sidekiq, "sidekiq", "concurrency", 1, OMNIBUS_SIDEKIQ_CONCURRENCY),
    };
}

export interface PostgresServerInput {
    /** pg_hba.conf's path inside the container. */
    readonly hbaFile: string;
    readonly maxConnections: number;
}

/**
 * The server's `-c` settings. On the command line they take precedence over postgresql.conf and
 * ALTER SYSTEM, so the program owns them; max_connections takes effect only at server start,
 * and a change of the command replaces the container. From GitLab's required settings for an
 * external server, also Omnibus's values for its own: work_mem 16MB (GitLab: at least 8MB; the
 * server's default is 4MB) and statement_timeout 60 s (GitLab: 15-60 s, Puma's own timeout).
 * maintenance_work_mem's default (64MB) is GitLab's minimum already. shared_buffers (GitLab: 2GB
 * or more, Omnibus: a quarter of the host's memory) depends on the host and keeps the image's 128MB.
 */
export function postgresServerArgs(input: PostgresServerInput): string[] {
    const n = input.maxConnections;
    if (!Number.isInteger(n) || n <= SUPERUSER_RESERVED_CONNECTIONS || n > POSTGRES_MAX_BACKENDS) {
        throw new Error(`max_connections must be a whole number above ${SUPERUSER_RESERVED_CONNECTIONS} and at most ${POSTGRES_MAX_BACKENDS}, not ${n}`);
    }
    return [
        "-c", `hba_file=${input.hbaFile}`,
        "-c", "password_encryption=scram-sha-256",
        "-c", `max_connections=${n}`,
        "-c", "work_mem=16MB",
        "-c", "statement_timeout=60000",
    ];
}

/** The container's command: the start script above, then `postgres` with `serverArgs`. */
export function postgresCommand(serverArgs: readonly string[]): string[] {
    return ["sh", "-c", POSTGRES_START_SCRIPT, "gitlab-cluster-postgres", "postgres", ...serverArgs];
}

/** The README section a refused PostgreSQL major change points to. */
export const POSTGRES_UPGRADE_RUNBOOK = "README.md, \"Upgrading PostgreSQL to a new major version\"";

export interface PostgresMajorCheckInput {
    /** The Docker volume holding the data directory. */
    readonly volume: string;
    /** The image about to run on it (already pulled). */
    readonly image: string;
}

/**
 * Runs before the PostgreSQL container is (re)created: a data directory records the major
 * version that wrote it in PG_VERSION, and a server of another major refuses to start on it
 * (PostgreSQL's on-disk format changes with each major). The program cannot see the previous
 * config, but the volume says it: read PG_VERSION through the new image (`--entrypoint cat`, the
 * volume read-only) and compare it with the major of the server binary the image holds
 * (`postgres --version`, not the tag: a digest names no version, and a tag could lie), and refuse
 * a difference before the old container is touched. A volume that does not exist yet, or holds no
 * PG_VERSION (not initialised), passes.
 */
export function postgresMajorCheckScript(input: PostgresMajorCheckInput): string {
    const volume = shellQuote(input.volume);
    const image = shellQuote(input.image);
    const label = (s: string) => s.replace(/[^A-Za-z0-9_.:@/-]/g, "?");
    return [
        "set -eu",
        `if ! docker volume inspect ${volume} >/dev/null 2>&1; then echo "volume ${label(input.volume)} does not exist yet: a new data directory"; exit 0; fi`,
        `found=$(docker run --rm --network none --entrypoint cat -v ${shellQuote(`${input.volume}:/d:ro`)} ${image} /d/PG_VERSION 2>/dev/null || true)`,
        `if [ -z "$found" ]; then echo "no PG_VERSION on the volume: a new data directory"; exit 0; fi`,
        `server=$(docker run --rm --network none --entrypoint postgres ${image} --version) || { echo "gitlab-cluster: cannot run 'postgres --version' in ${label(input.image)}" >&2; exit 1; }`,
        String.raw`version=$(printf '%s\n' "$server" | sed -n 's/^postgres (PostgreSQL) \([0-9][0-9.]*\).*/\1/p' | head -n 1)`,
        // Before 10 a major is two numbers (9.6), as PG_VERSION writes it; from 10 on, one.
        `case "$version" in [0-9].*) major=\${version%.*} ;; *) major=\${version%%.*} ;; esac`,
        `if [ -z "$major" ]; then echo "gitlab-cluster: cannot read PostgreSQL's version from ${label(input.image)}: $server" >&2; exit 1; fi`,
        `if [ "$found" != "$major" ]; then`,
        `    echo ${shellQuote(`gitlab-cluster: the PostgreSQL data on volume ${input.volume} was written by PostgreSQL `)}"$found"${shellQuote(` (its PG_VERSION), and postgres.image (${input.image}) runs PostgreSQL `)}"$major"${shellQuote(", which cannot start on it. Set postgres.image back to a PostgreSQL ")}"$found"${shellQuote(" release, or move the data to PostgreSQL ")}"$major"${shellQuote(` first (dump and restore, or pg_upgrade): ${POSTGRES_UPGRADE_RUNBOOK}.`)} >&2`,
        "    exit 1",
        "fi",
        `echo "PostgreSQL $found data, image PostgreSQL $major: same major"`,
        "",
    ].join("\n");
}

/** After pg_hba.conf changed: the running server reloads it (no restart, no dropped connections). */
export function postgresReloadScript(container: string): string {
    return whenContainerExists(container, `docker exec -u postgres ${shellQuote(container)} psql -X -qAt -c 'SELECT pg_reload_conf()' >/dev/null && echo "reloaded pg_hba.conf"`);
}

/** Runs the SQL on stdin as the superuser over the container's socket: a password in it never reaches a command line. */
export function postgresSqlFromStdinScript(container: string): string {
    return `docker exec -i -u postgres ${shellQuote(container)} psql -X -q -d postgres -f -`;
}
