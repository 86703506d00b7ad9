// Every stack file in the repository evaluates cleanly under mocks, as `pulumi preview` would
// evaluate it: the config validates, every host's key is pinned, secrets are stored encrypted.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { ConfigError, configWarnings, DEFAULT_IMAGES, isPinnedImage, parseClusterConfig, secretFlagsOf, secretLeaves } from "../../components/config";
import { evaluate } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("stack-keys");
const root = path.resolve(__dirname, "..", "..", "..");
const stackFile = (stack: string) => path.join(root, `Pulumi.${stack}.yaml`);

/**
 * The repository's own stack files. A file is the repository's own by its name: these three carry
 * the README's promises (dev is one local node; staging and prod are multi-node, pin every host key,
 * take the deploy key from the agent, serve TLS; prod keeps its repositories on a Gitaly host and its
 * share on a storage host). Any other Pulumi.<stack>.yaml is a user's own:
 * it gets the checks every stack gets, and none of these promises. (To break a promise of one of
 * these three on purpose, give your stack its own name.)
 */
const REPOSITORY_STACKS = ["dev", "staging", "prod"] as const;

/** Every Pulumi.<stack>.yaml in dir, by stack name. */
function stacksIn(dir: string): string[] {
    return fs.readdirSync(dir).map(f => /^Pulumi\.([^.]+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => s !== undefined).sort();
}

/** What `pulumi preview` would need of any stack file: it evaluates, and each GitLab host gets its container, beside each tier's. */
async function checkAnyStack(file: string, stack: string): Promise<void> {
    const stackConfig = readStackFile(file);
    const e = await evaluate(stackConfig.config, { stack, secretKeys: stackConfig.secretKeys });
    const containers = e.resources.filter(r => r.type === "docker:index/container:Container").map(r => r.name);
    assert.deepEqual(containers.filter(n => /^gitlab-gitlab-/.test(n)).sort(), e.config.roles.gitlab.map(h => `gitlab-gitlab-${h}`).sort(), `${stack}: a GitLab container per roles.gitlab host`);
    for (const tier of ["gitlab-redis", "gitlab-postgres", "gitlab-lb"]) assert.ok(containers.includes(tier), `${stack}: ${tier}`);
    // A host reached over SSH is verified: never insecureSkipHostKeyCheck in a stack file.
    for (const [name, host] of Object.entries(e.config.hosts)) {
        if (!host.local) assert.notEqual((stackConfig.config.hosts as Record<string, Record<string, unknown>>)[name]?.insecureSkipHostKeyCheck, true, `${stack}: ${name}`);
    }
}

describe("stack files", () => {
    const found = stacksIn(root);

    it("include the repository's own dev, staging and prod (a user's own stack files may sit beside them)", () => {
        for (const stack of REPOSITORY_STACKS) assert.ok(found.includes(stack), `Pulumi.${stack}.yaml`);
    });

    for (const stack of found) {
        it(`${stack}${REPOSITORY_STACKS.includes(stack as never) ? "" : " (a user's own)"} evaluates cleanly, a GitLab container per GitLab host`, () => checkAnyStack(stackFile(stack), stack));
    }

    it("a user's own stack and a fourth prod node pass the checks every stack gets (issue 16, item 6)", async () => {
        const dir = tempDir("user-stacks");
        const prod = fs.readFileSync(stackFile("prod"), "utf8");
        const fourNodes = prod
            .replace("    data1:\n", "    app4:\n      address: 10.0.0.14\n      ssh:\n        hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAQI2Vnw39wk+QO0aWnJzFfce8ivzlHq9bfbbi8hFY0o app4\n    data1:\n")
            .replace("gitlab: [app1, app2, app3]", "gitlab: [app1, app2, app3, app4]");
        assert.notEqual(fourNodes, prod);
        fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), fourNodes);
        fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), fs.readFileSync(stackFile("dev"), "utf8").replace("dataRoot: /srv/gitlab-dev", "dataRoot: /srv/gitlab-qa"));
        assert.deepEqual(stacksIn(dir), ["prod", "qa"]);
        for (const stack of stacksIn(dir)) await checkAnyStack(path.join(dir, `Pulumi.${stack}.yaml`), stack);
    });

    // The repository's own: their specific promises (README, "From pull request to production").
    it("dev (the repository's own): one local host, one GitLab node", async () => {
        const file = readStackFile(stackFile("dev"));
        const e = await evaluate(file.config, { stack: "dev", secretKeys: file.secretKeys });
        assert.deepEqual(Object.values(e.config.hosts).map(h => h.local), [true]);
        assert.equal(e.config.roles.gitlab.length, 1);
    });

    for (const [stack, atLeast] of [["staging", 2], ["prod", 3]] as const) {
        it(`${stack} (the repository's own): at least ${atLeast} GitLab nodes sharing NFS, TLS`, async () => {
            const file = readStackFile(stackFile(stack));
            const e = await evaluate(file.config, { stack, secretKeys: file.secretKeys });
            assert.ok(e.config.roles.gitlab.length >= atLeast, `${stack}: ${e.config.roles.gitlab.length} GitLab nodes`);
            assert.ok(e.config.roles.nfsServer !== undefined, `${stack}: an NFS server`);
        });
    }

    // Prod is the README's example of GitLab's supported layout ("Repository storage: Gitaly").
    it("prod (the repository's own): repositories on a Gitaly host of their own, the share on a storage host that runs no GitLab, no storage warning", async () => {
        const file = readStackFile(stackFile("prod"));
        const e = await evaluate(file.config, { stack: "prod", secretKeys: file.secretKeys });
        const { gitaly, nfsServer, gitlab } = e.config.roles;
        assert.ok(gitaly !== undefined && nfsServer !== undefined, "prod sets roles.gitaly and roles.nfsServer");
        assert.ok(!gitlab.includes(gitaly) && !gitlab.includes(nfsServer) && gitaly !== nfsServer, `prod: gitaly ${gitaly}, nfsServer ${nfsServer}, gitlab ${gitlab.join(", ")}`);
        assert.deepEqual(configWarnings(e.config).filter(w => w.includes("roles.gitaly")), [], "no warning about repositories on NFS");
        // What runs where: Gitaly's container on its host, no container on the storage host, which exports the share without git-data.
        const hostOf = (r: { provider: string }) => e.facts.providerHosts.get(r.provider);
        const containers = e.resources.filter(r => r.type === "docker:index/container:Container");
        assert.deepEqual(containers.filter(c => hostOf(c) === gitaly).map(c => c.name), ["gitlab-gitaly"]);
        assert.deepEqual(containers.filter(c => hostOf(c) === nfsServer).map(c => c.name), []);
        assert.equal(e.facts.commands.get("gitlab-nfs-export")?.host, nfsServer);
        const exportScript = String(e.byName("gitlab-nfs-export").inputs.create);
        assert.match(exportScript, /uploads/);
        assert.doesNotMatch(exportScript, /git-data/, "with Gitaly the share carries no repositories");
    });

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

    for (const stack of found) {
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
