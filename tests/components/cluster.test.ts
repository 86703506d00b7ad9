import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { DEFAULT_IMAGES } from "../../components/config";
import { GITLAB_SHARED_DIRECTORIES, SHARE_SENTINEL_IN_CONTAINER } from "../../components/render/nfs";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { TEST_PRIVATE_KEY, TEST_TLS_KEY, threeNodeConfig } from "../fixtures";
import { CONTAINER, dependsOn, ofType, REMOTE_COMMAND, str, strings } from "../support/graph";
import { loadGitlabRb, tempDir } from "../support/readers";

const keyDir = tempDir("keys");
process.env.GITLAB_CLUSTER_KEY_DIR = keyDir;
const passwordFor = (name: string) => `pw-of-${name}-'"\\$x`;

describe("three-node cluster under mocks", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(threeNodeConfig(), { passwordFor }); });

    it("runs Redis on data1: generated password, volume, healthcheck, published on data1's address only", () => {
        const redis = e.byName("gitlab-redis");
        assert.equal(redis.type, CONTAINER);
        const ports = redis.inputs.ports as { internal: number; external: number; ip: string }[];
        assert.deepEqual(ports.map(p => [p.internal, p.external, p.ip]), [[6379, 6379, "10.0.0.21"]]);
        assert.equal(redis.inputs.restart, "unless-stopped");
        assert.ok((redis.inputs.healthcheck as { tests: string[] }).tests.length > 0);
        assert.ok((redis.inputs.volumes as { volumeName?: string }[]).some(v => v.volumeName === "gitlab-redis-data"));
        const conf = e.byName("gitlab-redis-config");
        assert.ok(conf.secretInputs.includes("stdin"));
        assert.match(str(conf, "stdin"), /^requirepass "pw-of-gitlab-redis-password-'\\"\\\\\$x"$/m);
        assert.match(str(conf, "stdin"), /^appendonly yes$/m);
    });

    it("runs PostgreSQL on data1: scram access for app1..3 only, role with the generated password, extensions", () => {
        const pg = e.byName("gitlab-postgres");
        assert.equal((pg.inputs.ports as { ip: string }[])[0]!.ip, "10.0.0.21");
        assert.ok(!JSON.stringify(pg.inputs).includes("pw-of-"), "no password in the container's inputs");
        const hba = str(e.byName("gitlab-postgres-hba"), "stdin");
        assert.deepEqual(hba.split("\n").filter(l => l.startsWith("host")).map(l => l.split(/\s+/)[3]), ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"]);
        const role = e.byName("gitlab-postgres-gitlab-role");
        assert.ok(role.secretInputs.includes("stdin"));
        assert.match(str(role, "stdin"), /PASSWORD 'pw-of-gitlab-postgres-password-''"\\\$x';/);
        assert.ok(dependsOn(e, role, pg));
    });

    it("firewalls Redis and PostgreSQL to the GitLab hosts before their containers start", () => {
        for (const [tier, port] of [["redis", 6379], ["postgres", 5432]] as const) {
            const fw = e.byName(`gitlab-${tier}-firewall`);
            assert.equal((fw.inputs.connection as { host: string }).host, "10.0.0.21");
            const create = str(fw, "create");
            assert.match(create, new RegExp(`--ctorigdst 10\\.0\\.0\\.21 --ctorigdstport ${port} -j GLC-${tier.toUpperCase()}`));
            assert.deepEqual([...create.matchAll(/-A GLC-\w+ -s (\S+) -j RETURN/g)].map(m => m[1]), ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"]);
            assert.match(str(fw, "delete"), /iptables -X GLC-/);
            assert.ok(e.byName(`gitlab-${tier}`).dependencies.includes(fw.urn), `${tier} starts after its firewall`);
        }
    });

    it("flows the generated DB and Redis passwords into every node's gitlab.rb", () => {
        for (const node of ["app1", "app2", "app3"]) {
            const push = e.byName(`gitlab-gitlab-${node}-gitlab-rb`);
            assert.ok(push.secretInputs.includes("stdin"), node);
            const s = loadGitlabRb(str(push, "stdin"));
            assert.equal(s.gitlab_rails.db_password, passwordFor("gitlab-postgres-password"));
            assert.equal(s.gitlab_rails.redis_password, passwordFor("gitlab-redis-password"));
            assert.equal(s.gitlab_rails.db_host, "10.0.0.21");
            assert.equal(s.external_url, "https://gitlab.example.com");
        }
    });

    it("flows the node list into nginx.conf", () => {
        const conf = str(e.byName("gitlab-lb-config"), "stdin");
        assert.deepEqual([...conf.matchAll(/server (\S+:80) /g)].map(m => m[1]), ["10.0.0.11:80", "10.0.0.12:80", "10.0.0.13:80"]);
        assert.equal((e.byName("gitlab-lb-config").inputs.connection as { host: string }).host, "10.0.0.5");
    });

    it("exports the shared directories from app1 to app2 and app3 only", () => {
        const exp = e.byName("gitlab-nfs-export");
        assert.equal((exp.inputs.connection as { host: string }).host, "10.0.0.11");
        const line = /printf '%s' '# Managed by gitlab-cluster \(Pulumi\)\.\n([^']*)\n'/.exec(str(exp, "create"));
        assert.ok(line, "the exports line is in the script");
        assert.equal(line[1], "/srv/gitlab-nfs 10.0.0.12(rw,sync,no_root_squash,no_subtree_check) 10.0.0.13(rw,sync,no_root_squash,no_subtree_check)");
        assert.match(str(exp, "delete"), /exportfs -ra/);
    });

    it("mounts the export on every other GitLab host, before its container starts", () => {
        const mounts = ofType(e, REMOTE_COMMAND).filter(r => r.name.startsWith("gitlab-nfs-mount-"));
        assert.deepEqual(mounts.map(m => (m.inputs.connection as { host: string }).host).sort(), ["10.0.0.12", "10.0.0.13"]);
        for (const m of mounts) {
            assert.match(str(m, "create"), /10\.0\.0\.11:\/srv\/gitlab-nfs \/srv\/gitlab-nfs nfs vers=4\.1,hard,rsize=1048576,wsize=1048576,noatime,nofail,_netdev,lookupcache=positive,nosuid,nodev 0 0/);
            assert.ok(m.dependencies.includes(e.byName("gitlab-nfs-export").urn) || m.dependencies.some(u => u.endsWith("::gitlab-nfs-export")), `${m.name} waits for the export itself`);
            const node = m.name.replace("gitlab-nfs-mount-", "");
            assert.ok(dependsOn(e, e.byName(`gitlab-gitlab-${node}`), m), `${node}'s container waits for its mount`);
        }
    });

    it("gives every GitLab container exactly the directories GitLab shares, from the same path", () => {
        for (const node of ["app1", "app2", "app3"]) {
            const c = e.byName(`gitlab-gitlab-${node}`);
            const volumes = c.inputs.volumes as { hostPath: string; containerPath: string }[];
            const shared = volumes.filter(v => v.hostPath.startsWith("/srv/gitlab-nfs/"));
            // GitLab's shared directories, then the share's read-only marker (the start guard's; nothing of GitLab's).
            assert.deepEqual(shared.map(v => v.containerPath), [...GITLAB_SHARED_DIRECTORIES.map(d => d.containerPath), SHARE_SENTINEL_IN_CONTAINER]);
            assert.deepEqual(volumes.filter(v => !v.hostPath.startsWith("/srv/gitlab-nfs/")).map(v => v.containerPath), ["/etc/gitlab", "/var/log/gitlab", "/var/opt/gitlab"]);
            const address = `10.0.0.1${node.slice(-1)}`;
            assert.deepEqual((c.inputs.ports as { internal: number; external: number; ip: string }[]).map(p => [p.internal, p.external, p.ip]), [[80, 80, address], [22, 2222, address]]);
            assert.equal(c.inputs.privileged ?? false, false);
        }
    });

    it("connects to each host with the configured user, key (secret) and pinned host key", () => {
        for (const r of ofType(e, REMOTE_COMMAND)) {
            const conn = r.inputs.connection as { user: string; privateKey: string; hostKey: string; host: string };
            assert.equal(conn.user, "root");
            assert.equal(conn.privateKey, TEST_PRIVATE_KEY);
            assert.ok(r.secretInputs.some(p => p === "connection" || p === "connection.privateKey"), `${r.name}: key not secret`);
            assert.match(conn.hostKey, /^ssh-ed25519 /);
        }
        const provider = e.byName("gitlab-app2-docker");
        assert.equal(provider.inputs.host, "ssh://root@10.0.0.12:22");
        const opts = JSON.parse(provider.inputs.sshOpts as string) as string[];
        const keyFile = opts[opts.indexOf("-i") + 1]!;
        assert.equal(keyFile, path.join(keyDir, "app2.key"));
        assert.equal(fs.readFileSync(keyFile, "utf8"), `${TEST_PRIVATE_KEY}\n`);
        assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
        assert.ok(opts.includes("StrictHostKeyChecking=yes"));
        const knownHosts = opts.find(o => o.startsWith("UserKnownHostsFile="))!.split("=")[1]!;
        assert.equal(fs.readFileSync(knownHosts, "utf8"), "10.0.0.12 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIapp2\n");
    });

    it("sends every file with content through stdin, marked secret, never on a command line", () => {
        const secrets = [TEST_PRIVATE_KEY, TEST_TLS_KEY, ...["gitlab-postgres-password", "gitlab-redis-password", "gitlab-postgres-superuser-password", "gitlab-initial-root-password"].map(passwordFor)];
        const leaks: string[] = [];
        for (const r of e.resources) {
            const secretPaths = r.secretInputs;
            for (const [at, value] of strings(r.inputs)) {
                const isSecret = secretPaths.some(p => at === p || at.startsWith(`${p}.`) || at.startsWith(`${p}[`));
                if (!isSecret && secrets.some(s => value.includes(s) || value.includes(s.split("\n")[1] ?? s))) leaks.push(`${r.name}.${at}`);
            }
        }
        assert.deepEqual(leaks, []);
        assert.ok(e.byName("gitlab-lb-tls-key").secretInputs.includes("stdin"));
    });

    it("exports the URL, balancer, nodes, endpoints, and the initial root password as a secret", async () => {
        assert.equal(e.cluster.url, "https://gitlab.example.com");
        assert.equal(e.cluster.balancerAddress, "10.0.0.5");
        assert.deepEqual(e.cluster.nodes.map(n => [n.name, n.address, n.migrationNode]), [["app1", "10.0.0.11", true], ["app2", "10.0.0.12", false], ["app3", "10.0.0.13", false]]);
        assert.deepEqual(e.cluster.endpoints, { postgres: "10.0.0.21:5432", redis: "10.0.0.21:6379", ssh: "10.0.0.5:2222" });
        const root = await e.value(e.cluster.initialRootPassword);
        assert.equal(root.value, passwordFor("gitlab-initial-root-password"));
        assert.equal(root.secret, true);
    });

    it("pins every image it runs", () => {
        const images = ofType(e, "docker:index/remoteImage:RemoteImage").map(r => r.inputs.name as string);
        const gitlab = threeNodeConfig().gitlab.image as string;
        assert.deepEqual(images.sort(), [gitlab, gitlab, gitlab, DEFAULT_IMAGES.loadBalancer, DEFAULT_IMAGES.postgres, DEFAULT_IMAGES.redis].sort());
    });
});

