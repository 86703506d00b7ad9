// Every stack file in the repository evaluates cleanly under mocks, as `pulumi preview` would
// evaluate it: the config validates, every host's key is pinned, secrets are stored encrypted.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
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
});
