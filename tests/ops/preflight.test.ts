// `ops preflight` (issue 16, item 3): what each host of a stack must have before the first
// `pulumi up`, checked over SSH. The plan is data; the script runs here against stand-ins of
// docker, ss, timedatectl and df; the command runs against a fake runner.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { main } from "../../scripts/ops";
import { OpsError, parsePreflight, preflightPlan, preflightScript, type HostRef, type PreflightConfig, type PreflightHost, type RunResult, type Runner } from "../../scripts/ops/plan";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");

const config: PreflightConfig = {
    hosts: Object.fromEntries(["app1", "app2", "data1", "edge1"].map((n, i) => [n, { name: n, address: `10.0.0.${i + 11}`, local: false, sudo: n === "data1", ssh: { user: "deploy", port: 22 } }])),
    roles: { redis: "data1", postgres: "data1", gitlab: ["app1", "app2"], nfsServer: "app1", loadBalancer: "edge1" },
    gitlab: { dataRoot: "/srv/gitlab", nodeSshPort: 2222 },
    gitaly: { port: 8075, dataRoot: "/srv/gitlab-cluster/gitaly" },
    postgres: { port: 5432, dataRoot: "/srv/gitlab-cluster/postgres" },
    redis: { port: 6379, dataRoot: "/srv/gitlab-cluster/redis" },
    loadBalancer: { httpPort: 80, httpsPort: 443, sshPort: 2222, tls: {} },
};