describe("configuration errors stop the program before anything is created", () => {
    it("registers no resource for a bad config", async () => {
        const raw = threeNodeConfig();
        raw.roles.gitlab.push("app9");
        await assert.rejects(evaluate(raw), /roles\.gitlab\[3\]: names host "app9"/);
    });
});

describe("a local host with sudo", () => {
    it("runs the wrapped script for real: the file arrives from stdin with its mode", async () => {
        const stack = readStackFile(path.join(__dirname, "..", "..", "..", "Pulumi.dev.yaml"));
        const dataRoot = path.join(tempDir("sudo"), "gitlab");
        const cfg = { ...stack.config, gitlab: { ...(stack.config.gitlab as object), dataRoot } };
        const e = await evaluate(cfg, { stack: "dev", passwordFor });
        const push = e.byName("gitlab-gitlab-local-gitlab-rb");
        const r = spawnSync("sh", ["-c", str(push, "create")], { input: str(push, "stdin"), encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        const file = path.join(dataRoot, "config", "gitlab.rb");
        assert.equal(fs.readFileSync(file, "utf8"), str(push, "stdin"));
        assert.equal(fs.statSync(file).mode & 0o777, 0o600);
        assert.equal(loadGitlabRb(fs.readFileSync(file, "utf8")).gitlab_rails.db_password, passwordFor("gitlab-postgres-password"));
    });
});

describe("the evaluator itself", () => {
    it("fails when a resource cannot be registered, instead of leaving it out", () => {
        // A NUL cannot be written into gitlab.rb or SQL: the render inside an apply throws. In a
        // child process, because node:test blames every unhandled rejection on the running test.
        const dist = path.join(__dirname, "..", "..");
        const program = `require(${JSON.stringify(path.join(dist, "scripts", "evaluate.js"))}).evaluate(require(${JSON.stringify(path.join(dist, "tests", "fixtures.js"))}).threeNodeConfig(), { passwordFor: () => "a\\0b" })
            .then(() => { console.log("evaluated"); process.exit(0); }, err => { console.error("rejected: " + err.message); process.exit(3); });`;
        const r = spawnSync(process.execPath, ["-e", program], { encoding: "utf8", env: { ...process.env, GITLAB_CLUSTER_KEY_DIR: keyDir } });
        assert.equal(r.status, 3, r.stdout + r.stderr);
        assert.match(r.stderr, /^rejected: .*cannot be written as a \w+ string: it contains a NUL/m);
    });
});

describe("the dev stack", () => {
    it("runs everything on the local Docker socket with local commands", async () => {
        const stack = readStackFile(path.join(__dirname, "..", "..", "..", "Pulumi.dev.yaml"));
        const e = await evaluate(stack.config, { stack: "dev", secretKeys: stack.secretKeys });
        assert.equal(e.byName("gitlab-local-docker").inputs.host, "unix:///var/run/docker.sock");
        assert.equal(ofType(e, REMOTE_COMMAND).length, 0);
        assert.ok(ofType(e, "command:local:Command").length > 0);
        assert.equal(e.resources.filter(r => r.name.includes("nfs")).length, 0, "one node needs no NFS");
        assert.equal(ofType(e, CONTAINER).length, 4);
        for (const c of ofType(e, "command:local:Command")) {
            assert.match(c.inputs.create as string, /^sudo -n sh -c '/, `${c.name} runs through sudo`);
        }
        const push = e.byName("gitlab-gitlab-local-gitlab-rb");
        assert.ok(push.secretInputs.includes("stdin") && !(push.inputs.create as string).includes("[generated"), "the secret stays on stdin");
    });
});
