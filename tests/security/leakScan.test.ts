// Secret-leak scan: every stack is evaluated with known, distinctive secret values, and the
// whole resource graph is searched for them outside secret inputs (see leakScan.ts), as are the
// stack's outputs. The Gitaly layout (issue 13) brings two more: Gitaly's token and gitlab-shell's secret.
import * as pulumi from "@pulumi/pulumi";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { gitalyConfig, TEST_TLS_CERT, threeNodeConfig } from "../fixtures";
import { tempDir } from "../support/readers";
import { formatLeaks, generatedPasswords, scanForLeaks, type KnownSecret, type Leak } from "./leakScan";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("leak-keys");
const REPO = path.join(__dirname, "..", "..", "..");

/** Distinctive, alphanumeric (like RandomPassword with special: false), so no quoting can disguise it. */
const passwordFor = (name: string) => `LKpw${createHash("sha256").update(name).digest("hex").slice(0, 24)}`;
const pem = (kind: string, body: string) => `-----BEGIN ${kind}-----\n${body}\n-----END ${kind}-----`;
const SSH_KEY_BODY = "LKsshKeyBody0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const HOST_KEY_BODY = "LKhostKeyApp2Body9f8e7d6c5b4a39281706f5e4d3";
const TLS_KEY_BODY = "LKtlsKeyBodyc0ffee00deadbeef1234567890abcdef";
const keySecret = (label: string, kind: string, body: string): KnownSecret => ({ label, value: pem(kind, body), fragments: [body] });

interface StackUnderTest {
    readonly name: string;
    readonly config: Record<string, unknown>;
    readonly secretKeys?: readonly string[];
    readonly configSecrets: readonly KnownSecret[];
}

function threeNode(): StackUnderTest {
    const ssh = keySecret("ssh.privateKey", "OPENSSH PRIVATE KEY", SSH_KEY_BODY);
    const tls = keySecret("loadBalancer.tls.privateKey", "PRIVATE KEY", TLS_KEY_BODY);
    const config = threeNodeConfig();
    config.ssh.privateKey = ssh.value;
    config.loadBalancer.tls = { certificate: TEST_TLS_CERT, privateKey: tls.value };
    return { name: "three-node", config, configSecrets: [ssh, tls] };
}

/** The three-node fixture with a key of its own on app2 (hosts.<name>.ssh.privateKey). */
function threeNodeHostKey(): StackUnderTest {
    const base = threeNode();
    const own = keySecret("hosts.app2.ssh.privateKey", "OPENSSH PRIVATE KEY", HOST_KEY_BODY);
    const config = base.config as ReturnType<typeof threeNodeConfig>;
    config.hosts.app2.ssh.privateKey = own.value;
    return { ...base, name: "three-node, per-host key", configSecrets: [...base.configSecrets, own] };
}

/** The three-node fixture with scheduled backups copied to data1 (a key made on app1, authorized on data1). */
function threeNodeBackup(): StackUnderTest {
    const base = threeNode();
    (base.config as ReturnType<typeof threeNodeConfig>).backup = { node: "app2", target: { host: "data1", path: "/srv/backups" } };
    return { ...base, name: "three-node, backups" };
}

/** The three-node example in the Gitaly layout: gitaly1 keeps the repositories, nfs1 the shared data. */
function gitalyLayout(): StackUnderTest {
    const base = threeNode();
    const config = gitalyConfig();
    config.ssh.privateKey = (base.config as ReturnType<typeof threeNodeConfig>).ssh.privateKey;
    config.loadBalancer.tls = (base.config as ReturnType<typeof threeNodeConfig>).loadBalancer.tls;
    return { ...base, name: "Gitaly layout", config };
}

