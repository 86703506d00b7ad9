import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, DEFAULT_IMAGES, isCronSchedule, isPinnedImage, loadClusterConfig, parseClusterConfig, readFlatConfig, secretFlagsOf, secretLeaves } from "../../components/config";
import { flatConfig } from "../../scripts/evaluate";
import { TEST_TLS_CERT, threeNodeConfig } from "../fixtures";
import { allSecret, problemsOf, problemOf } from "../support/config";


describe("stack configuration", () => {
    it("accepts the three-node example and fills in defaults", () => {
        const cfg = parseClusterConfig(threeNodeConfig(), allSecret);
        assert.equal(cfg.postgres.port, 5432);
        assert.equal(cfg.postgres.database, "gitlabhq_production");
        assert.equal(cfg.loadBalancer.sshPort, 2222);
        for (const o of ["vers=4.1", "hard", "rsize=1048576", "wsize=1048576", "noatime", "nofail", "_netdev", "lookupcache=positive"]) assert.ok(cfg.nfs.mountOptions.includes(o), o);
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

    it("refuses the load balancer as the NFS server (a storage host of its own is fine: tests/config/gitaly.test.ts)", () => {
        const raw = threeNodeConfig();
        raw.roles.nfsServer = "edge1";
        assert.match(problemOf(raw), /^gitlab-cluster:roles\.nfsServer: "edge1" is the load balancer/);
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
        const plain = { isSecret: (p: string) => p !== "ssh.privateKey" };
        assert.equal(problemOf(threeNodeConfig(), plain),
            "gitlab-cluster:ssh.privateKey: is stored in plain text; set it with `pulumi config set --secret --path ssh.privateKey < key`");
        const raw = threeNodeConfig();
        raw.hosts.app2.ssh.privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----";
        assert.equal(problemOf(raw, { isSecret: (p: string) => !p.startsWith("hosts.") }),
            "gitlab-cluster:hosts.app2.ssh.privateKey: is stored in plain text; set it with `pulumi config set --secret --path 'hosts.app2.ssh.privateKey' < key`");
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
        assert.match(problemOf(threeNodeConfig(), { isSecret: p => p !== "loadBalancer.tls.privateKey" }), /^gitlab-cluster:loadBalancer\.tls\.privateKey: is stored in plain text/);
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
        assert.ok(problemsOf(raw).some(p => /^gitlab-cluster:nfs\.mountOptions: must not contain 'soft'/.test(p)), problemsOf(raw).join("\n"));
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


const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

describe("host keys (issue 15, M5)", () => {
    it("requires hostKey on a host reached over SSH, naming the host and the ssh-keyscan line to run", () => {
        const raw = threeNodeConfig();
        delete raw.hosts.app2.ssh;
        assert.equal(problemOf(raw),
            "gitlab-cluster:hosts.app2.ssh.hostKey: is required for a host reached over SSH: without it the deploy connection trusts whatever answers at 10.0.0.12. " +
            "Pin it with: pulumi config set --path 'hosts.app2.ssh.hostKey' \"$(ssh-keyscan -t ed25519 -p 22 10.0.0.12 | cut -d' ' -f2-)\" " +
            "(compare the key with the host's console), or, for a lab only, set gitlab-cluster:hosts.app2.insecureSkipHostKeyCheck: true");
        raw.hosts.app2.ssh = { port: 2200 };
        raw.hosts.app3 = { address: "10.0.0.13", ssh: {} };
        const both = problemsOf(raw);
        assert.equal(both.length, 2, both.join("\n"));
        assert.match(both[0]!, /^gitlab-cluster:hosts\.app2\.ssh\.hostKey: .*ssh-keyscan -t ed25519 -p 2200 10\.0\.0\.12 /);
        assert.match(both[1]!, /^gitlab-cluster:hosts\.app3\.ssh\.hostKey: /);
    });

    it("takes hostKey from the shared ssh settings, and needs none for a local host", () => {
        const raw = threeNodeConfig();
        raw.ssh.hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIshared";
        delete raw.hosts.app2.ssh;
        assert.equal(parseClusterConfig(raw, allSecret).hosts.app2!.ssh.hostKey, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIshared");
        const local = threeNodeConfig();
        local.hosts.app2 = { address: "10.0.0.12", local: true };
        assert.deepEqual(problemsOf(local), []);
    });

    it("has a loudly named opt-out for labs, refused where it means nothing", () => {
        const raw = threeNodeConfig();
        raw.hosts.app2 = { address: "10.0.0.12", insecureSkipHostKeyCheck: true };
        const cfg = parseClusterConfig(raw, allSecret);
        assert.equal(cfg.hosts.app2!.insecureSkipHostKeyCheck, true);
        assert.equal(cfg.hosts.app2!.ssh.hostKey, undefined);
        assert.equal(cfg.hosts.app1!.insecureSkipHostKeyCheck, false);
        raw.hosts.app2.ssh = { hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIapp2" };
        assert.equal(problemOf(raw), "gitlab-cluster:hosts.app2.insecureSkipHostKeyCheck: is set together with ssh.hostKey, which is then checked anyway; remove it");
        raw.hosts.app2 = { address: "10.0.0.12", local: true, insecureSkipHostKeyCheck: true };
        assert.equal(problemOf(raw), "gitlab-cluster:hosts.app2.insecureSkipHostKeyCheck: has no effect on a local host (no SSH); remove it");
    });
});

describe("images (issue 15, M6)", () => {
    it("defaults to the patched release of each line: Redis 7.2.11+ (CVE-2024-31449, CVE-2025-49844), PostgreSQL 16.14+, nginx 1.30.1+", () => {
        const cfg = parseClusterConfig(threeNodeConfig(), allSecret);
        const version = (image: string) => (/:(\d+(?:\.\d+)*)/.exec(image)?.[1] ?? "").split(".").map(Number);
        const atLeast = (image: string, min: readonly number[]) => {
            const v = version(image);
            for (const [i, m] of min.entries()) if ((v[i] ?? 0) !== m) return (v[i] ?? 0) > m;
            return true;
        };
        assert.equal(cfg.redis.image, DEFAULT_IMAGES.redis);
        assert.match(cfg.redis.image, /^redis:7\.2\.\d+-bookworm$/);
        assert.ok(atLeast(cfg.redis.image, [7, 2, 11]), cfg.redis.image);
        assert.match(cfg.postgres.image, /^postgres:16\.\d+-bookworm$/, "PostgreSQL stays on bookworm: a new glibc changes collations under existing data");
        assert.ok(atLeast(cfg.postgres.image, [16, 14]), cfg.postgres.image);
        assert.ok(atLeast(cfg.loadBalancer.image, [1, 30, 1]), cfg.loadBalancer.image);
        for (const image of Object.values(DEFAULT_IMAGES)) assert.ok(isPinnedImage(image), image);
    });

    it("refuses latest, no tag, and release lines that move (redis:7, postgres:16, redis:7.2, 16-alpine, bookworm)", () => {
        for (const [key, image] of [
            ["redis", "redis:7"], ["postgres", "postgres:16"], ["redis", "redis:7.2"], ["redis", "redis:7-bookworm"], ["postgres", "postgres:16-alpine"],
            ["loadBalancer", "nginx:1.30"], ["loadBalancer", "nginx:stable"], ["redis", "redis:bookworm"], ["redis", "redis:alpine3.20"],
            ["postgres", "postgres"], ["redis", "redis:latest"], ["postgres", "postgres@sha256:abc"],
        ] as const) {
            const raw = threeNodeConfig();
            raw[key] = { ...raw[key], image };
            assert.match(problemOf(raw), new RegExp(`^gitlab-cluster:${key}\\.image: must name a pinned image: it `), image);
        }
        const raw = threeNodeConfig();
        raw.redis = { image: "redis:7" };
        assert.equal(problemOf(raw), "gitlab-cluster:redis.image: must name a pinned image: it is tagged '7', a release line that moves to each new patch release; " +
            "pin a full release tag (such as redis:7.2.16-bookworm or postgres:16.15-bookworm) or add a digest (name:tag@sha256:<64 hex>) (got \"redis:7\")");
    });

    it("accepts digests, alone or with the tag, on every image key", () => {
        for (const key of ["postgres", "redis", "loadBalancer"] as const) {
            const repo = key === "loadBalancer" ? "nginx" : key;
            const version = { postgres: "16.15", redis: "7.2.16", loadBalancer: "1.30.4" }[key];
            for (const image of [`registry.example.com:5000/library/${repo}@${DIGEST}`, `${repo}:${version}@${DIGEST}`, `${repo}:${version.split(".")[0]}@${DIGEST}`]) {
                const raw = threeNodeConfig();
                raw[key] = { ...raw[key], image };
                assert.deepEqual(problemsOf(raw), [], image);
            }
        }
        const raw = threeNodeConfig();
        raw.gitlab.image = `gitlab/gitlab-ce:18.4.1-ce.0@${DIGEST}`;
        assert.equal(parseClusterConfig(raw, allSecret).gitlab.image, `gitlab/gitlab-ce:18.4.1-ce.0@${DIGEST}`);
    });

    it("requires gitlab.image to carry its release tag with a digest, since the release is read from it", () => {
        const raw = threeNodeConfig();
        raw.gitlab.image = `gitlab/gitlab-ce@${DIGEST}`;
        assert.match(problemOf(raw), /^gitlab-cluster:gitlab\.image: must carry GitLab's release tag, with or without a digest \(gitlab\/gitlab-ce:18\.4\.1-ce\.0 or gitlab\/gitlab-ce:18\.4\.1-ce\.0@sha256:<64 hex>\): the release is read from the tag to refuse downgrades/);
        raw.gitlab.image = "gitlab/gitlab-ce:nightly-20250101";
        assert.match(problemOf(raw), /^gitlab-cluster:gitlab\.image: must name a pinned image/);
    });

    it("still checks the PostgreSQL major against GitLab's when either image has a digest", () => {
        const raw = threeNodeConfig();
        raw.gitlab.image = `gitlab/gitlab-ce:18.4.1-ce.0@${DIGEST}`;
        raw.postgres = { image: `postgres:14.12-bookworm@${DIGEST}` };
        assert.equal(problemOf(raw), "gitlab-cluster:postgres.image: PostgreSQL 14 is too old for GitLab 18 (needs 16 or newer)");
    });
});

describe("secret values in error messages (issue 15, L9)", () => {
    const MARK = "s3cr3t-MARK-value";
    const noEcho = (raw: Record<string, unknown>, what: string) => {
        const problems = problemsOf(raw);
        assert.ok(problems.length > 0, `${what}: refused`);
        for (const p of problems) {
            assert.ok(!p.includes(MARK) && !p.includes(MARK.slice(0, 8)), `${what} echoes the secret: ${p}`);
            assert.match(p, /^gitlab-cluster:[a-zA-Z]+[.[]?\S*: /, what);
        }
        return problems;
    };

    it("prints [secret] instead of a secret key's value", () => {
        const tls = threeNodeConfig();
        tls.loadBalancer.tls.privateKey = `${MARK} not a PEM`;
        assert.deepEqual(noEcho(tls, "tls key"), ["gitlab-cluster:loadBalancer.tls.privateKey: must be a PEM private key (got [secret])"]);
        const ssh = threeNodeConfig();
        ssh.ssh.privateKey = [MARK];
        assert.match(noEcho(ssh, "ssh key")[0]!, /\(got \[secret\]\)$/);
        const host = threeNodeConfig();
        host.hosts.app1.ssh.privateKey = { key: MARK };
        assert.match(noEcho(host, "host key")[0]!, /^gitlab-cluster:hosts\.app1\.ssh\.privateKey: .*\(got \[secret\]\)$/);
        const rails = threeNodeConfig();
        rails.gitlab.rails = { smtp_password: `${MARK}\0`, incoming_email_token: { x: MARK } };
        assert.equal(noEcho(rails, "rails").length, 2);
    });

    it("prints only the shape of a value that may hold a secret key", () => {
        const ssh = threeNodeConfig();
        ssh.ssh = `-----BEGIN OPENSSH PRIVATE KEY-----\n${MARK}`;
        assert.match(noEcho(ssh, "ssh as a string")[0]!, /^gitlab-cluster:ssh: .*\(got \[secret\]\)$/);
        const tls = threeNodeConfig();
        tls.loadBalancer.tls = [MARK];
        assert.match(noEcho(tls, "tls as a list")[0]!, /\(got a list of 1\)$/);
        const host = threeNodeConfig();
        host.hosts.app1 = [{ ssh: { privateKey: MARK } }];
        noEcho(host, "host as a list");
        // Values that hold no secret are still shown.
        const addr = threeNodeConfig();
        addr.hosts.app1.address = "not-an-ip";
        assert.match(problemOf(addr), /\(got "not-an-ip"\)$/);
    });

    it("never echoes the text of a top-level key that is not JSON", () => {
        assert.throws(() => readFlatConfig({ "gitlab-cluster:ssh": `-----BEGIN OPENSSH PRIVATE KEY-----\n${MARK}` }), (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.equal(e.problems[0], "gitlab-cluster:ssh: must be a map of settings (got [secret]); write it as a YAML map in the stack file, or set each setting with pulumi config set --path 'ssh.<setting>'");
            return true;
        });
        assert.throws(() => readFlatConfig({ "gitlab-cluster:roles": "redis=data1" }), /gitlab-cluster:roles: must be a map of settings \(got "redis=data1"\)/);
    });
});

describe("refused values (issue 15, L10)", () => {
    it("refuses the unspecified address, its other spellings, a zone ID and group addresses as a host address", () => {
        for (const address of ["0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0", "fe80::1%eth0", "224.0.0.1", "255.255.255.255", "ff02::1"]) {
            const raw = threeNodeConfig();
            raw.hosts.app2.address = address;
            const problems = problemsOf(raw).filter(p => p.startsWith("gitlab-cluster:hosts.app2.address: "));
            assert.equal(problems.length, 1, `${address}: ${problemsOf(raw).join(" | ")}`);
        }
        const raw = threeNodeConfig();
        raw.hosts.app2.address = "0.0.0.0";
        assert.equal(problemOf(raw), 'gitlab-cluster:hosts.app2.address: is the unspecified address (0.0.0.0 or ::), which names no host: give the address the other hosts reach this host at, such as 10.0.0.11 (got "0.0.0.0")');
        raw.hosts.app2.address = "fe80::1%eth0";
        assert.match(problemsOf(raw)[0]!, /^gitlab-cluster:hosts\.app2\.address: must not carry an IPv6 zone ID/);
        const lb = threeNodeConfig();
        lb.loadBalancer.listenAddress = "fe80::5%eth0";
        assert.match(problemOf(lb), /^gitlab-cluster:loadBalancer\.listenAddress: must not carry an IPv6 zone ID/);
        lb.loadBalancer.listenAddress = "0.0.0.0";
        assert.deepEqual(problemsOf(lb), [], "the balancer may still listen on every interface");
    });

    it("refuses a Docker bridge range wider than /12 (IPv4) or /48 (IPv6)", () => {
        for (const subnet of ["0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/11", "::/0", "fd00::/32", "0.0.0.0/16", "172.17.0.0/"]) {
            const raw = threeNodeConfig();
            raw.hosts.data1.dockerBridgeSubnet = subnet;
            assert.match(problemOf(raw), /^gitlab-cluster:hosts\.data1\.dockerBridgeSubnet: /, subnet);
        }
        const raw = threeNodeConfig();
        raw.hosts.data1.dockerBridgeSubnet = "0.0.0.0/0";
        assert.equal(problemOf(raw), "gitlab-cluster:hosts.data1.dockerBridgeSubnet: is wider than a Docker bridge (/0): the range is trusted by PostgreSQL's pg_hba.conf and the data host's firewall; " +
            "give the bridge's own subnet (`docker network inspect bridge`), /12 or narrower (got \"0.0.0.0/0\")");
        for (const subnet of ["172.16.0.0/12", "172.17.0.0/16", "192.168.99.0/24", "fd00:1:2::/48", "fd00:dead:beef::/64"]) {
            raw.hosts.data1.dockerBridgeSubnet = subnet;
            assert.deepEqual(problemsOf(raw), [], subnet);
        }
    });

    it("refuses postgres, pg_* and reserved names as the GitLab role, and template or keyword databases", () => {
        for (const user of ["postgres", "pg_monitor", "pg_x", "all", "public", "current_user", "replication"]) {
            const raw = threeNodeConfig();
            raw.postgres = { user };
            assert.match(problemOf(raw), /^gitlab-cluster:postgres\.user: (is PostgreSQL's superuser|is in PostgreSQL's reserved pg_ namespace|is reserved by PostgreSQL).*such as gitlab \(the default\)/, user);
        }
        const raw = threeNodeConfig();
        raw.postgres = { user: "pg_gitlab" };
        assert.equal(problemOf(raw), "gitlab-cluster:postgres.user: is in PostgreSQL's reserved pg_ namespace: CREATE ROLE refuses it and the server logs the statement, with the password; " +
            "use another name, such as gitlab (the default) (got \"pg_gitlab\")");
        for (const database of ["all", "template1", "sameuser"]) {
            raw.postgres = { database };
            assert.match(problemOf(raw), /^gitlab-cluster:postgres\.database: is a pg_hba\.conf keyword or a template database/, database);
        }
        raw.postgres = { user: "gitlab_app", database: "postgres_gitlab" };
        assert.deepEqual(problemsOf(raw), []);
    });

    it("refuses / and system directories as data and config paths, however written", () => {
        const cases: [string, string, string][] = [
            ["loadBalancer", "configRoot", "/"], ["loadBalancer", "configRoot", "/etc"], ["loadBalancer", "configRoot", "/etc/"], ["loadBalancer", "configRoot", "//usr/./"],
            ["gitlab", "dataRoot", "/var/lib"], ["postgres", "dataRoot", "/proc/1"], ["redis", "dataRoot", "/tmp/"], ["redis", "dataRoot", "/run/redis"], ["nfs", "path", "/srv"],
            ["nfs", "path", "/home"], ["redis", "dataRoot", "/var/lib/docker/volumes/x"], ["postgres", "dataRoot", "/root"],
        ];
        for (const [section, key, value] of cases) {
            const raw = threeNodeConfig();
            raw[section] = { ...raw[section], [key]: value };
            assert.match(problemOf(raw), new RegExp(`^gitlab-cluster:${section}\\.${key}: is (inside )?the system directory /`), `${section}.${key} = ${value}`);
        }
        const raw = threeNodeConfig();
        raw.loadBalancer.configRoot = "/";
        assert.equal(problemOf(raw), "gitlab-cluster:loadBalancer.configRoot: is the system directory /: the program creates files there, chowns them and mounts the directory into containers; " +
            "use a directory of its own such as /srv/gitlab-cluster/nginx (got \"/\")");
        raw.loadBalancer.configRoot = "/usr/lib/nginx";
        assert.match(problemOf(raw), /^gitlab-cluster:loadBalancer\.configRoot: is inside the system directory \/usr\/lib: /);
        raw.backup = { target: { host: "data1", path: "/var/log" } };
        raw.loadBalancer.configRoot = "/etc/gitlab-cluster/nginx";
        assert.match(problemOf(raw), /^gitlab-cluster:backup\.target\.path: is the system directory \/var\/log: .* such as \/srv\/gitlab-backups/);
        raw.backup = { target: { host: "data1", path: "/srv/backups" } };
        raw.gitlab.dataRoot = "/opt/gitlab-data";
        assert.deepEqual(problemsOf(raw), [], "a directory of its own, even under /etc or /opt, is fine");
    });
});

describe("plain-text secrets, leaf by leaf (issue 15, L10)", () => {
    /** A stack file's `config:` map: encrypted values as `{ secure: ... }`. */
    const stackConfig = () => {
        const raw = threeNodeConfig();
        raw.ssh = { user: "root", privateKey: { secure: "v1:ssh" } };
        raw.hosts.app1.ssh.privateKey = { secure: "v1:app1" };
        raw.loadBalancer.tls = { certificate: { secure: "v1:cert" }, privateKey: { secure: "v1:key" } };
        return raw;
    };
    const decrypted = (raw: Record<string, any>) => { // any: the fixture, with its { secure } leaves filled in
        const copy = JSON.parse(JSON.stringify(raw), (_k, v: unknown) => (v !== null && typeof v === "object" && "secure" in v ? "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----" : v));
        copy.loadBalancer.tls.certificate = TEST_TLS_CERT;
        return copy as Record<string, unknown>;
    };

    it("finds each encrypted leaf of a stack file", () => {
        assert.deepEqual(secretLeaves(Object.fromEntries(Object.entries(stackConfig()).map(([k, v]) => [`gitlab-cluster:${k}`, v]))).sort(),
            ["hosts.app1.ssh.privateKey", "loadBalancer.tls.certificate", "loadBalancer.tls.privateKey", "ssh.privateKey"]);
    });

    it("refuses a secret stored in plain text beside an encrypted one under the same top-level key", () => {
        const raw = stackConfig();
        assert.deepEqual(problemsOf(decrypted(raw), secretFlagsOf(secretLeaves(raw))), []);
        raw.hosts.app2.ssh.privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nPLAIN\n-----END OPENSSH PRIVATE KEY-----";
        raw.loadBalancer.tls.privateKey = "-----BEGIN PRIVATE KEY-----\nPLAIN\n-----END PRIVATE KEY-----";
        const problems = problemsOf(decrypted(raw), secretFlagsOf(secretLeaves(raw)));
        assert.deepEqual(problems, [
            "gitlab-cluster:hosts.app2.ssh.privateKey: is stored in plain text; set it with `pulumi config set --secret --path 'hosts.app2.ssh.privateKey' < key`",
            "gitlab-cluster:loadBalancer.tls.privateKey: is stored in plain text; set it with `pulumi config set --secret --path loadBalancer.tls.privateKey < key.pem`",
        ]);
    });

    it("treats gitlab.rails settings named like secrets as secret keys", () => {
        const raw = threeNodeConfig();
        raw.gitlab.rails = { time_zone: "UTC", smtp_password: "hunter2" };
        assert.equal(problemOf(raw, { isSecret: p => p !== "gitlab.rails.smtp_password" }),
            "gitlab-cluster:gitlab.rails.smtp_password: is stored in plain text; set it with `pulumi config set --secret --path 'gitlab.rails.smtp_password'`");
        assert.doesNotThrow(() => loadClusterConfig(flatConfig(raw), k => ["gitlab-cluster:ssh", "gitlab-cluster:loadBalancer", "gitlab-cluster:gitlab"].includes(k)));
    });
});
