// Least exposure of the Gitaly layout (issue 13), checked on its resource graph and, for the one
// script that handles the token, by running it: Gitaly published on its host's address only, on
// gitaly.port, behind a firewall that admits the GitLab hosts alone and stands before the
// container starts; only Gitaly running on that host; its token and gitlab-shell's secret on
// stdin only, into 0600 root files, never printed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { checkDataPortsFirewalled, checkGitalyPorts, gitalyListenPorts, type StackResource } from "../../policy/policies";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { gitalyConfig } from "../fixtures";
import { CONTAINER, directlyDependsOn, ofType, REMOTE_COMMAND, str } from "../support/graph";
import { loadGitlabRb, tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("gitaly-exposure-keys");
const passwordFor = (name: string) => `GXpw${name.replace(/[^A-Za-z0-9]/g, "")}0123456789`;
const TOKEN = passwordFor("gitlab-gitaly-token");
const SHELL_SECRET = passwordFor("gitlab-gitaly-shell-secret");
const GITALY = "10.0.0.31";
const GITLAB_HOSTS = ["10.0.0.11", "10.0.0.12", "10.0.0.13"];
const RAILS_PUSHES = ["app1", "app2", "app3"].map(n => `gitlab-gitlab-${n}-gitlab-rb`);

/** The allowed sources of a firewall command's chain, in order. */
const sourcesOf = (firewall: RecordedResource, chain: string) =>
    [...str(firewall, "create").matchAll(new RegExp(`^-A ${chain} -s (\\S+) -j RETURN$`, "gm"))].map(m => m[1]!);

/** The evaluation as the policy pack's stack checks take it (the Docker provider's host for each Docker resource). */
function stackView(e: Evaluation): StackResource[] {
    const byUrn = new Map(e.resources.map(r => [r.urn, r]));
    return e.resources.map(r => ({
        urn: r.urn, name: r.name, type: r.type, props: r.inputs as Record<string, unknown>, dependencies: r.dependencies,
        dockerHost: r.provider ? byUrn.get(r.provider.slice(0, r.provider.lastIndexOf("::")))?.inputs.host as string | undefined : undefined,
    }));
}

describe("least exposure of the Gitaly layout (issue 13)", () => {
    let e: Evaluation;
    before(async () => { e = await evaluate(gitalyConfig(), { passwordFor }); });

    it("runs Gitaly unprivileged, off the host network, without added capabilities or the Docker socket, its repositories on its own disk", () => {
        const c = e.byName("gitlab-gitaly");
        assert.equal(c.type, CONTAINER);
        assert.notEqual(c.inputs.privileged, true);
        assert.equal(c.inputs.networkMode, undefined);
        assert.equal(c.inputs.capabilities, undefined);
        const volumes = c.inputs.volumes as { hostPath: string; containerPath: string }[];
        assert.deepEqual(volumes.map(v => v.hostPath), ["/srv/gitlab-cluster/gitaly/config", "/srv/gitlab-cluster/gitaly/logs", "/srv/gitlab-cluster/gitaly/data"]);
        assert.ok(!volumes.some(v => /docker\.sock|gitlab-nfs/.test(v.hostPath)), "no Docker socket, no NFS share");
        // Only on gitaly1: no other host gets a Gitaly container.
        assert.deepEqual(ofType(e, CONTAINER).filter(r => /gitaly/.test(r.name)).map(r => r.name), ["gitlab-gitaly"]);
    });

    it("publishes only Gitaly's port, on the Gitaly host's address, and runs nothing else that listens", () => {
        assert.deepEqual(e.byName("gitlab-gitaly").inputs.ports, [{ internal: 8075, external: 8075, ip: GITALY }]);
        const rb = str(e.byName("gitlab-gitaly-gitlab-rb"), "stdin");
        // What the container listens on inside is exactly what it publishes.
        assert.deepEqual(gitalyListenPorts(rb), [8075]);
        const settings = loadGitlabRb(rb);
        for (const service of ["postgresql", "redis", "nginx", "puma", "sidekiq", "gitlab_workhorse", "gitlab_exporter", "gitlab_kas", "prometheus_monitoring"]) {
            assert.equal(settings[service]?.enable, false, `${service} is off on the Gitaly node`);
        }
        assert.equal(settings.gitaly.configuration.listen_addr, "0.0.0.0:8075", "inside the container; Docker publishes it on the host's address");
        assert.equal(settings.gitaly.configuration.prometheus_listen_addr, undefined, "no metrics listener besides Gitaly's own port");
        // The Rails nodes run no Gitaly and reach this one at its host's address.
        for (const push of RAILS_PUSHES) {
            const rails = loadGitlabRb(str(e.byName(push), "stdin"));
            assert.equal(rails.gitaly.enable, false, push);
            assert.deepEqual(rails.gitlab_rails.repositories_storages, { default: { gitaly_address: `tcp://${GITALY}:8075` } }, push);
        }
    });

    it("firewalls Gitaly to the GitLab hosts alone (not the balancer, the data or the NFS host), on each path, before the container starts", () => {
        const firewall = e.byName("gitlab-gitaly-firewall");
        assert.equal(firewall.type, REMOTE_COMMAND);
        assert.equal((firewall.inputs.connection as { host: string }).host, GITALY, "installed on the Gitaly host");
        assert.deepEqual(sourcesOf(firewall, "GLC-GITALY"), GITLAB_HOSTS.map(a => `${a}/32`));
        const create = str(firewall, "create");
        assert.match(create, /^-A GLC-GITALY -j DROP$/m);
        for (const jump of [
            `-I DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst ${GITALY} --ctorigdstport 8075 -j GLC-GITALY`,
            "-I DOCKER-USER -d 172.17.0.0/16 -p tcp --dport 8075 -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j GLC-GITALY",
            `-I INPUT -d ${GITALY} -p tcp --dport 8075 -m conntrack --ctdir ORIGINAL -j GLC-GITALY`,
        ]) assert.ok(create.includes(jump), jump);
        assert.ok(directlyDependsOn(e.byName("gitlab-gitaly"), firewall), "the container waits for its firewall");
        assert.match(str(firewall, "delete"), /iptables -X GLC-GITALY/);
        // The policy pack's stack checks agree: Gitaly known by its gitlab.rb, published on one address, firewalled.
        assert.deepEqual(checkGitalyPorts(stackView(e)), []);
        assert.deepEqual(checkDataPortsFirewalled(stackView(e)), []);
    });

    it("a non-default gitaly.port on IPv6 hosts: published, listened on and firewalled on that port, at the Gitaly host's address", async () => {
        const cfg = gitalyConfig();
        for (const h of Object.values(cfg.hosts) as { address: string }[]) h.address = `fd00::${h.address.split(".").pop()}`;
        cfg.gitaly = { port: 9075 };
        const v6 = await evaluate(cfg, { passwordFor });
        assert.deepEqual(v6.byName("gitlab-gitaly").inputs.ports, [{ internal: 9075, external: 9075, ip: "fd00::31" }]);
        assert.deepEqual(gitalyListenPorts(str(v6.byName("gitlab-gitaly-gitlab-rb"), "stdin")), [9075]);
        const firewall = v6.byName("gitlab-gitaly-firewall");
        assert.deepEqual(sourcesOf(firewall, "GLC-GITALY"), ["fd00::11/128", "fd00::12/128", "fd00::13/128"]);
        assert.ok(str(firewall, "create").includes("ip6tables -I DOCKER-USER -p tcp -m conntrack --ctdir ORIGINAL --ctorigdst fd00::31 --ctorigdstport 9075 -j GLC-GITALY"));
        assert.match(str(v6.byName("gitlab-gitlab-app1-gitlab-rb"), "stdin"), /'gitaly_address' => 'tcp:\/\/\[fd00::31\]:9075'/);
        assert.deepEqual(checkGitalyPorts(stackView(v6)), []);
        assert.deepEqual(checkDataPortsFirewalled(stackView(v6)), []);
    });

    it("sends the token and gitlab-shell's secret on stdin only (marked secret), into 0600 root gitlab.rb files; the Rails nodes' match Gitaly's", () => {
        const pushes = ["gitlab-gitaly-gitlab-rb", ...RAILS_PUSHES];
        for (const name of pushes) {
            const push = e.byName(name);
            assert.ok(push.secretInputs.includes("stdin"), name);
            const writes = e.facts.commands.get(name)?.writes;
            assert.equal(writes?.mode, "0600", name);
            assert.match(writes!.path, /\/config\/gitlab\.rb$/, name);
            assert.match(str(push, "create"), /^umask 077$/m, name);
            assert.match(str(push, "create"), /^chmod 0600 "\$tmp"$/m, name);
            assert.match(str(push, "create"), /^chown 0:0 "\$tmp"$/m, name);
            const rb = str(push, "stdin");
            assert.ok(rb.includes(TOKEN) && rb.includes(SHELL_SECRET), `${name} holds both`);
            assert.ok(!str(push, "create").includes(TOKEN) && !str(push, "create").includes(SHELL_SECRET), `${name}: not on the command line`);
        }
        assert.equal(e.facts.commands.get("gitlab-gitaly-gitlab-rb")?.writes?.path, "/srv/gitlab-cluster/gitaly/config/gitlab.rb");
        const gitaly = loadGitlabRb(str(e.byName("gitlab-gitaly-gitlab-rb"), "stdin"));
        assert.equal(gitaly.gitaly.configuration.auth.token, TOKEN);
        assert.equal(gitaly.gitlab_shell.secret_token, SHELL_SECRET);
        for (const push of RAILS_PUSHES) {
            const rails = loadGitlabRb(str(e.byName(push), "stdin"));
            assert.equal(rails.gitlab_rails.gitaly_token, TOKEN, push);
            assert.equal(rails.gitlab_shell.secret_token, SHELL_SECRET, push);
        }
        // Nowhere else: not the container, not any other command or plain input.
        const elsewhere = e.resources.filter(r => !pushes.includes(r.name) && JSON.stringify(r.inputs).match(new RegExp(`${TOKEN}|${SHELL_SECRET}`)));
        assert.deepEqual(elsewhere.map(r => r.name), []);
    });

    it("writing the Gitaly node's gitlab.rb (the real script) prints its path, never the token or the secret, and leaves it 0600 root", () => {
        const push = e.byName("gitlab-gitaly-gitlab-rb");
        const root = tempDir("gitaly-rb-write");
        const script = str(push, "create").replaceAll("/srv/gitlab-cluster/gitaly", root);
        assert.notEqual(script, str(push, "create"));
        const asRoot = process.getuid?.() === 0;
        const run = () => spawnSync("sh", ["-c", asRoot ? script : script.replace(/^chown 0:0 "\$tmp"$/m, ":")], { input: str(push, "stdin"), encoding: "utf8" });
        for (const round of ["written", "unchanged"]) {
            const r = run();
            assert.equal(r.status, 0, r.stderr);
            const printed = r.stdout + r.stderr;
            assert.ok(!printed.includes(TOKEN) && !printed.includes(SHELL_SECRET), `${round}: the output holds a secret`);
            assert.equal(printed.trim(), `${round}: ${root}/config/gitlab.rb`);
        }
        const file = path.join(root, "config", "gitlab.rb");
        assert.equal(fs.readFileSync(file, "utf8"), str(push, "stdin"));
        const stat = fs.statSync(file);
        assert.equal(stat.mode & 0o777, 0o600);
        if (asRoot) assert.equal(stat.uid, 0);
        assert.deepEqual(fs.readdirSync(path.join(root, "config")), ["gitlab.rb"], "no temp file left behind");
    });

    it("gives the Gitaly container its gitlab.rb by mount only: no env, command, label, entrypoint or upload carries config", () => {
        const c = e.byName("gitlab-gitaly").inputs;
        for (const field of ["envs", "command", "entrypoints", "labels", "uploads"]) assert.equal(c[field], undefined, field);
        assert.deepEqual(c.healthcheck, { tests: ["CMD", "gitlab-ctl", "status", "gitaly"], interval: "60s", timeout: "30s", retries: 5, startPeriod: "300s" });
    });
});
