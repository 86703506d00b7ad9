// Every stack file in the repository evaluates cleanly under mocks, as `pulumi preview` would
// evaluate it: the config validates, every host's key is pinned, secrets are stored encrypted.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { ConfigError, DEFAULT_IMAGES, isPinnedImage, parseClusterConfig, secretFlagsOf, secretLeaves } from "../../components/config";
import { evaluate } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("stack-keys");
const root = path.resolve(__dirname, "..", "..", "..");
const stackFile = (stack: string) => path.join(root, `Pulumi.${stack}.yaml`);

describe("stack files", () => {
    it("are dev, staging and prod", () => {
        const stacks = fs.readdirSync(root).filter(f => /^Pulumi\.[^.]+\.yaml$/.test(f)).sort();
        assert.deepEqual(stacks, ["Pulumi.dev.yaml", "Pulumi.prod.yaml", "Pulumi.staging.yaml"]);
    });

    for (const [stack, gitlabHosts] of [["dev", 1], ["staging", 2], ["prod", 3]] as const) {
        it(`${stack} evaluates cleanly with ${gitlabHosts} GitLab node(s)`, async () => {
            const file = readStackFile(stackFile(stack));
            const e = await evaluate(file.config, { stack, secretKeys: file.secretKeys });
            assert.equal(e.config.roles.gitlab.length, gitlabHosts);
            const containers = e.resources.filter(r => r.type === "docker:index/container:Container").map(r => r.name);
            assert.equal(containers.filter(n => /^gitlab-gitlab-/.test(n)).length, gitlabHosts);
            for (const tier of ["gitlab-redis", "gitlab-postgres", "gitlab-lb"]) assert.ok(containers.includes(tier), `${stack}: ${tier}`);
        });
    }

    for (const stack of ["staging", "prod"]) {
        it(`${stack}: every host pins its key, keys are secrets, TLS for https`, () => {
            const file = readStackFile(stackFile(stack));
            const hosts = file.config.hosts as Record<string, { ssh?: { hostKey?: string } }>;
            assert.ok(Object.keys(hosts).length >= 4);
            for (const [name, host] of Object.entries(hosts)) {
                assert.match(host.ssh?.hostKey ?? "", /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}=?( |$)/, `${stack}: ${name}`);
            }
            // The deploy key comes from ssh-agent: no key in the connection, so rotating it replaces nothing.
            assert.deepEqual(file.config.ssh, { user: "root", useAgent: true });
            assert.deepEqual([...file.secretKeys].sort(), ["loadBalancer"]);
            const raw = fs.readFileSync(stackFile(stack), "utf8");
            assert.match(raw, /privateKey:\n\s+secure: /);
            assert.equal((raw.match(/secure: /g) ?? []).length, 1, "loadBalancer.tls.privateKey only");
            assert.match(String((file.config.gitlab as { externalUrl: string }).externalUrl), /^https:\/\//);
        });
    }
    /** The stack file's `config:` map as written: encrypted values as `{ secure: ... }`. */
    const rawConfig = (text: string) => (parseYaml(text) as { config: Record<string, unknown> }).config;
    /** Parses a stack file's text with secrets known leaf by leaf (the CLI tells a program only top-level keys); encrypted values become PEM stand-ins. */
    const parseLeafByLeaf = (text: string) => {
        const pem = (kind: string) => `-----BEGIN ${kind}-----\n[encrypted]\n-----END ${kind}-----`;
        const decrypted = JSON.parse(JSON.stringify(rawConfig(text)), (key, v: unknown) =>
            (v !== null && typeof v === "object" && "secure" in v ? pem(key === "certificate" ? "CERTIFICATE" : "PRIVATE KEY") : v)) as Record<string, unknown>;
        const config = Object.fromEntries(Object.entries(decrypted).filter(([k]) => k.startsWith("gitlab-cluster:")).map(([k, v]) => [k.slice("gitlab-cluster:".length), v]));
        return parseClusterConfig(config, secretFlagsOf(secretLeaves(rawConfig(text))));
    };

    for (const stack of ["dev", "staging", "prod"]) {
        it(`${stack}: every secret key is encrypted, leaf by leaf (issue 15, L10)`, () => {
            assert.doesNotThrow(() => parseLeafByLeaf(fs.readFileSync(stackFile(stack), "utf8")));
        });
    }

    it("a plain-text secret beside an encrypted one under the same top-level key is refused", () => {
        // The certificate encrypted, the private key not: the engine would call all of loadBalancer secret.
        const text = fs.readFileSync(stackFile("staging"), "utf8")
            .replace(/privateKey:\n\s+secure: [^\n]*\n/, "privateKey: |\n        -----BEGIN PRIVATE KEY-----\n        PLAIN\n        -----END PRIVATE KEY-----\n")
            .replace(/certificate: \|\n(\s+-----BEGIN CERTIFICATE-----\n)[^]*?-----END CERTIFICATE-----\n/, "certificate:\n        secure: v1:CERT\n");
        assert.deepEqual(secretLeaves(rawConfig(text)), ["loadBalancer.tls.certificate"]);
        assert.throws(() => parseLeafByLeaf(text), (e: unknown) => e instanceof ConfigError &&
            e.problems.join("\n") === "gitlab-cluster:loadBalancer.tls.privateKey: is stored in plain text; set it with `pulumi config set --secret --path loadBalancer.tls.privateKey < key.pem`");
    });

    for (const stack of ["staging", "prod"]) {
        it(`${stack}: pins every host key (no insecureSkipHostKeyCheck) and runs patched, pinned images (issue 15, M5, M6)`, () => {
            const file = readStackFile(stackFile(stack));
            for (const [name, host] of Object.entries(file.config.hosts as Record<string, Record<string, unknown>>)) {
                assert.equal(host.insecureSkipHostKeyCheck, undefined, `${stack}: ${name}`);
            }
            const image = (section: string) => (file.config[section] as { image?: string } | undefined)?.image;
            for (const section of ["gitlab", "postgres", "redis", "loadBalancer"]) assert.ok(isPinnedImage(image(section) ?? "x"), `${stack}: ${section}`);
            // Redis 7.2.11 fixed CVE-2025-49844 (and 7.2.6 CVE-2024-31449): authenticated RCE through Lua.
            const redis = /^redis:7\.2\.(\d+)-/.exec(image("redis") ?? "");
            assert.ok(redis && Number(redis[1]) >= 11, `${stack}: ${image("redis")}`);
            assert.deepEqual([image("postgres"), image("redis"), image("loadBalancer")], [DEFAULT_IMAGES.postgres, DEFAULT_IMAGES.redis, DEFAULT_IMAGES.loadBalancer], `${stack} runs the defaults' releases`);
        });
    }
});
