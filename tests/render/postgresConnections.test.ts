// Issue 12, finding 2: PostgreSQL's max_connections sized for the GitLab nodes (GitLab's
// "Tune PostgreSQL" formula), not left at the image's 100. The numbers are written out by hand
// here, so a change of the formula shows up as a changed expectation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseClusterConfig, type SecretFlags } from "../../components/config";
import {
    DB_POOL_HEADROOM, GITLAB_MIN_MAX_CONNECTIONS, postgresConnectionDemand, postgresMaxConnections, postgresServerArgs,
    railsNodeConnections, railsNodeDatabaseClients, type RailsNodeDatabaseClients, sizedForNodes } from "../../components/render/postgres";
import { nNodeConfig } from "../fixtures";

/** Omnibus 18.4 defaults on an 8-core node: 8 Puma workers × 4 threads, one Sidekiq of 20. */
const DEFAULTS: RailsNodeDatabaseClients = { pumaProcesses: 8, pumaMaxThreads: 4, sidekiqProcesses: 1, sidekiqConcurrency: 20 };
const allSecret: SecretFlags = { isSecret: () => true };

describe("PostgreSQL max_connections for GitLab", () => {
    it("counts a node as GitLab's page does, both connection sets, plus one more one-thread Rails process", () => {
        assert.equal(DB_POOL_HEADROOM, 10);
        // GitLab's 1k-user example: Puma 2 × 8 × (4 + 10) = 224, Sidekiq 2 × (20 + 1 + 10) = 62 (286),
        // and ours: 2 × (1 + 10) = 22 for rake, backups, migrations, gitlab-exporter.
        assert.equal(railsNodeConnections(DEFAULTS), 224 + 62 + 22);
        assert.equal(railsNodeConnections({ pumaProcesses: 0, pumaMaxThreads: 4, sidekiqProcesses: 0, sidekiqConcurrency: 20 }), 22);
        assert.equal(railsNodeConnections({ pumaProcesses: 4, pumaMaxThreads: 8, sidekiqProcesses: 2, sidekiqConcurrency: 10 }), 2 * (4 * 18 + 2 * 21 + 11));
    });

    it("1, 3 and 10 nodes: never below GitLab's 400, then sized-for nodes × per node + the superuser's 3 reserved slots", () => {
        assert.equal(GITLAB_MIN_MAX_CONNECTIONS, 400);
        assert.equal(postgresConnectionDemand(1, DEFAULTS), 311);
        assert.equal(postgresConnectionDemand(3, DEFAULTS), 927);
        assert.equal(postgresMaxConnections(1, DEFAULTS), 400);
        // Sized for the next block of 4 nodes: 3 -> 4, 10 -> 12.
        assert.deepEqual([1, 2, 3, 4, 5, 8, 9, 10].map(sizedForNodes), [1, 4, 4, 4, 8, 8, 12, 12]);
        assert.equal(postgresMaxConnections(3, DEFAULTS), 4 * 308 + 3);
        assert.equal(postgresMaxConnections(10, DEFAULTS), 12 * 308 + 3);
        const small: RailsNodeDatabaseClients = { ...DEFAULTS, pumaProcesses: 2 };
        assert.equal(postgresMaxConnections(3, small), 4 * 2 * (2 * 14 + 31 + 11) + 3); // 563: 2-core nodes
        assert.throws(() => postgresMaxConnections(0, DEFAULTS), /whole number of GitLab nodes/);
    });

    it("adding a node within a block of 4 leaves max_connections (and so the PostgreSQL container) alone; crossing one changes it", () => {
        assert.equal(postgresMaxConnections(2, DEFAULTS), postgresMaxConnections(4, DEFAULTS));
        assert.notEqual(postgresMaxConnections(4, DEFAULTS), postgresMaxConnections(5, DEFAULTS));
    });

    it("reads Puma and Sidekiq from gitlab.omnibus when it has them, else Omnibus's defaults and the assumed workers", () => {
        assert.deepEqual(railsNodeDatabaseClients({}, 8), DEFAULTS);
        assert.deepEqual(railsNodeDatabaseClients({}, 2), { ...DEFAULTS, pumaProcesses: 2 });
        assert.deepEqual(railsNodeDatabaseClients({
            puma: { worker_processes: 4, max_threads: 8 }, sidekiq: { concurrency: 10, queue_groups: ["*", "mailers"] }, nginx: { listen_port: 80 },
        }, 8), { pumaProcesses: 4, pumaMaxThreads: 8, sidekiqProcesses: 2, sidekiqConcurrency: 10 });
        // Puma's single mode is one process; a service turned off holds none.
        assert.equal(railsNodeDatabaseClients({ puma: { worker_processes: 0 } }, 8).pumaProcesses, 1);
        assert.equal(railsNodeDatabaseClients({ puma: { enable: false } }, 8).pumaProcesses, 0);
        assert.equal(railsNodeDatabaseClients({ sidekiq: { enable: false } }, 8).sidekiqProcesses, 0);
    });

    it("names the key of an Omnibus setting it cannot count with", () => {
        const clients = (omnibus: Record<string, Record<string, unknown>>) => () => railsNodeDatabaseClients(omnibus, 8);
        assert.throws(clients({ puma: { max_threads: "4" } }), /^Error: gitlab-cluster:gitlab\.omnibus\.puma\.max_threads: must be a whole number from 1 .*not "4"$/);
        assert.throws(clients({ puma: { worker_processes: -1 } }), /gitlab\.omnibus\.puma\.worker_processes: must be a whole number from 0/);
        assert.throws(clients({ sidekiq: { concurrency: 2.5 } }), /gitlab\.omnibus\.sidekiq\.concurrency: must be a whole number from 1/);
        assert.throws(clients({ sidekiq: { queue_groups: [] } }), /gitlab\.omnibus\.sidekiq\.queue_groups: must be a non-empty list/);
        assert.throws(clients({ sidekiq: { enable: "yes" } }), /gitlab\.omnibus\.sidekiq\.enable: must be true or false/);
    });

    it("puts max_connections on the server's command line, and GitLab's required work_mem and statement_timeout", () => {
        const args = postgresServerArgs({ hbaFile: "/etc/pg/pg_hba.conf", maxConnections: 927 });
        assert.deepEqual(args, [
            "-c", "hba_file=/etc/pg/pg_hba.conf", "-c", "password_encryption=scram-sha-256",
            "-c", "max_connections=927", "-c", "work_mem=16MB", "-c", "statement_timeout=60000",
        ]);
        for (const bad of [3, 0, 1.5, 262144, Number.NaN]) assert.throws(() => postgresServerArgs({ hbaFile: "/x", maxConnections: bad }), /max_connections must be a whole number/);
    });
});

