// The policy pack's checks, each on resources of a real evaluation of the three-node example
// (compliant) and on the same resources made non-compliant.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type {} from "../../policy/index"; // type-checks the pack's entry point without starting its server
import {
    checkDatabasePorts, checkMonitoringAllowlist, checkNfsExports, checkPinnedImage, checkPlainTextSecrets, checkRestartAndHealthcheck,
    COMMAND_TYPES, CONTAINER, policies, REMOTE_IMAGE, secretValuesOf,
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
});
