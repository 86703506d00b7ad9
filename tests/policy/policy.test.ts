// The policy pack's checks, each on resources of a real evaluation of the three-node example and
// of the Gitaly layout (compliant) and on the same resources made non-compliant. The planted
// violations of the Gitaly layout go through the pack itself (runPack), so each fails if the
// policy that refuses it leaves the pack.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type {} from "../../policy/index"; // type-checks the pack's entry point without starting its server
import type { PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import { UnknownValueError } from "@pulumi/policy";
import * as policyProxy from "@pulumi/policy/proxy";
import { isPinnedImage as configPins } from "../../components/config";
import {
    checkDatabasePorts, checkDataPortsFirewalled, checkGitalyPorts, checkMonitoringAllowlist, checkNfsExports, checkPinnedImage, checkPlainTextSecrets,
    checkRestartAndHealthcheck, COMMAND_TYPES, CONTAINER, dataService, gitalyListenPorts, gitalyServers, isPinnedImage, monitoringAllowlistEntries,
    policies, REMOTE_IMAGE, secretValuesOf, stackResources,
} from "../../policy/policies";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import * as path from "node:path";
import { gitalyConfig, threeNodeConfig } from "../fixtures";
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

// ---- the Gitaly layout (issue 13): the pack, run as the engine runs it, on the resources of a real evaluation

const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";
/** Distinctive generated values: alphanumeric, as RandomPassword makes them with special: false. */
const gitalyPassword = (name: string) => `PolPw${name.replace(/[^A-Za-z0-9]/g, "")}0123456789`;

/**
 * An evaluation as the engine hands it to a stack policy: the recorded inputs as props (with each
 * RandomPassword's result, an output the engine has once it exists), the Docker provider of each
 * Docker resource, and the resources each one waits for.
 */
function asPolicyResources(resources: readonly RecordedResource[], passwordFor?: (name: string) => string): PolicyResource[] {
    const byUrn = new Map<string, PolicyResource>();
    const out = resources.map(r => {
        const props: Props = structuredClone(r.inputs) as Props;
        if (r.type === RANDOM_PASSWORD && passwordFor !== undefined) props.result = passwordFor(r.name);
        const p = { type: r.type, name: r.name, urn: r.urn, props, opts: {}, dependencies: [], propertyDependencies: {} } as unknown as PolicyResource;
        byUrn.set(r.urn, p);
        return p;
    });
    resources.forEach((r, i) => {
        const p = out[i] as { dependencies: PolicyResource[]; provider?: unknown };
        p.dependencies = r.dependencies.map(u => byUrn.get(u)).filter((d): d is PolicyResource => d !== undefined);
        const provider = r.provider ? byUrn.get(r.provider.slice(0, r.provider.lastIndexOf("::"))) : undefined;
        if (provider) p.provider = { type: provider.type, props: provider.props, urn: provider.urn, name: provider.name };
    });
    return out;
}

/** Every violation the pack reports, as `<policy>: <resource name>: <message>`: each policy's own code, as the engine calls it. */
async function runPack(resources: readonly PolicyResource[]): Promise<string[]> {
    const found: string[] = [];
    const nameOf = new Map(resources.map(r => [r.urn, r.name]));
    for (const policy of policies) {
        const report = (fallback: string) => (message: string, urn?: string) => { found.push(`${policy.name}: ${urn !== undefined ? nameOf.get(urn) ?? urn : fallback}: ${message}`); };
        if ("validateResource" in policy) {
            const validate = (policy as ResourceValidationPolicy).validateResource;
            for (const r of resources) {
                for (const v of Array.isArray(validate) ? validate : validate ? [validate] : []) {
                    await v({ type: r.type, props: r.props, urn: r.urn, name: r.name, opts: r.opts, provider: r.provider } as unknown as ResourceValidationArgs, report(r.name));
                }
            }
        } else {
            await (policy as StackValidationPolicy).validateStack!({ resources } as unknown as StackValidationArgs, report("(stack)"));
        }
    }
    return found;
}

/** The recorded resources with the one named `name` changed (a copy: the evaluation is not touched). */
function patched(resources: readonly RecordedResource[], name: string, change: (r: RecordedResource) => Partial<RecordedResource>): RecordedResource[] {
    assert.ok(resources.some(r => r.name === name), `no resource ${name}`);
    return resources.map(r => (r.name === name ? { ...r, ...change(structuredClone(r)) } : r));
}
const withInputs = (more: Props) => (r: RecordedResource): Partial<RecordedResource> => ({ inputs: { ...r.inputs, ...more } });

describe("policy pack on the Gitaly layout (issue 13)", () => {
    let g: Evaluation;
    const token = gitalyPassword("gitlab-gitaly-token");
    const shellSecret = gitalyPassword("gitlab-gitaly-shell-secret");
    /** The pack's violations of the Gitaly layout with one resource changed. */
    const plant = (name: string, change: (r: RecordedResource) => Partial<RecordedResource>) => runPack(asPolicyResources(patched(g.resources, name, change), gitalyPassword));
    const of = (policy: string, found: readonly string[]) => found.filter(v => v.startsWith(`${policy}: `));
    before(async () => { g = await evaluate(gitalyConfig(), { passwordFor: gitalyPassword }); });

    it("the whole pack passes the Gitaly layout, the three-node example and every stack file", async () => {
        assert.ok(policies.some(p => p.name === "no-public-gitaly-port") && policies.some(p => p.name === "data-port-firewalled"));
        assert.deepEqual(await runPack(asPolicyResources(g.resources, gitalyPassword)), [], "the Gitaly layout");
        assert.deepEqual(await runPack(asPolicyResources((await evaluate(threeNodeConfig())).resources, n => `mock-${n}-0123456789`)), [], "three-node");
        for (const stack of ["dev", "staging", "prod"]) {
            const file = readStackFile(path.resolve(__dirname, "..", "..", "..", `Pulumi.${stack}.yaml`));
            const s = await evaluate(file.config, { stack, secretKeys: file.secretKeys });
            assert.deepEqual(await runPack(asPolicyResources(s.resources, n => `mock-${n}-0123456789`)), [], stack);
        }
        // The stack checks see what they check: the Gitaly container, by its gitlab.rb, and each data port's firewall.
        const resources = stackResources(asPolicyResources(g.resources, gitalyPassword));
        assert.deepEqual(gitalyServers(resources).map(s => [s.container.name, s.ports]), [["gitlab-gitaly", [8075]]]);
        assert.equal(dataService(g.byName("gitlab-gitaly").inputs as Props), "Gitaly");
        assert.equal(dataService(g.byName("gitlab-gitlab-app1").inputs as Props), undefined, "a Rails node is no data service");
    });

    it("(c) refuses the Gitaly port on 0.0.0.0, ::, or without an address", async () => {
        const gitaly = inputsOf(g.byName("gitlab-gitaly"));
        assert.deepEqual(gitaly.ports, [{ internal: 8075, external: 8075, ip: "10.0.0.31" }]);
        for (const ip of ["0.0.0.0", "::", "[::]", "", undefined]) {
            const found = await plant("gitlab-gitaly", withInputs({ ports: [{ internal: 8075, external: 8075, ip }] }));
            assert.match(of("no-public-database-port", found)[0] ?? "", /^no-public-database-port: gitlab-gitaly: Gitaly port 8075 is published on (0\.0\.0\.0|::|\[::\]|every interface)/, `${String(ip)}: ${found.join("\n")}`);
            assert.match(of("no-public-gitaly-port", found)[0] ?? "", /^no-public-gitaly-port: gitlab-gitaly: Gitaly port 8075 .*listen_addr/, String(ip));
        }
        // Published on the host's address, another host port: fine.
        assert.deepEqual(await plant("gitlab-gitaly", withInputs({ ports: [{ internal: 8075, external: 8075, ip: "10.0.0.31" }] })), []);
    });

    it("(c) knows Gitaly by each of its name, healthcheck, program, image and environment, and its default port on any container", () => {
        const bare = { ports: [{ internal: 9000, external: 9000, ip: "0.0.0.0" }] };
        for (const props of [
            { ...bare, name: "repos-gitaly" }, { ...bare, healthcheck: { tests: ["CMD", "gitlab-ctl", "status", "gitaly"] } },
            { ...bare, command: ["/usr/local/bin/gitaly", "/etc/gitaly/config.toml"] }, { ...bare, image: "registry.gitlab.com/gitlab-org/build/cng/gitaly:v18.4.1" },
            { ...bare, envs: ["GITALY_CONFIG_FILE=/etc/gitaly/config.toml"] },
        ]) {
            assert.match(checkDatabasePorts(CONTAINER, props)[0] ?? "", /^Gitaly port 9000 .* on 0\.0\.0\.0/, JSON.stringify(props));
        }
        assert.match(checkDatabasePorts(CONTAINER, { name: "anything", ports: [{ internal: 8075, external: 18075 }] })[0] ?? "", /^Gitaly port 8075 .* every interface/);
        // The Rails nodes are the same image, but not Gitaly: their HTTP port may be anywhere (the firewall and the balancer see to it).
        assert.deepEqual(checkDatabasePorts(CONTAINER, { ...inputsOf(g.byName("gitlab-gitlab-app1")), ports: [{ internal: 80, external: 80, ip: "0.0.0.0" }] }), []);
    });

    it("(g) knows Gitaly by the gitlab.rb it runs with, whatever its name, healthcheck and port", async () => {
        const push = g.byName("gitlab-gitaly-gitlab-rb");
        const rb = push.inputs.stdin as string;
        assert.ok(push.secretInputs.includes("stdin"));
        // Disguised: no name, healthcheck or port gives it away, and it listens on 9999: only its gitlab.rb says what it is.
        const disguised = patched(patched(g.resources, "gitlab-gitaly-gitlab-rb", withInputs({ stdin: rb.replace("0.0.0.0:8075", "0.0.0.0:9999") })),
            "gitlab-gitaly", withInputs({ name: "repo-store", healthcheck: { tests: ["CMD", "true"] }, ports: [{ internal: 9999, external: 9999, ip: "0.0.0.0" }] }));
        const container = disguised.find(r => r.name === "gitlab-gitaly")!;
        assert.deepEqual(checkDatabasePorts(CONTAINER, container.inputs as Props), [], "the resource policy alone cannot tell");
        const found = await runPack(asPolicyResources(disguised, gitalyPassword));
        assert.deepEqual(of("no-public-gitaly-port", found), ["no-public-gitaly-port: gitlab-gitaly: Gitaly port 9999 is published on 0.0.0.0 (host port 9999): publish it on the host's private address only (gitlab.rb makes it Gitaly's listen_addr)"]);
        assert.deepEqual(checkGitalyPorts(stackResources(asPolicyResources(disguised))).length, 1);
        // On its host's address, the disguised one passes this policy (its firewall, for 8075, is (h)'s business).
        const onHost = patched(disguised, "gitlab-gitaly", withInputs({ ports: [{ internal: 9999, external: 9999, ip: "10.0.0.31" }] }));
        assert.deepEqual(of("no-public-gitaly-port", await runPack(asPolicyResources(onHost, gitalyPassword))), []);
        // The gitlab.rb in the container's environment (GITLAB_OMNIBUS_CONFIG) counts as well.
        const viaEnv = patched(disguised, "gitlab-gitaly", withInputs({ envs: [`GITLAB_OMNIBUS_CONFIG=gitaly['configuration'] = { listen_addr: '0.0.0.0:9999' }`], volumes: [] }));
        assert.equal(checkGitalyPorts(stackResources(asPolicyResources(viaEnv))).length, 1);
        // A gitlab.rb written on another host, to the same path, says nothing about this container.
        const elsewhere = patched(disguised, "gitlab-gitaly-gitlab-rb", r => ({ inputs: { ...r.inputs, connection: { ...(r.inputs.connection as Props), host: "10.0.0.11" } } }));
        assert.deepEqual(gitalyServers(stackResources(asPolicyResources(elsewhere))), []);
    });

    it("(g) reads Gitaly's TCP ports from every gitlab.rb spelling, and nothing else's", () => {
        assert.deepEqual(gitalyListenPorts(g.byName("gitlab-gitaly-gitlab-rb").inputs.stdin as string), [8075]);
        assert.deepEqual(gitalyListenPorts(g.byName("gitlab-gitlab-app1-gitlab-rb").inputs.stdin as string), [], "a Rails node's gitaly_address is not a listen_addr");
        for (const [rb, ports] of [
            ["gitaly['configuration'] = {\n  listen_addr: '0.0.0.0:8075',\n  auth: { token: 'x' },\n}", [8075]],
            ["gitaly['configuration'] = { 'listen_addr' => \"[::]:9000\", 'tls_listen_addr' => '0.0.0.0:9443' }", [9000, 9443]],
            ["gitaly['configuration'] = { storage: [{ name: 'default' }], tls_listen_addr: ':9443', prometheus_listen_addr: '0.0.0.0:9236' }", [9443]],
            ["gitaly['configuration'][:listen_addr] = '10.0.0.31:8076'", [8076]],
            ["gitaly['listen_addr'] = \"0.0.0.0:8077\"", [8077]],
            ["gitlab_workhorse['listen_addr'] = '0.0.0.0:8181'\ngitaly['configuration'] = { prometheus_listen_addr: 'localhost:9236' }", []],
            ["gitlab_rails['repositories_storages'] = { 'default' => { 'gitaly_address' => 'tcp://10.0.0.31:8075' } }", []],
        ] as const) {
            assert.deepEqual(gitalyListenPorts(rb), ports, rb);
        }
    });

    it("(h) refuses a Gitaly port with no host firewall for it", async () => {
        const firewall = g.byName("gitlab-gitaly-firewall");
        const create = firewall.inputs.create as string;
        assert.match(create, /-I DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst 10\.0\.0\.31 --ctorigdstport 8075 -j GLC-GITALY/);
        const noFirewall = "data-port-firewalled: gitlab-gitaly: Gitaly port 8075 published on 10.0.0.31:8075 has no host firewall on 10.0.0.31: install one that admits only the GitLab hosts (a DOCKER-USER jump for 10.0.0.31:8075 into a chain that drops every other source)";
        // No firewall command at all.
        const without = g.resources.filter(r => r.name !== "gitlab-gitaly-firewall");
        assert.deepEqual(await runPack(asPolicyResources(without, gitalyPassword)), [noFirewall]);
        // One for another port, or run on another host: none for this port.
        assert.deepEqual(await plant("gitlab-gitaly-firewall", withInputs({ create: create.replaceAll("--ctorigdstport 8075", "--ctorigdstport 8076") })), [noFirewall]);
        assert.deepEqual(await plant("gitlab-gitaly-firewall", r => ({ inputs: { ...r.inputs, connection: { ...(r.inputs.connection as Props), host: "10.0.0.11" } } })), [noFirewall]);
        // The Gitaly container known by its gitlab.rb only (disguised, on 9999) and no firewall: refused as Gitaly.
        const disguised = patched(patched(without, "gitlab-gitaly-gitlab-rb", r => withInputs({ stdin: (r.inputs.stdin as string).replace("0.0.0.0:8075", "0.0.0.0:9999") })(r)),
            "gitlab-gitaly", withInputs({ name: "repo-store", healthcheck: { tests: ["CMD", "true"] }, ports: [{ internal: 9999, external: 9999, ip: "10.0.0.31" }] }));
        assert.match(checkDataPortsFirewalled(stackResources(asPolicyResources(disguised)))[0]?.message ?? "", /^Gitaly port 9999 published on 10\.0\.0\.31:9999 has no host firewall/);
        // The same holds for PostgreSQL and Redis.
        const noPgFirewall = g.resources.filter(r => r.name !== "gitlab-postgres-firewall");
        assert.match((await runPack(asPolicyResources(noPgFirewall, gitalyPassword))).join("\n"), /^data-port-firewalled: gitlab-postgres: PostgreSQL port 5432 published on 10\.0\.0\.21:5432 has no host firewall/);
    });

    it("(h) refuses a Gitaly firewall that admits everyone or drops nothing, or that comes up after the container", async () => {
        const create = g.byName("gitlab-gitaly-firewall").inputs.create as string;
        assert.match(create, /^-A GLC-GITALY -s 10\.0\.0\.11\/32 -j RETURN$/m);
        assert.match(create, /^-A GLC-GITALY -j DROP$/m);
        for (const [what, changed, expected] of [
            ["a world source", create.replace("-A GLC-GITALY -s 10.0.0.11/32 -j RETURN", "-A GLC-GITALY -s 0.0.0.0/0 -j RETURN"), /which admits "-s 0\.0\.0\.0\/0 -j RETURN"/],
            ["no source", create.replace("-A GLC-GITALY -s 10.0.0.11/32 -j RETURN", "-A GLC-GITALY -j RETURN"), /which admits every source/],
            ["a negated source", create.replace("-A GLC-GITALY -s 10.0.0.11/32 -j RETURN", "-A GLC-GITALY ! -s 10.0.0.11/32 -j RETURN"), /which admits "! -s 10\.0\.0\.11\/32 -j RETURN"/],
            ["no final drop", create.replace("-A GLC-GITALY -j DROP\n", ""), /which does not end in a DROP of every other source/],
        ] as const) {
            const found = await plant("gitlab-gitaly-firewall", withInputs({ create: changed }));
            assert.notEqual(changed, create, what);
            assert.equal(found.length, 1, `${what}: ${found.join("\n")}`);
            assert.match(found[0]!, /^data-port-firewalled: gitlab-gitaly: Gitaly port 8075 published on 10\.0\.0\.31:8075 is behind firewall chain GLC-GITALY \(gitlab-gitaly-firewall\), /, what);
            assert.match(found[0]!, expected, what);
        }
        // The container must wait for its firewall: otherwise the port is open until the rules stand.
        const fw = g.byName("gitlab-gitaly-firewall");
        assert.ok(g.byName("gitlab-gitaly").dependencies.includes(fw.urn), "the program makes the container wait for it");
        const found = await plant("gitlab-gitaly", r => ({ dependencies: r.dependencies.filter(u => u !== fw.urn) }));
        assert.deepEqual(found, ["data-port-firewalled: gitlab-gitaly: Gitaly port 8075 published on 10.0.0.31:8075 starts before its host firewall (gitlab-gitaly-firewall) is installed: make the container depend on it"]);
    });

    it("(h) checks again once a firewall script unknown in a preview is known, and asks nothing of a local host", async () => {
        const { unknownCheckingProxy, unknownStringValue } = policyProxy as unknown as { unknownCheckingProxy: <T>(o: T) => T; unknownStringValue: string };
        const resources = stackResources(asPolicyResources(g.resources)).map(r => (r.name === "gitlab-gitaly-firewall" ? { ...r, props: unknownCheckingProxy({ ...r.props, create: unknownStringValue }) } : r));
        assert.deepEqual(checkDataPortsFirewalled(resources), [], "nothing is reported on what is not known yet");
        // A local host (the dev stack's): no firewall, no violation; the whole pack passes dev above.
        const local = stackResources(asPolicyResources(g.resources)).filter(r => r.name !== "gitlab-gitaly-firewall")
            .map(r => (r.name === "gitlab-gitaly" ? { ...r, dockerHost: "unix:///var/run/docker.sock" } : r));
        assert.deepEqual(checkDataPortsFirewalled(local), []);
    });

    it("(e) refuses the Gitaly token or gitlab-shell's secret anywhere but a command's stdin", async () => {
        const rb = g.byName("gitlab-gitaly-gitlab-rb").inputs.stdin as string;
        assert.ok(rb.includes(token) && rb.includes(shellSecret));
        const railsRb = g.byName("gitlab-gitlab-app1-gitlab-rb").inputs.stdin as string;
        assert.match(railsRb, new RegExp(`^gitlab_rails\\['gitaly_token'\\] = '${token}'$`, "m"));
        assert.match(railsRb, new RegExp(`^gitlab_shell\\['secret_token'\\] = '${shellSecret}'$`, "m"));
        const shape = "no-plain-text-secret";
        const value = "no-stack-secret-in-plain-text";
        for (const [what, name, change, policiesExpected] of [
            ["the token in the Gitaly container's env", "gitlab-gitaly", withInputs({ envs: [`GITALY_TOKEN=${token}`] }), [shape, value]],
            ["gitlab.rb in GITLAB_OMNIBUS_CONFIG", "gitlab-gitaly", withInputs({ envs: [`GITLAB_OMNIBUS_CONFIG=${rb}`] }), [shape, value]],
            ["gitlab.rb on the push's command line, not its stdin", "gitlab-gitaly-gitlab-rb",
                (r: RecordedResource) => ({ inputs: { ...r.inputs, stdin: undefined, create: `printf '%s' '${rb}' > /srv/gitlab-cluster/gitaly/config/gitlab.rb` } }), [shape, value]],
            ["a Rails node's gitaly_token on the command line", "gitlab-gitlab-app2-gitlab-rb",
                (r: RecordedResource) => ({ inputs: { ...r.inputs, create: `${String(r.inputs.create)}\necho "gitlab_rails['gitaly_token'] = '${token}'" >> /etc/gitlab/gitlab.rb` } }), [shape, value]],
            ["gitlab-shell's secret as a Ruby hash value", "gitlab-gitaly-rollout",
                withInputs({ create: `docker exec gitlab-gitaly gitlab-ctl set "{ 'secret_token' => '${shellSecret}' }"` }), [shape, value]],
            ["gitlab.rb uploaded into the container in plain text", "gitlab-gitaly", withInputs({ uploads: [{ file: "/etc/gitlab/gitlab.rb", content: rb }] }), [shape, value]],
            // Nothing around it looks like a secret: only the stack's own values give these away.
            ["the token alone in the container's healthcheck", "gitlab-gitaly", withInputs({ healthcheck: { tests: ["CMD", "gitaly-probe", token] } }), [value]],
            ["the token alone in the container's entrypoint", "gitlab-gitaly", withInputs({ entrypoints: ["/bin/sh", "-c", `exec gitaly ${token}`] }), [value]],
            ["gitlab-shell's secret alone in the rollout's update script", "gitlab-gitaly-rollout", withInputs({ update: `echo ${shellSecret} | docker exec -i gitlab-gitaly tee /tmp/x` }), [value]],
            ["the token alone in a command's environment", "gitlab-gitaly-ready", withInputs({ environment: { PROBE: token } }), [value]],
        ] as const) {
            const found = await plant(name, change);
            assert.deepEqual([...new Set(found.map(v => v.split(":")[0]))].sort(), [...policiesExpected].sort(), `${what}:\n${found.join("\n")}`);
            assert.ok(found.every(v => !v.includes(token) && !v.includes(shellSecret)), `${what}: a message repeats the secret`);
        }
        // A reference to a file that holds it is fine.
        assert.deepEqual(await plant("gitlab-gitaly", withInputs({ envs: ["GITALY_TOKEN_FILE=/run/secrets/gitaly-token"] })), []);
        assert.deepEqual(checkPlainTextSecrets(CONTAINER, { envs: ["GITALY_TOKEN=$GITALY_TOKEN"], healthcheck: { tests: ["CMD", "gitlab-ctl", "status", "gitaly"] } }), []);
        // The stack's secret values include both, from their RandomPasswords.
        const secrets = secretValuesOf(asPolicyResources(g.resources, gitalyPassword));
        assert.ok(secrets.includes(token) && secrets.includes(shellSecret));
    });
});
