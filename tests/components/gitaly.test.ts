// The Gitaly tier under mocks (gitalyConfig: app1..3, data1, edge1, gitaly1, nfs1): what runs on
// gitaly1 and who may reach it, where its secrets travel, the order against the upgrade
// preflight and the GitLab nodes, and what the NFS share keeps carrying.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { SHARE_SENTINEL_IN_CONTAINER, sharedDirectories } from "../../components/render/nfs";
import { classify } from "../../scripts/bench/blastRadius";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { gitalyConfig, threeNodeConfig } from "../fixtures";
import { CONTAINER, dependsOn, directlyDependsOn, REMOTE_COMMAND, str, strings } from "../support/graph";
import { loadGitlabRb, tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");
const NODES = ["app1", "app2", "app3"];
const APP_SOURCES = ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"];
const TOKEN = "gitlab-gitaly-token";
const SHELL_SECRET = "gitlab-gitaly-shell-secret";

/**
 * Plain letters and digits, distinct per resource: a secret copied anywhere (whatever quoting it
 * went through) still shows as this text. `round` makes a second, otherwise equal, evaluation.
 */
const passwordsOf = (round: string) => (name: string) => `MOCK${round}x${name.replace(/[^A-Za-z0-9]/g, "")}x${round}SECRET`;
const passwordFor = passwordsOf("A");

const node = (e: Evaluation, n: string, part = "") => e.byName(`gitlab-gitlab-${n}${part}`);
const hostOf = (r: RecordedResource) => (r.inputs.connection as { host: string }).host;
/** The exports(5) line a NFS export script writes. */
const exportsLine = (r: RecordedResource) => /printf '%s' '# Managed by gitlab-cluster \(Pulumi\)\.\n([^']*)\n'/.exec(str(r, "create"))?.[1];

