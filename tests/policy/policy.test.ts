// The policy pack's checks, each on resources of a real evaluation of the three-node example
// (compliant) and on the same resources made non-compliant.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type {} from "../../policy/index"; // type-checks the pack's entry point without starting its server
import { UnknownValueError } from "@pulumi/policy";
import * as policyProxy from "@pulumi/policy/proxy";
import { isPinnedImage as configPins } from "../../components/config";
import {
    checkDatabasePorts, checkMonitoringAllowlist, checkNfsExports, checkPinnedImage, checkPlainTextSecrets, checkRestartAndHealthcheck,
    COMMAND_TYPES, CONTAINER, isPinnedImage, monitoringAllowlistEntries, policies, REMOTE_IMAGE, secretValuesOf,
} from "../../policy/policies";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import * as path from "node:path";
import { threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("policy-keys");
type Props = Record<string, unknown>;
type Check = (type: string, props: Props) => string[];

/** A deep copy of a recorded resource's inputs, to break. */
const inputsOf = (r: RecordedResource): Props => structuredClone(r.inputs) as Props;

/** Every recorded resource's violations of `check`. */
function violations(e: Evaluation, check: Check): string[] {
    return e.resources.flatMap(r => check(r.type, r.inputs as Props).map(v => `${r.name}: ${v}`));
}

/** The values of the inputs the engine marks secret (`stdin`, `connection.privateKey`, ...). */
function engineSecrets(e: Evaluation): string[] {
    const at = (obj: unknown, p: string) => p.split(/\.|\[(\d+)\]/).filter(Boolean).reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
    return e.resources.flatMap(r => r.secretInputs.map(p => at(r.inputs, p))).filter((v): v is string => typeof v === "string");
}

describe("policy pack", () => {
    let e: Evaluation;
    const allChecks: [string, Check][] = [
        ["pinned images", checkPinnedImage], ["restart and healthcheck", checkRestartAndHealthcheck], ["database ports", checkDatabasePorts],
        ["nfs exports", checkNfsExports], ["plain-text secrets", (t, p) => checkPlainTextSecrets(t, p)], ["monitoring allowlist", checkMonitoringAllowlist],
    ];
    before(async () => { e = await evaluate(threeNodeConfig()); });

    it("has every policy mandatory", () => {
        assert.deepEqual(policies.map(p => p.enforcementLevel), policies.map(() => "mandatory"));
        assert.equal(new Set(policies.map(p => p.name)).size, policies.length);
    });

    it("passes the three-node example and every stack file", async () => {
        for (const [name, check] of allChecks) assert.deepEqual(violations(e, check), [], name);
        for (const stack of ["dev", "staging", "prod"]) {
            const file = readStackFile(path.resolve(__dirname, "..", "..", "..", `Pulumi.${stack}.yaml`));
            const s = await evaluate(file.config, { stack, secretKeys: file.secretKeys });
            for (const [name, check] of allChecks) assert.deepEqual(violations(s, check), [], `${stack}: ${name}`);
        }
    });

    it("(a) refuses a floating image tag on RemoteImage and Container", () => {
        const image = e.byName("gitlab-gitlab-app1-image");
        assert.equal(image.type, REMOTE_IMAGE);
        for (const name of ["gitlab/gitlab-ce:latest", "gitlab/gitlab-ce", "registry:5000/gitlab/gitlab-ce"]) {
            assert.equal(checkPinnedImage(REMOTE_IMAGE, { ...inputsOf(image), name }).length, 1, name);
        }
        assert.deepEqual(checkPinnedImage(REMOTE_IMAGE, { ...inputsOf(image), name: `gitlab/gitlab-ce@sha256:${"0".repeat(64)}` }), []);
        assert.match(checkPinnedImage(CONTAINER, { ...inputsOf(e.byName("gitlab-redis")), image: "redis:latest" })[0]!, /floats/);
        assert.equal(checkPinnedImage(CONTAINER, { ...inputsOf(e.byName("gitlab-redis")), image: undefined }).length, 1);
    });

    it("(b) refuses a container without a restart policy or healthcheck", () => {
        const redis = inputsOf(e.byName("gitlab-redis"));
        assert.equal(checkRestartAndHealthcheck(CONTAINER, { ...redis, restart: "no" }).length, 1);
        assert.equal(checkRestartAndHealthcheck(CONTAINER, { ...redis, restart: undefined }).length, 1);
        assert.match(checkRestartAndHealthcheck(CONTAINER, { ...redis, healthcheck: undefined })[0]!, /no healthcheck/);
        assert.equal(checkRestartAndHealthcheck(CONTAINER, { ...redis, healthcheck: { tests: ["NONE"] } }).length, 1);
    });

    it("(c) refuses PostgreSQL or Redis published on 0.0.0.0 or without an address", () => {
        const pg = inputsOf(e.byName("gitlab-postgres"));
        const ports = pg.ports as { ip?: string }[];
        assert.match(checkDatabasePorts(CONTAINER, { ...pg, ports: [{ ...ports[0], ip: "0.0.0.0" }] })[0]!, /PostgreSQL port 5432 is published on 0\.0\.0\.0/);
        assert.match(checkDatabasePorts(CONTAINER, { ...pg, ports: [{ ...ports[0], ip: undefined }] })[0]!, /every interface/);
        const redis = inputsOf(e.byName("gitlab-redis"));
        assert.match(checkDatabasePorts(CONTAINER, { ...redis, ports: [{ internal: 6379, external: 16379, ip: "::" }] })[0]!, /Redis/);
        // The balancer may listen everywhere: its ports are not the databases'.
        assert.deepEqual(checkDatabasePorts(CONTAINER, inputsOf(e.byName("gitlab-lb"))), []);
    });

    it("(d) refuses an NFS export to *", () => {
        const exp = inputsOf(e.byName("gitlab-nfs-export"));
        assert.ok(COMMAND_TYPES.includes(e.byName("gitlab-nfs-export").type));
        const create = exp.create as string;
        assert.match(create, /10\.0\.0\.12\(rw/);
        const star = create.replace(/10\.0\.0\.12\(/, "*(");
        assert.match(checkNfsExports("command:remote:Command", { ...exp, create: star })[0]!, /names "\*"/);
        assert.equal(checkNfsExports("command:local:Command", { ...exp, create: create.replace(/10\.0\.0\.13\(/, "*.example.com(") }).length, 1);
        assert.equal(checkNfsExports("command:remote:Command", { create: "echo '/srv/gitlab-nfs *(rw,sync)' >> /etc/exports\nexportfs -ra\n" }).length, 1);
        assert.equal(checkNfsExports("command:remote:Command", { create: "exportfs -o rw '*:/srv/gitlab-nfs'\n" }).length, 1);
    });

    it("(e) refuses secrets in plain text: by shape, and values the engine marks secret", () => {
        const secrets = [...engineSecrets(e), ...secretValuesOf(e.resources.map(r => ({ type: r.type, props: r.inputs as Props })))];
        assert.ok(secrets.some(s => s.includes("PRIVATE KEY")), "the SSH key is among the secret values");
        const checked = e.resources.flatMap(r => checkPlainTextSecrets(r.type, r.inputs as Props, secrets));
        assert.deepEqual(checked, [], "no real resource leaks a secret");

        const pg = inputsOf(e.byName("gitlab-postgres"));
        const leak = (props: Props, type = CONTAINER) => checkPlainTextSecrets(type, props, secrets);
        assert.match(leak({ ...pg, envs: [...(pg.envs as string[]), "POSTGRES_PASSWORD=hunter2-hunter2"] })[0]!, /envs\[2\] holds a password assignment/);
        assert.match(leak({ ...pg, command: ["redis-server", "--requirepass", "s3cret-value"] })[0]!, /requirepass/);
        assert.match(leak({ ...pg, labels: [{ label: "gitlab.rb", value: "gitlab_rails['db_password'] = 'x1'" }] })[0]!, /labels\[0\] holds a GitLab secret setting/);
        const role = e.byName("gitlab-postgres-gitlab-role");
        const roleSql = role.inputs.stdin as string;
        assert.ok(role.secretInputs.includes("stdin"));
        assert.match(leak({ ...inputsOf(role), create: `psql -c "${roleSql}"` }, role.type)[0]!, /create holds a SQL PASSWORD literal/);
        const key = (e.byName("gitlab-nfs-export").inputs.connection as { privateKey: string }).privateKey;
        assert.match(leak({ create: `printf '%s' '${key}' > /root/.ssh/id` }, "command:remote:Command")[0]!, /PEM private key/);
        // A generated password, with nothing around it that looks like a secret: only its value gives it away.
        const generated = secrets.find(s => s.startsWith("mock-password-"))!;
        const byValue = leak({ ...pg, command: ["postgres", "-c", `shared_preload_libraries=${generated}`] });
        assert.deepEqual(byValue, ["command holds a value the stack keeps as a secret, in plain text: send it as a secret (stdin, or a 0600 file)"]);
        assert.ok(!byValue.join().includes(generated), "the message does not repeat the secret");
        // References to a secret are fine.
        assert.deepEqual(leak({ envs: ["POSTGRES_PASSWORD_FILE=/run/secrets/pg", "REDIS_PASSWORD=$REDIS_PASSWORD"], command: ["sh", "-c", "PGPASSWORD=\"$(cat /run/secrets/pg)\" psql"] }), []);
    });

    it("(f) refuses 0.0.0.0/0 in the monitoring allowlist of gitlab.rb", () => {
        const push = e.byName("gitlab-gitlab-app1-gitlab-rb");
        assert.ok(push.secretInputs.includes("stdin"), "stdin is secret to the engine, plain to the policy");
        const rb = push.inputs.stdin as string;
        assert.match(rb, /^gitlab_rails\['monitoring_whitelist'\] = \[/m);
        const open = rb.replace(/^(gitlab_rails\['monitoring_whitelist'\] = \[)/m, "$1'0.0.0.0/0', ");
        assert.match(checkMonitoringAllowlist(push.type, { ...inputsOf(push), stdin: open })[0]!, /allows 0\.0\.0\.0\/0/);
        // A later gitlab.rails override wins in Ruby: it is checked too.
        assert.equal(checkMonitoringAllowlist(push.type, { ...inputsOf(push), stdin: `${rb}gitlab_rails['monitoring_whitelist'] = ["::/0"]\n` }).length, 1);
    });
    const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

    it("(a) refuses release lines that move (redis:7, postgres:16, redis:7.2), and agrees with the stack config on every reference", () => {
        const image = inputsOf(e.byName("gitlab-redis-image"));
        for (const name of ["redis:7", "postgres:16", "redis:7.2", "redis:7-bookworm", "postgres:16-alpine", "nginx:1.30", "nginx:stable", "redis:alpine3.20", "postgres", "redis:latest"]) {
            assert.match(checkPinnedImage(REMOTE_IMAGE, { ...image, name })[0] ?? "", /floats/, name);
        }
        for (const name of [`redis@${DIGEST}`, `redis:7@${DIGEST}`, `registry.example.com:5000/redis:7.2.16-bookworm@${DIGEST}`, "redis:7.2.16-bookworm", "postgres:16.15-bookworm", "nginx:1.30.4-trixie", "gitlab/gitlab-ee:18.4.1-ee.0", "example/tool:v1.2"]) {
            assert.deepEqual(checkPinnedImage(REMOTE_IMAGE, { ...image, name }), [], name);
        }
        const corpus = ["redis:7", "redis:7.2", "redis:7.2.16", "redis:7.2.16-bookworm", "postgres:16", "postgres:16.15", "postgres:16-bookworm", "nginx", "nginx:latest", "nginx:1.30.4",
            `nginx@${DIGEST}`, `nginx:1@${DIGEST}`, "gitlab/gitlab-ce:18.4.1-ce.0", "gitlab/gitlab-ce:18.4", "registry:5000/x/y:2.0", "registry:5000/x/y", "x:bookworm", "x:v2", "x:v2.1", "X:1.2", "x:1.2@sha256:abc"];
        for (const ref of corpus) assert.equal(isPinnedImage(ref), configPins(ref), `policy and config disagree on ${ref}`);
    });

    it("(c) knows PostgreSQL and Redis by what they are, and checks every published port of theirs", () => {
        const pg = inputsOf(e.byName("gitlab-postgres"));
        const redis = inputsOf(e.byName("gitlab-redis"));
        // Another internal port, or a published port that is not the default: still the database.
        assert.match(checkDatabasePorts(CONTAINER, { ...pg, ports: [{ internal: 5433, external: 15432, ip: "0.0.0.0" }] })[0]!, /^PostgreSQL port 5433 .* on 0\.0\.0\.0/);
        assert.match(checkDatabasePorts(CONTAINER, { ...redis, ports: [{ internal: 16379, external: 16379 }] })[0]!, /^Redis port 16379 .* every interface/);
        for (const ip of ["::0", "[::]", "0:0:0:0:0:0:0:0", "", "0.0.0.0"]) {
            assert.equal(checkDatabasePorts(CONTAINER, { ...redis, ports: [{ internal: 6379, external: 6379, ip }] }).length, 1, ip);
        }
        // Known by each of: image name, program, environment, healthcheck, container name.
        const bare = { ports: [{ internal: 7000, external: 7000, ip: "0.0.0.0" }] };
        for (const [props, service] of [
            [{ ...bare, image: "bitnami/postgresql:16.15.0" }, "PostgreSQL"], [{ ...bare, image: `valkey/valkey:8.1.1@${DIGEST}` }, "Redis"],
            [{ ...bare, command: ["/usr/local/bin/redis-server", "/etc/redis.conf"] }, "Redis"], [{ ...bare, envs: ["POSTGRES_PASSWORD_FILE=/run/pw"] }, "PostgreSQL"],
            [{ ...bare, healthcheck: { tests: ["CMD", "pg_isready"] } }, "PostgreSQL"], [{ ...bare, name: "cache-redis" }, "Redis"],
        ] as const) {
            assert.match(checkDatabasePorts(CONTAINER, props)[0] ?? "", new RegExp(`^${service} port 7000`), JSON.stringify(props));
        }
        // The balancer and the GitLab nodes are not databases; a database on its host's address passes.
        assert.deepEqual(checkDatabasePorts(CONTAINER, inputsOf(e.byName("gitlab-lb"))), []);
        assert.deepEqual(checkDatabasePorts(CONTAINER, { ...inputsOf(e.byName("gitlab-gitlab-app1")), ports: [{ internal: 80, external: 80, ip: "0.0.0.0" }] }), []);
        assert.deepEqual(checkDatabasePorts(CONTAINER, { ...redis, ports: [{ internal: 6380, external: 6380, ip: "10.0.0.21" }] }), []);
        // During a preview the image ID may be unknown: the ports are checked all the same.
        // (The engine hands a policy its props through this proxy, which throws on an unknown value.)
        const { unknownCheckingProxy, unknownStringValue } = policyProxy as unknown as { unknownCheckingProxy: <T>(o: T) => T; unknownStringValue: string };
        const previewed = unknownCheckingProxy({ ...redis, image: unknownStringValue, ports: [{ internal: 6379, external: 6379, ip: "0.0.0.0" }] });
        assert.throws(() => previewed.image, UnknownValueError);
        assert.equal(checkDatabasePorts(CONTAINER, previewed).length, 1);
    });

    it("(d) refuses an export with no client before its options ('/path (rw)' exports to everyone) and /0 ranges", () => {
        const exp = inputsOf(e.byName("gitlab-nfs-export"));
        const create = exp.create as string;
        const everyone = create.replace(/ 10\.0\.0\.12\(/, " (");
        assert.notEqual(everyone, create);
        assert.match(checkNfsExports("command:remote:Command", { ...exp, create: everyone })[0]!, /names no client before its options/);
        assert.equal(checkNfsExports("command:remote:Command", { create: "echo '/srv/gitlab-nfs (rw,sync,no_root_squash)' >> /etc/exports\nexportfs -ra\n" }).length, 1);
        for (const client of ["0.0.0.0/0", "10.0.0.0/0", "::/0", "0.0.0.0/0.0.0.0"]) {
            assert.equal(checkNfsExports("command:remote:Command", { create: `echo '/srv/gitlab-nfs ${client}(rw)' >> /etc/exports\nexportfs -ra\n` }).length, 1, client);
        }
        assert.deepEqual(checkNfsExports("command:remote:Command", { create: "echo '/srv/gitlab-nfs 10.0.0.12(rw,sync)' >> /etc/exports\nexportfs -ra\n" }), []);
    });

    it("(f) reads %w[] literals, multi-line arrays, << and push in the monitoring allowlist", () => {
        const push = e.byName("gitlab-gitlab-app1-gitlab-rb");
        const rb = push.inputs.stdin as string;
        const check = (extra: string) => checkMonitoringAllowlist(push.type, { ...inputsOf(push), stdin: `${rb}${extra}\n` });
        assert.deepEqual(check(""), []);
        assert.deepEqual(monitoringAllowlistEntries("gitlab_rails['monitoring_whitelist'] = %w[127.0.0.0/8 0.0.0.0/0]"), ["127.0.0.0/8", "0.0.0.0/0"]);
        for (const extra of [
            "gitlab_rails['monitoring_whitelist'] = %w[127.0.0.0/8 0.0.0.0/0]",
            "gitlab_rails['monitoring_whitelist'] = %w(127.0.0.0/8 ::/0)",
            "gitlab_rails['monitoring_whitelist'] = %W{0.0.0.0/0}",
            "gitlab_rails['monitoring_whitelist'] = [\n  '127.0.0.0/8',\n  '0.0.0.0/0',\n]",
            "gitlab_rails['monitoring_whitelist'] = ['127.0.0.0/8'] + %w[0.0.0.0/0]",
            "gitlab_rails['monitoring_whitelist'] << '0.0.0.0/0'",
            "gitlab_rails['monitoring_whitelist'].push('10.0.0.0/8', '0.0.0.0/0')",
            "gitlab_rails['monitoring_whitelist'] += %w[0/0]",
        ]) {
            assert.match(check(extra)[0] ?? "", /^stdin: gitlab_rails\['monitoring_whitelist'\] allows /, extra);
        }
        assert.deepEqual(check("gitlab_rails['monitoring_whitelist'] = %w[127.0.0.0/8 10.0.0.5/32]"), []);
    });
});
