// Least exposure of the three-node cluster, checked on its resource graph: no privileged
// container, data services on their host's address only, pg_hba and the NFS export limited to
// the GitLab hosts, Redis behind its password, every secret file 0600, every SSH connection
// pinned to the configured host key, and a warning for a host without one.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { knownHostsLine } from "../../components/host";
import { SHARED_IDENTITY_FILES } from "../../components/render/scripts";
import { evaluate, type Evaluation, type RecordedResource } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { CONTAINER, ofType, REMOTE_COMMAND, str } from "../support/graph";
import { tempDir } from "../support/readers";

const keyDir = tempDir("exposure-keys");
process.env.GITLAB_CLUSTER_KEY_DIR = keyDir;
const passwordFor = (name: string) => `EXpw-${name}-0123456789`;
const GITLAB_ADDRESSES = ["10.0.0.11", "10.0.0.12", "10.0.0.13"];

/** A provider's sshOpts: provider inputs reach the engine JSON-encoded. */
function sshOpts(provider: RecordedResource): string[] {
    const raw = provider.inputs.sshOpts;
    return (typeof raw === "string" ? JSON.parse(raw) : raw) as string[];
}


describe("least exposure of the three-node cluster", () => {
    let e: Evaluation;
    let warnings: string[];
    before(async () => {
        warnings = [];
        const warn = console.warn;
        console.warn = (...args: unknown[]) => { warnings.push(args.map(String).join(" ")); };
        try {
            e = await evaluate(threeNodeConfig(), { passwordFor });
        } finally {
            console.warn = warn;
        }
    });

    it("runs no container privileged, on the host network, or with the Docker socket", () => {
        const containers = ofType(e, CONTAINER);
        assert.ok(containers.length >= 6, `${containers.length} containers`);
        for (const c of containers) {
            assert.notEqual(c.inputs.privileged, true, c.name);
            assert.ok(!["host"].includes(String(c.inputs.networkMode)), `${c.name} networkMode`);
            assert.equal(c.inputs.capabilities, undefined, `${c.name} adds no capabilities`);
            const volumes = (c.inputs.volumes as { hostPath?: string }[] | undefined) ?? [];
            assert.ok(!volumes.some(v => v.hostPath?.includes("docker.sock")), `${c.name} mounts the Docker socket`);
        }
    });

    it("publishes PostgreSQL and Redis on their host's address only", () => {
        for (const name of ["gitlab-postgres", "gitlab-redis"]) {
            const ports = e.byName(name).inputs.ports as { ip?: string }[];
            assert.ok(ports.length > 0);
            for (const p of ports) assert.equal(p.ip, "10.0.0.21", `${name} publishes on ${String(p.ip)}`);
        }
        for (const node of ["app1", "app2", "app3"]) {
            const ports = e.byName(`gitlab-gitlab-${node}`).inputs.ports as { ip?: string }[];
            for (const p of ports) assert.equal(p.ip, e.config.hosts[node]!.address, `${node} publishes on its own address`);
        }
    });

    it("pg_hba.conf lets only the GitLab hosts in over the network, by scram, as the GitLab user", () => {
        const hba = str(e.byName("gitlab-postgres-hba"), "stdin").split("\n").filter(l => l.trim() !== "" && !l.startsWith("#"));
        const network = hba.filter(l => /^host/.test(l));
        assert.deepEqual(network.map(l => l.split(/\s+/)[3]), GITLAB_ADDRESSES.map(a => `${a}/32`));
        for (const l of network) assert.deepEqual(l.split(/\s+/).filter((_, i) => i !== 3), ["host", "gitlabhq_production", "gitlab", "scram-sha-256"]);
        assert.deepEqual(hba.filter(l => !/^host/.test(l)), ["local   all       postgres           peer"]);
        assert.ok(!hba.some(l => /\btrust\b|\b0\.0\.0\.0\/0|::\/0|\ball\s+all\s+\S+\/\d+/.test(l)), "no trust, no catch-all");
    });

    it("Redis requires its generated password (requirepass in redis.conf)", () => {
        const conf = str(e.byName("gitlab-redis-config"), "stdin");
        assert.match(conf, new RegExp(`^requirepass "${passwordFor("gitlab-redis-password")}"$`, "m"));
        assert.ok(!/^protected-mode no/m.test(conf));
        const command = e.byName("gitlab-redis").inputs.command as string[];
        assert.ok(!command.some(a => a.startsWith("--")), "no command-line override of the config (e.g. --requirepass '')");
    });

    it("writes every file holding a secret with mode 0600", () => {
        const commands = ofType(e, REMOTE_COMMAND);
        const secretFiles = ["gitlab.rb", "redis.conf", "superuser-password", "key.pem"];
        // The file each command writes, as the program recorded it; the script's own chmod is checked below.
        const written = commands.map(c => ({ c, w: e.facts.commands.get(c.name)?.writes })).filter(x => x.w !== undefined);
        for (const file of secretFiles) assert.ok(written.some(x => x.w!.path.endsWith(`/${file}`)), `a command writes ${file}`);
        for (const { c, w } of written) {
            const holdsSecret = secretFiles.some(f => w!.path.endsWith(`/${f}`)) || /EXpw-|PRIVATE KEY/.test(String(c.inputs.stdin ?? ""));
            if (holdsSecret) {
                assert.equal(w!.mode, "0600", `${w!.path} (${c.name})`);
                assert.match(str(c, "create"), /^umask 077$/m, `${c.name} creates its temp file private`);
                assert.match(str(c, "create"), /^chmod 0600 "\$tmp"$/m, c.name);
            }
        }
        assert.equal(written.filter(x => x.w!.path.endsWith("/gitlab.rb")).length, 3, "gitlab.rb on every node");
    });

    it("writes the shared identity (gitlab-secrets.json, SSH host keys) 0600, public halves 0644", () => {
        for (const node of ["app2", "app3"]) {
            const script = str(e.byName(`gitlab-gitlab-${node}-identity`), "create");
            assert.match(script, /^umask 077$/m);
            assert.match(script, /case "\$f" in \*\.pub\) mode=0644 ;; \*\) mode=0600 ;; esac\n(.*\n){3}\s+chmod "\$mode" "\$tmp"\n/);
            assert.ok(e.byName(`gitlab-gitlab-${node}-identity`).secretInputs.includes("stdin"));
        }
        assert.ok(SHARED_IDENTITY_FILES.includes("gitlab-secrets.json"));
    });

    it("keeps the local SSH key and known_hosts files of the Docker provider 0600 in a 0700 directory", () => {
        assert.equal(fs.statSync(keyDir).mode & 0o777, 0o700);
        for (const host of Object.keys(e.config.hosts)) {
            for (const file of [`${host}.key`, `${host}.known_hosts`]) {
                const stat = fs.statSync(path.join(keyDir, file));
                assert.equal(stat.mode & 0o777, 0o600, file);
            }
        }
    });

    it("exports the NFS share to the GitLab hosts other than the NFS server, and to nothing else", () => {
        const content = e.cluster.nfsExport!.exportsContent;
        const line = content.split("\n").find(l => l.startsWith("/"))!;
        const clients = line.split(" ").slice(1).map(c => c.replace(/\(.*$/, ""));
        assert.deepEqual(clients, ["10.0.0.12", "10.0.0.13"]);
        assert.ok(!/[*]|\/\d+\(/.test(line), "no wildcard or range");
        assert.ok(str(e.byName("gitlab-nfs-export"), "create").includes(line), "the script writes that line");
    });

    it("pins every remote command's connection to the configured host key", () => {
        const byAddress = new Map(Object.values(e.config.hosts).map(h => [h.address, h]));
        const commands = ofType(e, REMOTE_COMMAND);
        assert.ok(commands.length > 10);
        for (const c of commands) {
            const connection = c.inputs.connection as { host: string; hostKey?: string };
            const host = byAddress.get(connection.host)!;
            assert.equal(connection.hostKey, host.ssh.hostKey, `${c.name} -> ${host.name}`);
        }
    });

    it("makes each Docker provider's ssh check the host key against a known_hosts file holding it", () => {
        for (const host of Object.values(e.config.hosts)) {
            const provider = e.byName(`gitlab-${host.name}-docker`);
            const opts = sshOpts(provider);
            assert.ok(opts.includes("StrictHostKeyChecking=yes"), `${host.name}: ${opts.join(" ")}`);
            const known = opts.find(o => o.startsWith("UserKnownHostsFile="))?.slice("UserKnownHostsFile=".length);
            assert.ok(known, `${host.name} has a UserKnownHostsFile`);
            assert.equal(fs.readFileSync(known, "utf8"), knownHostsLine(host));
            assert.equal(provider.inputs.host, `ssh://root@${host.address}:22`);
        }
        assert.deepEqual(warnings.filter(w => /ssh\.hostKey/.test(w)), [], "no host-key warning when every host is pinned");
    });

    it("warns, naming the host, when a host has no hostKey (and its connections then trust on first use)", async () => {
        const config = threeNodeConfig();
        delete config.hosts.app2.ssh;
        config.hosts.app2.insecureSkipHostKeyCheck = true; // the lab opt-out: without it the config is refused
        const seen: string[] = [];
        const warn = console.warn;
        console.warn = (...args: unknown[]) => { seen.push(args.map(String).join(" ")); };
        let unpinned: Evaluation;
        try {
            unpinned = await evaluate(config, { passwordFor });
        } finally {
            console.warn = warn;
        }
        const hostKeyWarnings = seen.filter(w => /ssh\.hostKey/.test(w));
        assert.equal(hostKeyWarnings.length, 1, seen.join("\n"));
        assert.match(hostKeyWarnings[0]!, /host "app2" \(10\.0\.0\.12\) has no ssh\.hostKey/);
        assert.match(hostKeyWarnings[0]!, /hosts\.app2\.ssh\.hostKey/);
        assert.match(hostKeyWarnings[0]!, /insecureSkipHostKeyCheck/);
        const opts = sshOpts(unpinned.byName("gitlab-app2-docker"));
        assert.ok(opts.includes("StrictHostKeyChecking=accept-new"));
        for (const c of ofType(unpinned, REMOTE_COMMAND).filter(r => (r.inputs.connection as { host: string }).host === "10.0.0.12")) {
            assert.equal((c.inputs.connection as { hostKey?: string }).hostKey, undefined, c.name);
        }
    });
});