describe("the Gitaly tier under mocks", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(gitalyConfig(), { passwordFor }); });

    describe("on gitaly1", () => {
        it("runs one Omnibus container there, publishing only Gitaly's port, on gitaly1's address only", () => {
            const c = e.byName("gitlab-gitaly");
            assert.equal(c.type, CONTAINER);
            assert.equal(e.facts.providerHosts.get(c.provider), "gitaly1");
            assert.equal(e.byName("gitlab-gitaly-image").inputs.name, gitalyConfig().gitlab.image, "the same release as the GitLab nodes");
            const ports = c.inputs.ports as { internal: number; external: number; ip: string }[];
            assert.deepEqual(ports.map(p => [p.internal, p.external, p.ip]), [[8075, 8075, "10.0.0.31"]]);
            assert.equal(c.inputs.privileged ?? false, false);
            const volumes = c.inputs.volumes as { hostPath: string; containerPath: string }[];
            assert.deepEqual(volumes.map(v => [v.hostPath, v.containerPath]), [
                ["/srv/gitlab-cluster/gitaly/config", "/etc/gitlab"],
                ["/srv/gitlab-cluster/gitaly/logs", "/var/log/gitlab"],
                ["/srv/gitlab-cluster/gitaly/data", "/var/opt/gitlab"],
            ], "the repositories on gitaly1's own disk, nothing from the share");
        });

        it("the only container on gitaly1 is Gitaly's, and nothing of Gitaly's runs elsewhere", () => {
            const onGitaly = e.resources.filter(r => r.type === CONTAINER && e.facts.providerHosts.get(r.provider) === "gitaly1");
            assert.deepEqual(onGitaly.map(r => r.name), ["gitlab-gitaly"]);
            for (const [name, facts] of e.facts.commands) {
                if (name.startsWith("gitlab-gitaly-")) assert.equal(facts.host, "gitaly1", name);
            }
        });

        it("its firewall admits exactly app1..3, to gitaly1's address and Gitaly's port, before the container starts", () => {
            const fw = e.byName("gitlab-gitaly-firewall");
            assert.equal(hostOf(fw), "10.0.0.31");
            const create = str(fw, "create");
            assert.deepEqual([...create.matchAll(/-A GLC-GITALY -s (\S+) -j RETURN/g)].map(m => m[1]), APP_SOURCES);
            assert.match(create, /-A GLC-GITALY -j DROP/);
            assert.match(create, /--ctorigdst 10\.0\.0\.31 --ctorigdstport 8075 -j GLC-GITALY/);
            assert.doesNotMatch(create, /10\.0\.0\.(5|21|41)\//, "not the balancer, the data host or the NFS host");
            assert.match(str(fw, "delete"), /iptables -X GLC-GITALY/);
            assert.ok(directlyDependsOn(e.byName("gitlab-gitaly"), fw));
        });

        it("writes its gitlab.rb (0600, from stdin) before the container starts, with the token every GitLab node uses", () => {
            const push = e.byName("gitlab-gitaly-gitlab-rb");
            assert.equal(hostOf(push), "10.0.0.31");
            assert.deepEqual(e.facts.commands.get("gitlab-gitaly-gitlab-rb")?.writes, { path: "/srv/gitlab-cluster/gitaly/config/gitlab.rb", mode: "0600" });
            assert.ok(directlyDependsOn(e.byName("gitlab-gitaly"), push));
            const s = loadGitlabRb(str(push, "stdin"));
            assert.equal(s.gitaly.configuration.listen_addr, "0.0.0.0:8075");
            assert.equal(s.gitaly.configuration.auth.token, passwordFor(TOKEN));
            assert.equal(s.gitlab_shell.secret_token, passwordFor(SHELL_SECRET));
            assert.equal(s.gitlab_rails.internal_api_url, "https://gitlab.example.com");
            for (const n of NODES) {
                const rails = loadGitlabRb(str(node(e, n, "-gitlab-rb"), "stdin"));
                assert.equal(rails.gitaly.enable, false, n);
                assert.deepEqual(rails.gitlab_rails.repositories_storages, { default: { gitaly_address: "tcp://10.0.0.31:8075" } }, n);
                assert.equal(rails.gitlab_rails.gitaly_token, s.gitaly.configuration.auth.token, n);
                assert.equal(rails.gitlab_shell.secret_token, s.gitlab_shell.secret_token, n);
            }
        });

        it("passes on only the gitlab.omnibus names a Gitaly node takes", async () => {
            const cfg = gitalyConfig();
            cfg.gitlab.omnibus = { puma: { worker_processes: 3 }, gitaly: { env: { GOMAXPROCS: "2" } }, logrotate: { rotate: 5 } };
            const other = await evaluate(cfg, { passwordFor });
            const s = loadGitlabRb(str(other.byName("gitlab-gitaly-gitlab-rb"), "stdin"));
            assert.deepEqual(s.gitaly.env, { GOMAXPROCS: "2" });
            assert.equal(s.logrotate.rotate, 5);
            assert.equal(s.puma.worker_processes, undefined, "Puma's sizing is the Rails nodes'");
            assert.equal(s.puma.enable, false);
            assert.equal(loadGitlabRb(str(other.byName("gitlab-gitlab-app1-gitlab-rb"), "stdin")).puma.worker_processes, 3);
        });
    });

    describe("its secrets", () => {
        it("reach the hosts only on stdin, marked secret: in no script, no container, no other input", () => {
            const secrets = [passwordFor(TOKEN), passwordFor(SHELL_SECRET)];
            const carriers: string[] = [];
            const leaks: string[] = [];
            for (const r of e.resources) {
                for (const [at, value] of strings(r.inputs)) {
                    if (!secrets.some(s => value.includes(s))) continue;
                    if (at === "stdin" && r.secretInputs.includes("stdin")) carriers.push(r.name);
                    else leaks.push(`${r.name}.${at}${r.secretInputs.includes(at) ? " (secret, but not stdin)" : ""}`);
                }
            }
            assert.deepEqual(leaks, []);
            // Exactly the files that need them: the Gitaly node's gitlab.rb and each GitLab node's.
            assert.deepEqual(carriers.sort(), ["gitlab-gitaly-gitlab-rb", ...NODES.map(n => `gitlab-gitlab-${n}-gitlab-rb`)].sort());
            // Both secrets are in each of those files (the search above looked for what is really there).
            for (const name of carriers) {
                const stdin = str(e.byName(name), "stdin");
                for (const s of secrets) assert.ok(stdin.includes(s), `${name} carries ${s}`);
            }
        });

        it("are generated once, by the Gitaly node, as random passwords", async () => {
            const random = e.resources.filter(r => r.type === "random:index/randomPassword:RandomPassword" && r.name.startsWith("gitlab-gitaly-"));
            assert.deepEqual(random.map(r => r.name).sort(), [SHELL_SECRET, TOKEN]);
            const gitaly = e.cluster.gitaly!;
            const token = await e.value(gitaly.endpoint.token);
            const secret = await e.value(gitaly.endpoint.shellSecret);
            assert.deepEqual([token.value, token.secret], [passwordFor(TOKEN), true]);
            assert.deepEqual([secret.value, secret.secret], [passwordFor(SHELL_SECRET), true]);
            assert.equal((await e.value(gitaly.gitlabRb)).secret, true);
        });
    });

    describe("ordering", () => {
        it("every GitLab node's container waits for Gitaly to be ready", () => {
            const ready = e.byName("gitlab-gitaly-ready");
            assert.ok(directlyDependsOn(ready, e.byName("gitlab-gitaly")), "ready is asked of the (new) container");
            assert.deepEqual(ready.inputs.triggers, ["gitlab-gitaly-id"], "a replaced container is waited for again");
            assert.match(str(ready, "create"), /docker exec gitlab-gitaly gitlab-ctl status gitaly/);
            for (const n of NODES) assert.ok(directlyDependsOn(node(e, n), ready), n);
        });

        it("the Gitaly container waits for the migration node's upgrade preflight, which does not wait for anything of Gitaly's (no cycle)", () => {
            const preflight = node(e, "app1", "-upgrade-preflight");
            const gitalyContainer = e.byName("gitlab-gitaly");
            assert.ok(dependsOn(e, gitalyContainer, preflight), "a new image reaches Gitaly only once the preflight accepts it");
            const gitalyOwn = e.resources.filter(r => r.name.startsWith("gitlab-gitaly"));
            assert.ok(gitalyOwn.length >= 6, gitalyOwn.map(r => r.name).join(", "));
            for (const g of gitalyOwn) assert.ok(!dependsOn(e, preflight, g), `the preflight waits for ${g.name}`);
            // And the graph has no cycle at all (dependsOn would still terminate on one).
            assert.ok(!dependsOn(e, preflight, preflight));
            assert.ok(!dependsOn(e, gitalyContainer, gitalyContainer));
        });

        it("the migration node's container starts after Gitaly's, the preflight before both", () => {
            assert.ok(dependsOn(e, node(e, "app1"), e.byName("gitlab-gitaly")));
            assert.ok(dependsOn(e, node(e, "app1"), node(e, "app1", "-upgrade-preflight")));
        });

        it("a new GitLab image replaces Gitaly's container too (the same release), and the preflight runs again first", async () => {
            const cfg = gitalyConfig();
            cfg.gitlab.image = "gitlab/gitlab-ce:18.4.2-ce.0";
            const after = await evaluate(cfg, { passwordFor });
            const ops = new Map(classify(e.resources, after.resources).resources.map(r => [r.name, r.op]));
            assert.equal(ops.get("gitlab-gitlab-app1-upgrade-preflight"), "replace");
            assert.equal(ops.get("gitlab-gitaly"), "replace");
            assert.equal(ops.get("gitlab-gitaly-ready"), "replace", "Gitaly is waited for again on the new container");
            assert.equal(after.byName("gitlab-gitaly-image").inputs.name, "gitlab/gitlab-ce:18.4.2-ce.0");
            assert.ok(dependsOn(after, after.byName("gitlab-gitaly"), after.byName("gitlab-gitlab-app1-upgrade-preflight")));
        });
    });

    describe("the NFS share on nfs1", () => {
        it("exports from nfs1 to all three GitLab hosts, and makes no git-data directory", () => {
            const exp = e.byName("gitlab-nfs-export");
            assert.equal(hostOf(exp), "10.0.0.41");
            assert.equal(exportsLine(exp), "/srv/gitlab-nfs 10.0.0.11(rw,sync,no_root_squash,no_subtree_check) 10.0.0.12(rw,sync,no_root_squash,no_subtree_check) 10.0.0.13(rw,sync,no_root_squash,no_subtree_check)");
            const create = str(exp, "create");
            const mkdir = /^mkdir -p \/srv\/gitlab-nfs (.*)$/m.exec(create)?.[1]?.split(" ");
            assert.deepEqual(mkdir, ["uploads", "shared", "builds", "ssh"].map(d => `/srv/gitlab-nfs/${d}`));
            assert.doesNotMatch(create, /git-data/);
        });

        it("every GitLab host mounts it (none serves it), before its container starts", () => {
            const mounts = e.resources.filter(r => r.type === REMOTE_COMMAND && r.name.startsWith("gitlab-nfs-mount-"));
            assert.deepEqual(mounts.map(hostOf).sort(), ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
            for (const m of mounts) {
                assert.match(str(m, "create"), /^line='10\.0\.0\.41:\/srv\/gitlab-nfs \/srv\/gitlab-nfs nfs /m);
                assert.ok(dependsOn(e, node(e, m.name.replace("gitlab-nfs-mount-", "")), m), m.name);
            }
        });

        it("GitLab containers mount no git-data from the share: the repositories are Gitaly's", () => {
            for (const n of NODES) {
                const volumes = node(e, n).inputs.volumes as { hostPath: string; containerPath: string }[];
                const shared = volumes.filter(v => v.hostPath.startsWith("/srv/gitlab-nfs/"));
                assert.deepEqual(shared.map(v => v.containerPath), [...sharedDirectories(true).map(d => d.containerPath), SHARE_SENTINEL_IN_CONTAINER], n);
                assert.ok(!volumes.some(v => /git-data/.test(v.hostPath) || v.containerPath.startsWith("/var/opt/gitlab/git-data")), n);
            }
            assert.ok(!sharedDirectories(true).some(d => d.dir === "git-data"));
        });
    });

    describe("a changed gitlab.rb on the Gitaly node", () => {
        it("reconfigures it in place: a new token changes the rollout's update script (gitlab-ctl reconfigure), not the container", async () => {
            const rollout = e.byName("gitlab-gitaly-rollout");
            assert.match(str(rollout, "update"), /docker exec gitlab-gitaly gitlab-ctl reconfigure/);
            assert.match(str(rollout, "update"), /gitlab-ctl status gitaly/, "then waits for Gitaly again");
            assert.ok(directlyDependsOn(rollout, e.byName("gitlab-gitaly-gitlab-rb")), "after the new file is on the host");
            assert.ok(directlyDependsOn(rollout, e.byName("gitlab-gitaly-ready")));

            const newToken = (name: string) => (name === TOKEN ? passwordsOf("B")(name) : passwordFor(name));
            const after = await evaluate(gitalyConfig(), { passwordFor: newToken });
            assert.notEqual(str(after.byName("gitlab-gitaly-rollout"), "update"), str(rollout, "update"));
            const ops = new Map(classify(e.resources, after.resources).resources.map(r => [r.name, r]));
            assert.deepEqual([ops.get("gitlab-gitaly-rollout")!.op, ops.get("gitlab-gitaly-rollout")!.changedInputs], ["update", ["update"]]);
            assert.equal(ops.get("gitlab-gitaly-gitlab-rb")!.op, "update");
            assert.equal(ops.get("gitlab-gitaly")!.op, "same", "the container stays");
            for (const n of NODES) {
                assert.equal(ops.get(`gitlab-gitlab-${n}-rollout`)!.op, "update", `${n} takes the new token by reconfigure`);
                assert.equal(ops.get(`gitlab-gitlab-${n}`)!.op, "same", n);
            }
            // The new token is in the new files, and still on stdin only.
            assert.ok(str(after.byName("gitlab-gitaly-gitlab-rb"), "stdin").includes(newToken(TOKEN)));
            assert.ok(!str(after.byName("gitlab-gitaly-rollout"), "update").includes(newToken(TOKEN)));
        });

        it("the same inputs give the same update script (the change above is the token's)", async () => {
            const again = await evaluate(gitalyConfig(), { passwordFor });
            assert.equal(str(again.byName("gitlab-gitaly-rollout"), "update"), str(e.byName("gitlab-gitaly-rollout"), "update"));
        });
    });
});

describe("without roles.gitaly (the three-node example)", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(threeNodeConfig(), { passwordFor }); });

    it("makes no Gitaly resource, and the GitLab nodes keep their own Gitaly on the share", () => {
        assert.deepEqual(e.resources.filter(r => /gitaly/i.test(r.name) || /gitaly/i.test(r.type)).map(r => r.name), []);
        assert.equal(e.cluster.gitaly, undefined);
        for (const n of NODES) {
            const s = loadGitlabRb(str(node(e, n, "-gitlab-rb"), "stdin"));
            assert.equal(s.gitaly, undefined, n);
            assert.equal(s.gitlab_rails.repositories_storages, undefined, n);
            const volumes = node(e, n).inputs.volumes as { hostPath: string; containerPath: string }[];
            assert.ok(volumes.some(v => v.hostPath === "/srv/gitlab-nfs/git-data" && v.containerPath === "/var/opt/gitlab/git-data"), n);
        }
        assert.match(str(e.byName("gitlab-nfs-export"), "create"), /\/srv\/gitlab-nfs\/git-data/);
    });
});
