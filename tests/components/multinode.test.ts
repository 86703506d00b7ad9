// GitLab's multi-node rules (issue: shared secrets and host keys, one migration node,
// rolling reconfigure, updates that do not replace).
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { GITLAB_NFS_MOUNT_OPTIONS } from "../../components/config";
import { STOP_TIMEOUT_SECONDS } from "../../components/gitlabNode";
import { classify } from "../../scripts/bench/blastRadius";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { testHostKey, threeNodeConfig } from "../fixtures";
import { CONTAINER, dependsOn, directlyDependsOn, str } from "../support/graph";
import { loadGitlabRb, tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");
const NODES = ["app1", "app2", "app3"];
const node = (e: Evaluation, n: string, part = "") => e.byName(`gitlab-gitlab-${n}${part}`);

/** Inputs of every resource matching `select`, by name. */
function inputsOf(e: Evaluation, select: (r: RecordedResource) => boolean): Map<string, string> {
    return new Map(e.resources.filter(select).map(r => [r.name, JSON.stringify(r.inputs)]));
}

/** Names of resources whose inputs differ between two evaluations (or exist in one only). */
function changed(a: Evaluation, b: Evaluation, select: (r: RecordedResource) => boolean = () => true): string[] {
    const before = inputsOf(a, select);
    const after = inputsOf(b, select);
    const names = new Set([...before.keys(), ...after.keys()]);
    return [...names].filter(n => before.get(n) !== after.get(n)).sort();
}

describe("multi-node correctness", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(threeNodeConfig()); });

    describe("one set of secrets and host keys", () => {
        it("reads gitlab-secrets.json and the SSH host keys once from the migration node, as a secret never logged", () => {
            const read = node(e, "app1", "-read-identity");
            assert.ok(read.additionalSecretOutputs.includes("stdout"));
            assert.equal(read.inputs.logging, "none");
            assert.match(str(read, "create"), /gitlab-secrets\.json ssh_host_ecdsa_key .* ssh_host_rsa_key\.pub/);
            assert.ok(dependsOn(e, read, node(e, "app1", "-ready")), "read only after the first reconfigure made them");
        });

        it("pushes the same identity, marked secret, to every other node before its container starts", async () => {
            const pushed = ["app2", "app3"].map(n => node(e, n, "-identity"));
            const migrationIdentity = await e.value(e.cluster.gitlabNodes[0]!.identity!);
            assert.equal(migrationIdentity.secret, true);
            for (const p of pushed) {
                assert.ok(p.secretInputs.includes("stdin"), p.name);
                assert.equal(p.inputs.stdin, migrationIdentity.value);
                assert.ok(directlyDependsOn(node(e, p.name.split("-")[2]!), p), `${p.name} before the container`);
            }
            assert.equal(pushed[0]!.inputs.stdin, pushed[1]!.inputs.stdin);
            assert.throws(() => node(e, "app1", "-identity"), /no resource named/, "the migration node keeps its own");
        });

        it("only the migration node may generate a secret: the others never do, so an upgrade cannot make them differ", () => {
            for (const n of NODES) {
                const settings = loadGitlabRb(str(node(e, n, "-gitlab-rb"), "stdin"));
                assert.equal(settings.package?.generate_default_secrets, n === "app1" ? undefined : false, n);
            }
        });

        it("a new GitLab image re-reads the migration node's identity and writes it to every other node before its new container starts", async () => {
            const cfg = threeNodeConfig();
            cfg.gitlab.image = "gitlab/gitlab-ce:18.4.2-ce.0";
            const after = await evaluate(cfg);
            const ops = new Map(classify(e.resources, after.resources).resources.map(r => [r.name, r]));
            assert.equal(ops.get("gitlab-gitlab-app1")!.op, "replace");
            // Its triggers hold the new container's id: read again (create), after the new container is ready.
            assert.equal(ops.get("gitlab-gitlab-app1-read-identity")!.op, "replace", JSON.stringify(ops.get("gitlab-gitlab-app1-read-identity")));
            for (const n of ["app2", "app3"]) {
                const write = ops.get(`gitlab-gitlab-${n}-identity`)!;
                assert.ok(write.op !== "same" && write.changedInputs.includes("stdin"), `${n}: ${JSON.stringify(write)}`);
                assert.ok(directlyDependsOn(after.byName(`gitlab-gitlab-${n}`), after.byName(`gitlab-gitlab-${n}-identity`)), `${n}'s new container waits for the new identity`);
            }
        });
    });

    describe("Omnibus settings that suit a cluster of containers", () => {
        it("KAS is off on every node (its private API is on localhost: agent tunnels would break across nodes)", () => {
            for (const n of NODES) assert.equal(loadGitlabRb(str(node(e, n, "-gitlab-rb"), "stdin")).gitlab_kas?.enable, false, n);
        });

        it("docker stop gives the Omnibus container's gitlab-ctl stop 300 s, not Docker's default 10 s", () => {
            for (const n of NODES) assert.equal(node(e, n).inputs.stopTimeout, STOP_TIMEOUT_SECONDS, n);
            assert.ok(STOP_TIMEOUT_SECONDS >= 120);
        });

        it("each node's published HTTP and SSH ports admit only the balancer, before the container starts", () => {
            for (const n of NODES) {
                for (const [service, port] of [["http", 80], ["ssh", 2222]] as const) {
                    const fw = node(e, n, `-firewall-${service}`);
                    const script = str(fw, "create");
                    assert.match(script, new RegExp(`--ctorigdstport ${port} `), `${n} ${service}`);
                    // The balancer (edge1, 10.0.0.5) is the only source the chain returns for.
                    assert.deepEqual([...script.matchAll(/-A GLC-GITLAB-[A-Z]+ -s (\S+) -j RETURN/g)].map(m => m[1]), ["10.0.0.5/32"], `${n} ${service}`);
                    assert.ok(directlyDependsOn(node(e, n), fw), `${n}'s container waits for its ${service} firewall`);
                }
            }
        });
    });

    describe("ordering", () => {
        it("starts each node after the previous one answers /-/readiness, the migration node first (GitLab's zero-downtime order; a first deploy follows it too)", () => {
            assert.ok(!dependsOn(e, node(e, "app1"), node(e, "app2")));
            assert.ok(directlyDependsOn(node(e, "app2"), node(e, "app1", "-ready")), "app2 waits for app1's readiness");
            assert.ok(directlyDependsOn(node(e, "app3"), node(e, "app2", "-ready")), "app3 waits for app2's readiness");
            assert.ok(!dependsOn(e, node(e, "app2"), node(e, "app3")), "app2 does not wait for app3");
        });

        it("waits for readiness after each container (re)start", () => {
            for (const n of NODES) {
                const ready = node(e, n, "-ready");
                assert.ok(directlyDependsOn(ready, node(e, n)));
                assert.deepEqual(ready.inputs.triggers, [`gitlab-gitlab-${n}-id`], "a replaced container is waited for again");
                assert.match(str(ready, "create"), /curl -fsS --max-time 10 -o \/dev\/null http:\/\/127\.0\.0\.1\/-\/readiness/);
                assert.match(str(ready, "create"), /did not answer \/-\/readiness within 1200s/);
            }
        });

        it("chains the reconfigure steps node after node, migration node first", () => {
            assert.ok(directlyDependsOn(node(e, "app2", "-rollout"), node(e, "app1", "-rollout")));
            assert.ok(directlyDependsOn(node(e, "app3", "-rollout"), node(e, "app2", "-rollout")));
            assert.ok(!dependsOn(e, node(e, "app1", "-rollout"), node(e, "app2", "-rollout")));
            for (const n of NODES) {
                const rollout = node(e, n, "-rollout");
                assert.match(str(rollout, "update"), new RegExp(`docker exec gitlab-gitlab-${n} gitlab-ctl reconfigure[\\s\\S]*readiness`));
                assert.ok(directlyDependsOn(rollout, node(e, n, "-gitlab-rb")), "reconfigure after the new gitlab.rb is on the host");
                assert.ok(directlyDependsOn(rollout, node(e, n, "-ready")));
            }
        });

        it("lets the balancer start only once every node is ready", () => {
            for (const n of NODES) assert.ok(directlyDependsOn(e.byName("gitlab-lb"), node(e, n, "-ready")), n);
        });
    });

    describe("updates that do not replace", () => {
        it("a gitlab.rb setting changes no container, and triggers every node's rolling reconfigure", async () => {
            const cfg = threeNodeConfig();
            cfg.gitlab.rails = { time_zone: "Europe/Berlin" };
            const after = await evaluate(cfg);
            assert.deepEqual(changed(e, after, r => r.type === CONTAINER), []);
            const diff = changed(e, after);
            for (const n of NODES) {
                assert.ok(diff.includes(`gitlab-gitlab-${n}-gitlab-rb`), n);
                assert.ok(diff.includes(`gitlab-gitlab-${n}-rollout`), n);
            }
            assert.deepEqual(diff.filter(d => !/^gitlab-gitlab-app\d-(gitlab-rb|rollout)$/.test(d)), []);
            // What the engine does with that diff, by the providers' replace-on-change rules: the
            // rollout must be an update (it runs `update`: reconfigure), not a replace (`create`).
            const ops = new Map(classify(e.resources, after.resources).resources.map(r => [r.name, r]));
            for (const n of NODES) {
                const rollout = ops.get(`gitlab-gitlab-${n}-rollout`)!;
                assert.equal(rollout.op, "update", `${n}: ${JSON.stringify(rollout)}`);
                assert.deepEqual(rollout.changedInputs, ["update"]);
                assert.equal(ops.get(`gitlab-gitlab-${n}-gitlab-rb`)!.op, "update");
                assert.equal(ops.get(`gitlab-gitlab-${n}`)!.op, "same");
            }
        });

        it("a new certificate and key are written first, then nginx is tested and reloaded once", async () => {
            const cfg = threeNodeConfig();
            cfg.loadBalancer.tls = { ...cfg.loadBalancer.tls, certificate: "-----BEGIN CERTIFICATE-----\nNEW\n-----END CERTIFICATE-----" };
            const after = await evaluate(cfg);
            const ops = classify(e.resources, after.resources).resources.filter(r => r.op !== "same");
            assert.deepEqual(ops.map(r => [r.name, r.op]), [["gitlab-lb-tls-certificate", "update"], ["gitlab-lb-tls-reload", "update"]]);
            const reload = after.byName("gitlab-lb-tls-reload");
            assert.match(str(reload, "update"), /nginx -t -q -c \/etc\/nginx\/gitlab-cluster\/nginx\.conf && docker exec gitlab-lb nginx -s reload/);
            for (const f of ["gitlab-lb-tls-certificate", "gitlab-lb-tls-key"]) {
                assert.ok(reload.dependencies.includes(after.byName(f).urn), f);
                assert.doesNotMatch(str(after.byName(f), "create"), /reload/);
            }
        });

        it("adding a fourth node leaves every existing node untouched; only the balancer, export and database rules change", async () => {
            const cfg = threeNodeConfig();
            cfg.hosts.app4 = { address: "10.0.0.14", ssh: { hostKey: testHostKey("app4") } };
            cfg.roles.gitlab.push("app4");
            const after = await evaluate(cfg);
            const diff = changed(e, after);
            const existingChanged = diff.filter(d => /app[123]/.test(d));
            assert.deepEqual(existingChanged, []);
            assert.deepEqual(diff.filter(d => !d.includes("app4")), ["gitlab-lb-config", "gitlab-nfs-export", "gitlab-postgres-firewall", "gitlab-postgres-hba", "gitlab-redis-firewall"]);
        });

        it("a balancer setting touches nothing on the GitLab or data hosts", async () => {
            const cfg = threeNodeConfig();
            cfg.loadBalancer.proxyReadTimeoutSeconds = 7200;
            const after = await evaluate(cfg);
            assert.deepEqual(changed(e, after), ["gitlab-lb-config"]);
        });

        it("the comparison sees a change where there is one (the check can fail)", async () => {
            const cfg = threeNodeConfig();
            cfg.gitlab.nodeSshPort = 2223;
            const after = await evaluate(cfg);
            assert.ok(changed(e, after, r => r.type === CONTAINER).length === 3);
        });
    });

    describe("behind the balancer, per node (gitlab.rb loaded by Ruby)", () => {
        for (const n of NODES) {
            it(`${n}`, () => {
                const s = loadGitlabRb(str(node(e, n, "-gitlab-rb"), "stdin"));
                assert.equal(s.gitlab_rails.auto_migrate, n === "app1");
                assert.deepEqual(s.nginx.real_ip_trusted_addresses, ["10.0.0.5/32"]);
                assert.deepEqual(s.gitlab_rails.trusted_proxies, ["10.0.0.5/32"]);
                assert.deepEqual(s.gitlab_rails.monitoring_whitelist, ["127.0.0.0/8", "::1/128", "10.0.0.5/32"]);
                assert.deepEqual(s.nginx.proxy_set_headers, { "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on" });
                assert.equal(s.gitlab_rails.gitlab_shell_ssh_port, 2222);
                assert.equal(s.user, undefined, "user['uid']/['gid'] do nothing in the Docker image (git is 998:998 there)");
                assert.equal(s.gitlab_rails.initial_root_password !== undefined, n === "app1");
            });
        }
    });

    describe("NFS as GitLab documents it", () => {
        it("mounts with exactly GitLab's recommended options; the server's node uses the directory directly", () => {
            for (const n of ["app2", "app3"]) {
                const create = str(e.byName(`gitlab-nfs-mount-${n}`), "create");
                // GitLab's options, and nosuid,nodev: root in one node must not plant setuid files for the others.
                assert.ok(create.includes(` nfs ${[...GITLAB_NFS_MOUNT_OPTIONS, "nosuid", "nodev"].join(",")} 0 0`), n);
                assert.doesNotMatch(create, /\bsoft\b|nocto/);
            }
            assert.throws(() => e.byName("gitlab-nfs-mount-app1"), /no resource named/);
            assert.ok((node(e, "app1").inputs.volumes as { hostPath: string }[]).some(v => v.hostPath === "/srv/gitlab-nfs/git-data"));
        });

        it("turns off lease delegation on the server", () => {
            assert.match(str(e.byName("gitlab-nfs-export"), "create"), /fs\.leases-enable = 0/);
        });
    });
});
