// PostgreSQL access rules and the idempotent SQL that creates GitLab's role, database and extensions.
import { sqlIdentifier, sqlString } from "./quote";

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

/** The container's command: the start script above, then `postgres` with `serverArgs`. */
export function postgresCommand(serverArgs: readonly string[]): string[] {
    return ["sh", "-c", POSTGRES_START_SCRIPT, "gitlab-cluster-postgres", "postgres", ...serverArgs];
}