/** A Pulumi.<stack>.yaml with each encrypted value replaced by a known one of the same shape. */
function stackFile(stack: string): StackUnderTest | undefined {
    const file = path.join(REPO, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) return undefined;
    const { config, secretKeys } = readStackFile(file);
    const configSecrets: KnownSecret[] = [];
    const replace = (value: unknown): unknown => {
        if (typeof value === "string") {
            const m = /^(?:-----BEGIN PRIVATE KEY-----\n)?\[secret ([^:]+): encrypted in the stack file\]/.exec(value);
            if (!m) return value;
            const body = `LKcfg${createHash("sha256").update(`${stack}/${m[1]}`).digest("hex").slice(0, 24)}`;
            const secret = value.startsWith("-----BEGIN") ? keySecret(m[1]!, "PRIVATE KEY", body) : { label: m[1]!, value: body };
            configSecrets.push(secret);
            return secret.value;
        }
        if (Array.isArray(value)) return value.map(replace);
        if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replace(v)]));
        return value;
    };
    return { name: stack, config: replace(config) as Record<string, unknown>, secretKeys, configSecrets };
}

/** The shared-identity bundle the migration node prints (what evaluate's mocks answer for `*-read-identity`). */
function identityBundles(resources: readonly RecordedResource[]): KnownSecret[] {
    return resources.filter(r => r.name.endsWith("-read-identity")).map(r => ({
        label: `gitlab-secrets.json bundle of ${r.name}`,
        value: Buffer.from(`identity bundle of ${r.name}`).toString("base64"),
        producedBy: r.name,
    }));
}

async function scanStack(stack: StackUnderTest): Promise<{ e: Evaluation; secrets: KnownSecret[]; leaks: Leak[] }> {
    const e = await evaluate(stack.config, { stack: stack.name.replace(/\W+/g, "-"), passwordFor, secretKeys: stack.secretKeys });
    const secrets = [...stack.configSecrets, ...generatedPasswords(e.resources, passwordFor), ...identityBundles(e.resources)];
    return { e, secrets, leaks: scanForLeaks(e.resources, secrets) };
}

const stacks: StackUnderTest[] = [threeNode(), threeNodeHostKey(), threeNodeBackup(), gitalyLayout(), stackFile("dev"), stackFile("staging"), stackFile("prod")]
    .filter((s): s is StackUnderTest => s !== undefined);

