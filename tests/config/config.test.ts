import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, type SecretFlags, isCronSchedule, isPinnedImage, loadClusterConfig, parseClusterConfig } from "../../components/config";
import { flatConfig } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";

const allSecret: SecretFlags = { isSecret: () => true };

/** Parses a config and returns the single problem it reports. */
function problemOf(raw: Record<string, unknown>, secrets: SecretFlags = allSecret): string {
    try {
        parseClusterConfig(raw, secrets);
    } catch (err) {
        assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
        assert.equal(err.problems.length, 1, `expected one problem, got: ${err.problems.join(" | ")}`);
        return err.problems[0]!;
    }
    assert.fail("the config was accepted");
}

describe("stack configuration", () => {
    it("accepts the three-node example and fills in defaults", () => {
        const cfg = parseClusterConfig(threeNodeConfig(), allSecret);
        assert.equal(cfg.postgres.port, 5432);
        assert.equal(cfg.postgres.database, "gitlabhq_production");
        assert.equal(cfg.loadBalancer.sshPort, 2222);
        assert.deepEqual(cfg.nfs.mountOptions, ["vers=4.1", "hard", "rsize=1048576", "wsize=1048576", "noatime", "nofail", "_netdev", "lookupcache=positive"]);
        assert.equal(cfg.hosts.app2!.ssh.user, "root");
        assert.equal(cfg.hosts.app2!.ssh.port, 22);
        assert.equal(cfg.hosts.app2!.ssh.hostKey, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIapp2");
    });

    it("lets a host override the SSH defaults field by field", () => {
        const raw = threeNodeConfig();
        raw.hosts.app3.ssh.port = 2200;
        raw.hosts.app3.ssh.user = "deploy";
        const cfg = parseClusterConfig(raw, allSecret);
        assert.equal(cfg.hosts.app3!.ssh.port, 2200);
        assert.equal(cfg.hosts.app3!.ssh.user, "deploy");
        assert.equal(cfg.hosts.app3!.ssh.privateKey, raw.ssh.privateKey);
        assert.equal(cfg.hosts.app1!.ssh.user, "root");
    });

    it("names a role's unknown host and the hosts it knows", () => {
        const raw = threeNodeConfig();
        raw.roles.gitlab = ["app1", "app2", "app9"];
        assert.equal(problemOf(raw), 'gitlab-cluster:roles.gitlab[2]: names host "app9", which is not in gitlab-cluster:hosts (app1, app2, app3, data1, edge1)');
    });

    it("refuses an empty GitLab list", () => {
        const raw = threeNodeConfig();
        raw.roles.gitlab = [];
        assert.match(problemOf(raw), /^gitlab-cluster:roles\.gitlab: must list at least one GitLab host \(got \[\]\)$/);
    });

    it("requires an NFS server for several GitLab hosts", () => {
        const raw = threeNodeConfig();
        delete raw.roles.nfsServer;
        assert.equal(problemOf(raw), "gitlab-cluster:roles.nfsServer: is required when gitlab-cluster:roles.gitlab lists more than one host (got 3)");
    });

    it("requires the NFS server to be a GitLab host", () => {
        const raw = threeNodeConfig();
        raw.roles.nfsServer = "data1";
        assert.match(problemOf(raw), /^gitlab-cluster:roles\.nfsServer: "data1" must be one of the GitLab hosts/);
    });

    it("requires externalUrl and refuses a non-URL", () => {
        const raw = threeNodeConfig();
        delete raw.gitlab.externalUrl;
        assert.equal(problemOf(raw), "gitlab-cluster:gitlab.externalUrl: is required");
        raw.gitlab.externalUrl = "gitlab.example.com";
        assert.equal(problemOf(raw), 'gitlab-cluster:gitlab.externalUrl: must be an http:// or https:// URL (got "gitlab.example.com")');
        raw.gitlab.externalUrl = "ftp://gitlab.example.com";
        assert.match(problemOf(raw), /^gitlab-cluster:gitlab\.externalUrl: must be an http/);
    });

    it("refuses a private key stored in plain text, naming the key and the fix", () => {
        const plain = { isSecret: (k: string) => k !== "ssh" };
        assert.equal(problemOf(threeNodeConfig(), plain),
            "gitlab-cluster:ssh.privateKey: is stored in plain text; set it with `pulumi config set --secret --path ssh.privateKey < key`");
        const raw = threeNodeConfig();
        raw.hosts.app2.ssh.privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----";
        assert.match(problemOf(raw, { isSecret: (k: string) => k !== "hosts" }), /^gitlab-cluster:hosts\.app2\.ssh\.privateKey: is stored in plain text/);
    });

    it("sees which keys are secret through the stack's flat config", () => {
        const flat = flatConfig(threeNodeConfig());
        assert.throws(() => loadClusterConfig(flat, k => k === "gitlab-cluster:loadBalancer"), /ssh\.privateKey: is stored in plain text/);
        assert.doesNotThrow(() => loadClusterConfig(flat, k => ["gitlab-cluster:ssh", "gitlab-cluster:loadBalancer"].includes(k)));
    });

    it("refuses a duplicate address", () => {
        const raw = threeNodeConfig();
        raw.hosts.app3.address = "10.0.0.12";
        assert.equal(problemOf(raw), 'gitlab-cluster:hosts.app3.address: 10.0.0.12 is also the address of host "app2"');
    });

    it("refuses unknown keys, at the top and nested", () => {
        assert.throws(() => loadClusterConfig({ "gitlab-cluster:gitlabb": "{}" }, () => true),
            (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith("gitlab-cluster:gitlabb: unknown key"));
        const raw = threeNodeConfig();
        raw.gitlab.extrnalUrl = "x";
        assert.equal(problemOf(raw), 'gitlab-cluster:gitlab: unknown key "extrnalUrl"');
    });

    it("refuses floating images", () => {
        for (const image of ["gitlab/gitlab-ce", "gitlab/gitlab-ce:latest", "registry.local:5000/gitlab"]) {
            const raw = threeNodeConfig();
            raw.gitlab.image = image;
            assert.match(problemOf(raw), /^gitlab-cluster:gitlab\.image: must name a pinned image/, image);
        }
        assert.ok(isPinnedImage("registry.local:5000/gitlab/gitlab-ee:18.4.1-ee.0"));
        assert.ok(isPinnedImage(`gitlab/gitlab-ce@sha256:${"a".repeat(64)}`));
    });

    it("requires TLS material for an https URL, and refuses it in plain text", () => {
        const raw = threeNodeConfig();
        delete raw.loadBalancer;
        assert.match(problemOf(raw), /^gitlab-cluster:loadBalancer\.tls: is required because gitlab-cluster:gitlab\.externalUrl is https/);
        assert.match(problemOf(threeNodeConfig(), { isSecret: k => k !== "loadBalancer" }), /^gitlab-cluster:loadBalancer\.tls\.privateKey: is stored in plain text/);
    });

    it("refuses a PostgreSQL too old for the GitLab release", () => {
        const raw = threeNodeConfig();
        raw.postgres = { image: "postgres:14.12-bookworm" };
        assert.equal(problemOf(raw), "gitlab-cluster:postgres.image: PostgreSQL 14 is too old for GitLab 18 (needs 16 or newer)");
    });

    it("refuses gitlab.rails keys the program manages", () => {
        const raw = threeNodeConfig();
        raw.gitlab.rails = { time_zone: "UTC", db_password: "x" };
        assert.equal(problemOf(raw), "gitlab-cluster:gitlab.rails.db_password: is set by the program (from the cluster's topology and generated secrets) and cannot be overridden");
    });

    it("refuses soft NFS mounts", () => {
        const raw = threeNodeConfig();
        raw.nfs = { mountOptions: ["vers=4.1", "soft"] };
        assert.match(problemOf(raw), /^gitlab-cluster:nfs\.mountOptions: must not contain 'soft'/);
    });

    it("reports every problem at once, each on its key", () => {
        const raw = threeNodeConfig();
        raw.roles.redis = "nope";
        raw.hosts.app1.address = "not-an-ip";
        assert.throws(() => parseClusterConfig(raw, allSecret), (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.deepEqual(e.problems, ['gitlab-cluster:hosts.app1.address: must be an IPv4 or IPv6 address (got "not-an-ip")']);
            return true;
        });
        raw.hosts.app1.address = "10.0.0.11";
        raw.roles.postgres = "nope2";
        assert.throws(() => parseClusterConfig(raw, allSecret), (e: unknown) => e instanceof ConfigError && e.problems.length === 2 && /2 problems/.test(e.message));
    });

    it("validates cron schedules", () => {
        for (const ok of ["0 3 * * *", "*/15 * * * 1-5", "0 0,12 1 * 0"]) assert.ok(isCronSchedule(ok), ok);
        for (const bad of ["0 3 * *", "60 * * * *", "* 24 * * *", "5-1 * * * *", "*/0 * * * *", "@daily"]) assert.ok(!isCronSchedule(bad), bad);
    });
});