/** Runs one host's script here, with stand-ins for the system's commands. */
function runHere(h: PreflightHost, stand: { docker?: string; ss?: string; timedatectl?: string; df?: string }): string {
    const bin = tempDir("preflight-bin");
    const write = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    write("docker", stand.docker ?? "case \"$1\" in version) echo 27.3.1;; ps) exit 0;; esac");
    write("ss", stand.ss ?? "exit 0");
    write("timedatectl", stand.timedatectl ?? "echo yes");
    write("df", stand.df ?? "printf 'Filesystem 1024-blocks Used Available Capacity Mounted\\n/dev/sda1 100 1 104857600 1%% /\\n'");
    write("sudo", "exit 0");
    write("iptables", "exit 0");
    const r = spawnSync("sh", ["-c", preflightScript(h)], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
}

describe("ops preflight: the plan", () => {
    it("the Gitaly layout: the Gitaly host gets its port and data root; a storage host that only exports NFS is not asked for Docker", () => {
        const hosts = { ...config.hosts, gitaly1: { name: "gitaly1", address: "10.0.0.31", local: false, sudo: false, ssh: { user: "deploy", port: 22 } },
            nfs1: { name: "nfs1", address: "10.0.0.41", local: false, sudo: false, ssh: { user: "deploy", port: 22 } } };
        const plan = preflightPlan({ ...config, hosts, roles: { ...config.roles, gitaly: "gitaly1", nfsServer: "nfs1" } });
        const gitaly = plan.find(h => h.host.name === "gitaly1")!;
        assert.deepEqual(gitaly.roles, ["gitaly"]);
        assert.deepEqual(gitaly.ports.map(p => [p.port, p.container]), [[8075, "gitlab-gitaly"]]);
        assert.deepEqual(gitaly.dataRoots.map(d => d.path), ["/srv/gitlab-cluster/gitaly"]);
        const nfs = plan.find(h => h.host.name === "nfs1")!;
        assert.deepEqual(nfs.roles, ["nfsServer"]);
        const noDocker = runHere(nfs, { docker: "exit 1" });
        assert.doesNotMatch(noDocker, /docker/, "an NFS-only host is not asked for Docker");
        assert.match(runHere(gitaly, { docker: "exit 1" }), /^missing docker: /m, "the Gitaly host is");
    });

    it("each host gets the ports the stack publishes there and its data roots", () => {
        const plan = preflightPlan(config);
        const byName = Object.fromEntries(plan.map(h => [h.host.name, h]));
        assert.deepEqual(Object.keys(byName).sort(), ["app1", "app2", "data1", "edge1"]);
        assert.deepEqual(byName.app1!.ports.map(p => [p.port, p.container]), [[80, "gitlab-gitlab-app1"], [2222, "gitlab-gitlab-app1"]]);
        assert.deepEqual(byName.app1!.roles, ["gitlab", "nfsServer"]);
        assert.deepEqual(byName.data1!.ports.map(p => p.port), [5432, 6379]);
        assert.deepEqual(byName.data1!.roles, ["postgres", "redis"]);
        assert.equal(byName.data1!.sudo, true);
        assert.deepEqual(byName.edge1!.ports.map(p => p.port), [80, 443, 2222]);
        assert.deepEqual(byName.app1!.dataRoots, [{ path: "/srv/gitlab", minFreeGiB: 20 }]);
        assert.deepEqual(preflightPlan({ ...config, loadBalancer: { ...config.loadBalancer, tls: undefined } }).find(h => h.host.name === "edge1")!.ports.map(p => p.port), [80, 2222], "443 only with TLS");
        assert.throws(() => preflightPlan({ ...config, roles: { ...config.roles, redis: "nope" } }), (e: unknown) => e instanceof OpsError && e.exitCode === 2);
    });

    it("the script is POSIX sh that shellcheck accepts", () => {
        for (const h of preflightPlan(config)) {
            const script = `#!/bin/sh\n${preflightScript(h)}`;
            assert.equal(shSyntax(script).status, 0);
            const lint = shellcheck(script);
            assert.equal(lint.status, 0, lint.stdout);
        }
    });
});

describe("ops preflight: the checks on a host", () => {
    const edge = () => preflightPlan(config).find(h => h.host.name === "edge1")!;
    const data = () => preflightPlan(config).find(h => h.host.name === "data1")!;

    it("all present: one ok line per check", () => {
        const results = parsePreflight("edge1", runHere(edge(), {}));
        // systemd is whatever this machine has (a container here may run none).
        assert.deepEqual(results.filter(r => !r.ok && r.check !== "systemd"), []);
        assert.deepEqual(results.map(r => r.check), ["docker", "iptables", "systemd", "time-sync", "port-80", "port-443", "port-2222"]);
    });

    it("says exactly what is missing and what to do", () => {
        const results = parsePreflight("edge1", runHere(edge(), {
            docker: "case \"$1\" in version) echo 'permission denied while trying to connect to the Docker daemon socket' >&2; exit 1;; ps) exit 0;; esac",
            ss: "case \"$*\" in *':443 '*) echo 'LISTEN 0 511 0.0.0.0:443 0.0.0.0:*';; esac",
            timedatectl: "echo no",
        }));
        const missing = Object.fromEntries(results.filter(r => !r.ok).map(r => [r.check, r.detail]));
        assert.match(missing.docker ?? "", /not reachable as \S+: add \S+ to the docker group \(sudo usermod -aG docker/);
        assert.match(missing["port-443"] ?? "", /port 443 is in use by another program, and the stack publishes balancer HTTPS/);
        assert.match(missing["time-sync"] ?? "", /not synchronized/);
        const disk = parsePreflight("data1", runHere(data(), { df: "printf 'Filesystem 1024-blocks Used Available Capacity Mounted\\n/dev/sda1 100 1 1048576 1%% /\\n'" }));
        assert.match(disk.find(r => r.check === "disk" && !r.ok)?.detail ?? "", /^\/srv\/gitlab-cluster\/postgres: only 1 GiB free on \/\S*, 5 GiB wanted/);
        assert.equal(results.find(r => r.check === "port-80")?.ok, true);
    });

    it("a port held by this stack's own container is fine (preflight again after a deploy)", () => {
        const results = parsePreflight("data1", runHere(data(), {
            ss: "echo 'LISTEN 0 4096 10.0.0.13:5432 0.0.0.0:*'",
            docker: "case \"$1\" in version) echo 27.3.1;; ps) case \"$*\" in *publish=5432*) echo gitlab-postgres;; *publish=6379*) echo someone-else;; esac;; esac",
        }));
        assert.match(results.find(r => r.check === "port-5432")!.detail, /held by gitlab-postgres, this stack's own/);
        assert.equal(results.find(r => r.check === "port-6379")!.ok, false);
        assert.equal(results.find(r => r.check === "sudo")!.ok, true);
    });
});

class FakeRunner implements Runner {
    constructor(private readonly answer: (host: HostRef, script: string) => Partial<RunResult>) {}
    async run(host: HostRef, script: string): Promise<RunResult> {
        return { code: 0, stdout: "", stderr: "", ...this.answer(host, script) };
    }
}

describe("ops preflight: the command", () => {
    const allOk = (_h: HostRef, script: string) => ({ stdout: [...script.matchAll(/say (?:ok|missing) ([a-z0-9-]+) /g)].map(m => `ok ${m[1]}: fine`).join("\n") });

    it("reads Pulumi.<stack>.yaml (no outputs needed): exit 0 when every check passes on every host", async () => {
        const log: string[] = [];
        assert.equal(await main(["preflight", "--stack", "prod"], () => new FakeRunner(allOk), l => log.push(l)), 0);
        const text = log.join("\n");
        // The prod example: three GitLab nodes, data1, gitaly1, the NFS storage host nfs1, edge1.
        const hosts = ["app1", "app2", "app3", "data1", "gitaly1", "nfs1", "edge1"];
        for (const h of hosts) assert.match(text, new RegExp(`^${h} \\(`, "m"));
        assert.match(text, new RegExp(`^preflight: every check passed on ${hosts.length} host\\(s\\)$`, "m"));
    });

    it("exit 1 naming each missing thing, and a host SSH cannot reach", async () => {
        const log: string[] = [];
        const runner = new FakeRunner((h, script) => h.name === "app2"
            ? { code: 255, stderr: "ssh: connect to host 10.0.0.12 port 22: Connection refused", unreachable: "ssh: connect to host 10.0.0.12 port 22: Connection refused" }
            : h.name === "data1" ? { stdout: `${allOk(h, script).stdout}\nmissing iptables: iptables is not installed` } : allOk(h, script));
        assert.equal(await main(["preflight", "--stack", "prod"], () => runner, l => log.push(l)), 1);
        const text = log.join("\n");
        assert.match(text, /^ {2}MISSING ssh: could not reach app2 \(root@10\.0\.0\.12, port 22\) over SSH: .*Connection refused/m);
        assert.match(text, /^ {2}MISSING iptables: iptables is not installed$/m);
        assert.match(text, /^preflight: 2 missing: app2 ssh, data1 iptables$/m);
    });

    it("exit 2 for a stack without a stack file; --help documents the checks and exit codes", async () => {
        await assert.rejects(main(["preflight", "--stack", "no-such-stack"], () => new FakeRunner(allOk), () => undefined), (e: unknown) => e instanceof OpsError && e.exitCode === 2 && /Pulumi\.no-such-stack\.yaml does not exist/.test(e.message));
        const log: string[] = [];
        await main(["--help"], () => new FakeRunner(allOk), l => log.push(l));
        assert.match(log[0]!, /preflight +before the first pulumi up/);
        assert.match(log[0]!, /preflight: 0 every check passed, 1 something is missing/);
    });
});