describe("secret-leak scan of every stack", () => {
    for (const stack of stacks) {
        it(`${stack.name}: no known secret outside a secret input, script, container command line, name or URN`, async () => {
            const { e, secrets, leaks } = await scanStack(stack);
            console.log(`leak scan ${stack.name}: ${leaks.length} leak(s) in ${e.resources.length} resources, ${secrets.length} known secrets`);
            // The scan saw the secrets it looks for: each generated password and config secret is somewhere in the graph.
            const everything = JSON.stringify(e.resources.map(r => r.inputs));
            for (const s of secrets.filter(x => x.producedBy === undefined)) {
                assert.ok(everything.includes(JSON.stringify(s.fragments?.[0] ?? s.value).slice(1, -1)), `${stack.name}: ${s.label} reaches no resource: the scan would prove nothing`);
            }
            assert.equal(leaks.length, 0, `${stack.name} leaks:\n${formatLeaks(leaks)}`);
            const root = await e.value(e.cluster.initialRootPassword);
            assert.equal(root.secret, true, "initialRootPassword is a secret output");
        });
    }

    it("includes the dev stack, the Gitaly layout, and staging/prod when their files exist", () => {
        const names = stacks.map(s => s.name);
        assert.ok(names.includes("dev"));
        assert.ok(names.includes("Gitaly layout"));
        for (const s of ["staging", "prod"]) assert.equal(names.includes(s), fs.existsSync(path.join(REPO, `Pulumi.${s}.yaml`)), s);
    });

    it("Gitaly layout: the Gitaly token and gitlab-shell's secret are scanned for, and are only in the gitlab.rb pushes' stdin, marked secret", async () => {
        const { e, secrets } = await scanStack(gitalyLayout());
        const token = secrets.find(s => s.label === "gitlab-gitaly-token (generated)");
        const shell = secrets.find(s => s.label === "gitlab-gitaly-shell-secret (generated)");
        assert.ok(token && shell, `known secrets: ${secrets.map(s => s.label).join(", ")}`);
        assert.equal(token.value, passwordFor("gitlab-gitaly-token"));
        const pushes = ["gitlab-gitaly-gitlab-rb", "gitlab-gitlab-app1-gitlab-rb", "gitlab-gitlab-app2-gitlab-rb", "gitlab-gitlab-app3-gitlab-rb"];
        for (const s of [token, shell]) {
            const holders = e.resources.filter(r => JSON.stringify(r.inputs).includes(s.value));
            assert.deepEqual(holders.map(r => r.name).sort(), [...pushes].sort(), s.label);
            for (const r of holders) {
                assert.ok(r.secretInputs.includes("stdin") && String(r.inputs.stdin).includes(s.value), `${r.name} holds ${s.label} in its secret stdin only`);
                assert.ok(!String(r.inputs.create ?? "").includes(s.value), r.name);
            }
        }
        // The Gitaly node's rollout names its gitlab.rb by a SHA-256 (to reconfigure on a change): a digest, not the secrets.
        const update = String(e.byName("gitlab-gitaly-rollout").inputs.update);
        const rb = String(e.byName("gitlab-gitaly-gitlab-rb").inputs.stdin);
        assert.ok(update.includes(`gitlab.rb sha256 ${createHash("sha256").update(rb).digest("hex")}`));
    });

    for (const make of [threeNode, gitalyLayout]) {
        it(`${make().name}: no stack output holds a known secret, but initialRootPassword, which is a secret output`, async () => {
            const { e, secrets } = await scanStack(make());
            const exported = [...fs.readFileSync(path.join(REPO, "index.ts"), "utf8").matchAll(/^export const (\w+) = cluster\.(\w+);/gm)].map(m => [m[1]!, m[2]!] as const);
            assert.ok(exported.length >= 5, "index.ts exports the cluster's outputs");
            const cluster = e.cluster as unknown as Record<string, unknown>;
            for (const [output, field] of exported) {
                const { value, secret } = await e.value(pulumi.output(cluster[field]));
                const text = JSON.stringify(value);
                const held = secrets.filter(s => text.includes(JSON.stringify(s.value).slice(1, -1)));
                if (output === "initialRootPassword") {
                    assert.equal(secret, true, output);
                    assert.deepEqual(held.map(s => s.label), ["gitlab-initial-root-password (generated)"]);
                } else {
                    assert.deepEqual(held.map(s => s.label), [], `stack output ${output} (plain: ${!secret})`);
                }
            }
        });
    }
});

