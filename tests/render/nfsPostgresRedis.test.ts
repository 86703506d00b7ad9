import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderExports, renderFstabLine } from "../../components/render/nfs";
import { renderGitlabRoleSql, renderPgHba } from "../../components/render/postgres";
import { renderRedisConf } from "../../components/render/redis";

describe("NFS exports and fstab", () => {
    it("exports to each client by address with GitLab's options, never to *", () => {
        const text = renderExports("/srv/gitlab-nfs", ["10.0.0.13", "10.0.0.12"]);
        assert.equal(text.split("\n")[1], "/srv/gitlab-nfs 10.0.0.12(rw,sync,no_root_squash,no_subtree_check) 10.0.0.13(rw,sync,no_root_squash,no_subtree_check)");
        assert.doesNotMatch(text, /\*/);
        assert.throws(() => renderExports("/srv/x", []), /at least one client/);
        assert.throws(() => renderExports("/srv/x", ["*"]), /not an address/);
    });

    it("mounts with GitLab's recommended options, and nosuid,nodev", () => {
        assert.equal(renderFstabLine("10.0.0.11", "/srv/gitlab-nfs", ["vers=4.1", "hard", "lookupcache=positive", "nosuid", "nodev"]),
            "10.0.0.11:/srv/gitlab-nfs /srv/gitlab-nfs nfs vers=4.1,hard,lookupcache=positive,nosuid,nodev 0 0");
        assert.match(renderFstabLine("fd00::1", "/p", ["hard", "nosuid", "nodev"]), /^\[fd00::1\]:\/p /);
    });
});

describe("PostgreSQL access", () => {
    it("lets only the GitLab ranges in, by scram, and the superuser only locally", () => {
        const hba = renderPgHba({ database: "gitlabhq_production", user: "gitlab", clientRanges: ["10.0.0.12/32", "10.0.0.11/32", "10.0.0.12/32"] });
        const rules = hba.split("\n").filter(l => l && !l.startsWith("#")).map(l => l.split(/\s+/));
        assert.deepEqual(rules, [
            ["local", "all", "postgres", "peer"],
            ["host", "gitlabhq_production", "gitlab", "10.0.0.11/32", "scram-sha-256"],
            ["host", "gitlabhq_production", "gitlab", "10.0.0.12/32", "scram-sha-256"],
        ]);
    });

    it("creates the role idempotently with the password quoted as SQL", () => {
        const sql = renderGitlabRoleSql("gitlabhq_production", "gitlab", "p'w");
        assert.match(sql, /ALTER ROLE "gitlab" WITH LOGIN NOSUPERUSER NOCREATEROLE PASSWORD 'p''w';/);
        assert.match(sql, /CREATE EXTENSION IF NOT EXISTS pg_trgm;/);
        assert.match(sql, /CREATE EXTENSION IF NOT EXISTS btree_gist;/);
        assert.match(sql, /WHERE NOT EXISTS \(SELECT 1 FROM pg_roles WHERE rolname = 'gitlab'\) \\gexec/);
    });
});

describe("redis.conf", () => {
    it("requires the password, quoted for Redis, and persists append-only", () => {
        const conf = renderRedisConf(6379, 'a"b\\c\nd');
        assert.match(conf, /^requirepass "a\\"b\\\\c\\nd"$/m);
        assert.match(conf, /^appendonly yes$/m);
    });
});