describe("postgres.maxConnections / postgres.pumaWorkersPerNode", () => {
    const withPostgres = (postgres: Record<string, unknown>) => { const raw = nNodeConfig(3); raw.postgres = postgres; return raw; };

    it("default to no override and 8 assumed Puma workers", () => {
        const cfg = parseClusterConfig(nNodeConfig(3), allSecret);
        assert.equal(cfg.postgres.maxConnections, undefined);
        assert.equal(cfg.postgres.pumaWorkersPerNode, 8);
        assert.equal(parseClusterConfig(withPostgres({ maxConnections: 250, pumaWorkersPerNode: 4 }), allSecret).postgres.maxConnections, 250);
    });

    it("a gitlab.omnibus Puma or Sidekiq value that cannot be counted is a config problem, found before anything is created", () => {
        const raw = nNodeConfig(3);
        raw.gitlab.omnibus = { puma: { max_threads: "8" } };
        assert.throws(() => parseClusterConfig(raw, allSecret),
            (err: unknown) => err instanceof ConfigError && err.problems.some(p => p.startsWith("gitlab-cluster:gitlab.omnibus.puma.max_threads: must be a whole number")));
    });

    it("refuse what PostgreSQL would refuse, naming the key", () => {
        for (const [key, value] of [["maxConnections", 3], ["maxConnections", 262144], ["maxConnections", 100.5], ["maxConnections", "400"], ["pumaWorkersPerNode", 0], ["pumaWorkersPerNode", 2.5]] as const) {
            assert.throws(() => parseClusterConfig(withPostgres({ [key]: value }), allSecret),
                (err: unknown) => err instanceof ConfigError && err.message.includes(`gitlab-cluster:postgres.${key}`), `${key} = ${JSON.stringify(value)}`);
        }
    });
});