describe("the leak scanner catches planted leaks", () => {
    it("a secret in a config value that reaches a script and a plain container input (end to end)", async () => {
        const stack = threeNode();
        (stack.config as ReturnType<typeof threeNodeConfig>).redis = { dataRoot: "/srv/LKplantedSecret0123456789" };
        const { e, secrets } = await scanStack(stack);
        const planted: KnownSecret = { label: "planted", value: "LKplantedSecret0123456789" };
        const leaks = scanForLeaks(e.resources, [...secrets, planted]);
        const where = leaks.map(l => `${l.resource} ${l.where}`);
        assert.ok(where.includes("gitlab-redis-config create"), where.join("\n"));
        assert.ok(where.includes("gitlab-redis volumes[1].hostPath"), where.join("\n"));
        assert.ok(leaks.every(l => l.secret === "planted"), formatLeaks(leaks));
    });

    it("each kind of leak in a monkeypatched resource record", async () => {
        const { e, secrets } = await scanStack(threeNode());
        const pw = passwordFor("gitlab-redis-password");
        const patch = (name: string, change: (r: RecordedResource) => Partial<RecordedResource>) =>
            e.resources.map(r => (r.name === name ? { ...r, ...change(r) } : r));
        const cases: [string, RecordedResource[], string][] = [
            ["plain input", patch("gitlab-lb-config", r => ({ inputs: { ...r.inputs, triggers: [pw] } })), "gitlab-lb-config triggers[0]"],
            ["unmarked stdin", patch("gitlab-gitlab-app1-gitlab-rb", r => ({ secretInputs: r.secretInputs.filter(s => s !== "stdin") })), "gitlab-gitlab-app1-gitlab-rb stdin"],
            ["create script", patch("gitlab-redis-config", r => ({ inputs: { ...r.inputs, create: `${String(r.inputs.create)}\necho ${pw}` } })), "gitlab-redis-config create"],
            ["secret-marked update script", patch("gitlab-redis-config", r => ({ inputs: { ...r.inputs, update: `redis-cli -a ${pw}` }, secretInputs: [...r.secretInputs, "update"] })), "gitlab-redis-config update"],
            ["container command", patch("gitlab-redis", r => ({ inputs: { ...r.inputs, command: ["redis-server", "--requirepass", pw] } })), "gitlab-redis command[2]"],
            ["container label", patch("gitlab-redis", r => ({ inputs: { ...r.inputs, labels: [{ label: "pw", value: pw }] } })), "gitlab-redis labels[0].value"],
            ["container env", patch("gitlab-postgres", r => ({ inputs: { ...r.inputs, envs: [`POSTGRES_PASSWORD=${passwordFor("gitlab-postgres-superuser-password")}`] } })), "gitlab-postgres envs[0]"],
            ["container healthcheck", patch("gitlab-redis", r => ({ inputs: { ...r.inputs, healthcheck: { tests: ["CMD", "redis-cli", "-a", pw, "ping"] } } })), "gitlab-redis healthcheck.tests[3]"],
            ["container entrypoint", patch("gitlab-redis", r => ({ inputs: { ...r.inputs, entrypoints: ["sh", "-c", `AUTH=${pw} exec redis-server`] } })), "gitlab-redis entrypoints[2]"],
            ["resource name", patch("gitlab-redis-data", r => ({ name: `vol-${pw}`, urn: r.urn.replace(/::[^:]*$/, `::vol-${pw}`) })), `vol-${pw} name`],
            ["URN", patch("gitlab-redis-data", r => ({ urn: `${r.urn.replace("gitlab-cluster:redis:RedisNode", `x${pw}`)}` })), "gitlab-redis-data urn"],
            ["secret stdout stored in plain text", patch("gitlab-gitlab-app1-read-identity", () => ({ additionalSecretOutputs: [] })), "gitlab-gitlab-app1-read-identity stdout"],
            ["secret stdout logged", patch("gitlab-gitlab-app1-read-identity", r => ({ inputs: { ...r.inputs, logging: "stdoutAndStderr" } })), "gitlab-gitlab-app1-read-identity logging"],
            ["SSH key in a plain connection", patch("gitlab-nfs-export", r => ({ secretInputs: r.secretInputs.filter(s => !s.startsWith("connection")) })), "gitlab-nfs-export connection.privateKey"],
        ];
        assert.equal(scanForLeaks(e.resources, secrets).length, 0, "the unpatched graph is clean");
        for (const [what, resources, expected] of cases) {
            const found = scanForLeaks(resources, secrets).map(l => `${l.resource} ${l.where}`);
            assert.ok(found.includes(expected), `${what}: expected "${expected}", found:\n${found.join("\n")}`);
        }
    });

    it("each kind of leak of the Gitaly token or gitlab-shell's secret, in the Gitaly layout's resources", async () => {
        const { e, secrets } = await scanStack(gitalyLayout());
        const token = passwordFor("gitlab-gitaly-token");
        const shell = passwordFor("gitlab-gitaly-shell-secret");
        const rb = String(e.byName("gitlab-gitaly-gitlab-rb").inputs.stdin);
        const patch = (name: string, change: (r: RecordedResource) => Partial<RecordedResource>) =>
            e.resources.map(r => (r.name === name ? { ...r, ...change(r) } : r));
        const cases: [string, RecordedResource[], string, string][] = [
            ["the Gitaly node's gitlab.rb, stdin unmarked", patch("gitlab-gitaly-gitlab-rb", r => ({ secretInputs: r.secretInputs.filter(s => s !== "stdin") })), "gitlab-gitaly-gitlab-rb stdin", "gitlab-gitaly-token"],
            ["a Rails node's gitlab.rb, stdin unmarked", patch("gitlab-gitlab-app3-gitlab-rb", r => ({ secretInputs: r.secretInputs.filter(s => s !== "stdin") })), "gitlab-gitlab-app3-gitlab-rb stdin", "gitlab-gitaly-shell-secret"],
            ["gitlab.rb on the push's command line", patch("gitlab-gitaly-gitlab-rb", r => ({ inputs: { ...r.inputs, create: `printf '%s' '${rb}' > /etc/gitlab/gitlab.rb` } })), "gitlab-gitaly-gitlab-rb create", "gitlab-gitaly-token"],
            ["the shell secret in the rollout's update script", patch("gitlab-gitaly-rollout", r => ({ inputs: { ...r.inputs, update: `${String(r.inputs.update)}\n# ${shell}` } })), "gitlab-gitaly-rollout update", "gitlab-gitaly-shell-secret"],
            ["the token in the Gitaly container's env", patch("gitlab-gitaly", r => ({ inputs: { ...r.inputs, envs: [`GITALY_TOKEN=${token}`] } })), "gitlab-gitaly envs[0]", "gitlab-gitaly-token"],
            ["gitlab.rb in GITLAB_OMNIBUS_CONFIG", patch("gitlab-gitaly", r => ({ inputs: { ...r.inputs, envs: [`GITLAB_OMNIBUS_CONFIG=${rb}`] } })), "gitlab-gitaly envs[0]", "gitlab-gitaly-shell-secret"],
            ["the token in the Gitaly container's command", patch("gitlab-gitaly", r => ({ inputs: { ...r.inputs, command: ["gitaly", "--token", token] } })), "gitlab-gitaly command[2]", "gitlab-gitaly-token"],
            ["the token in the Gitaly healthcheck", patch("gitlab-gitaly", r => ({ inputs: { ...r.inputs, healthcheck: { tests: ["CMD", "gitaly-probe", token] } } })), "gitlab-gitaly healthcheck.tests[2]", "gitlab-gitaly-token"],
            ["the token in a label", patch("gitlab-gitaly", r => ({ inputs: { ...r.inputs, labels: [{ label: "gitaly.token", value: token }] } })), "gitlab-gitaly labels[0].value", "gitlab-gitaly-token"],
            ["gitlab.rb uploaded into the container", patch("gitlab-gitaly", r => ({ inputs: { ...r.inputs, uploads: [{ file: "/etc/gitlab/gitlab.rb", content: rb }] } })), "gitlab-gitaly uploads[0].content", "gitlab-gitaly-token"],
            ["the token as a trigger of the readiness wait", patch("gitlab-gitaly-ready", r => ({ inputs: { ...r.inputs, triggers: [token] } })), "gitlab-gitaly-ready triggers[0]", "gitlab-gitaly-token"],
        ];
        assert.equal(scanForLeaks(e.resources, secrets).length, 0, "the unpatched graph is clean");
        for (const [what, resources, expected, secret] of cases) {
            const found = scanForLeaks(resources, secrets);
            const where = found.map(l => `${l.resource} ${l.where}`);
            assert.ok(where.includes(expected), `${what}: expected "${expected}", found:\n${where.join("\n")}`);
            assert.ok(found.some(l => `${l.resource} ${l.where}` === expected && l.secret === `${secret} (generated)`), `${what}: found as ${secret}:\n${formatLeaks(found)}`);
        }
    });

    it("a command whose stdout feeds a secret input is held to the secret-stdout rule without being named", async () => {
        const { e, secrets } = await scanStack(threeNode());
        const withoutProducers = secrets.map(s => ({ ...s, producedBy: undefined }));
        const resources = e.resources.map(r => (r.name === "gitlab-gitlab-app1-read-identity" ? { ...r, additionalSecretOutputs: [], inputs: { ...r.inputs, logging: undefined } } : r));
        const found = scanForLeaks(resources, withoutProducers).map(l => `${l.resource} ${l.where}`);
        assert.deepEqual(found.sort(), ["gitlab-gitlab-app1-read-identity logging", "gitlab-gitlab-app1-read-identity stdout"]);
    });
});
