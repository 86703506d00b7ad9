import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderGitlabRb, type GitlabRbInput } from "../../components/render/gitlabRb";
import { loadGitlabRb } from "../support/readers";

const HOSTILE = `a'b"c\\d#{system('touch /tmp/pwned')}$(id)\`id\`\nline2 ü€`;

function input(overrides: Partial<GitlabRbInput> = {}): GitlabRbInput {
    return {
        nodeName: "app2",
        externalUrl: "https://gitlab.example.com",
        migrationNode: false,
        database: { host: "10.0.0.21", port: 5432, name: "gitlabhq_production", user: "gitlab", password: HOSTILE },
        redis: { host: "10.0.0.21", port: 6379, password: `r${HOSTILE}` },
        balancerSources: ["10.0.0.5/32"],
        sshPort: 2222,
        gitUid: 998,
        gitGid: 998,
        rails: {},
        ...overrides,
    };
}

describe("gitlab.rb, loaded by Ruby", () => {
    it("has every setting a node behind the balancer needs", () => {
        const s = loadGitlabRb(renderGitlabRb(input()));
        assert.equal(s.external_url, "https://gitlab.example.com");
        assert.equal(s.gitlab_rails.auto_migrate, false);
        assert.equal(s.postgresql.enable, false);
        assert.equal(s.redis.enable, false);
        assert.equal(s.gitlab_rails.db_host, "10.0.0.21");
        assert.equal(s.gitlab_rails.db_port, 5432);
        assert.equal(s.gitlab_rails.db_database, "gitlabhq_production");
        assert.equal(s.gitlab_rails.db_username, "gitlab");
        assert.equal(s.gitlab_rails.redis_host, "10.0.0.21");
        assert.equal(s.gitlab_rails.redis_port, 6379);
        assert.deepEqual(s.user, { uid: 998, gid: 998 });
        assert.equal(s.nginx.listen_port, 80);
        assert.equal(s.nginx.listen_https, false);
        assert.deepEqual(s.nginx.proxy_set_headers, { "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on" });
        assert.deepEqual(s.nginx.real_ip_trusted_addresses, ["10.0.0.5/32"]);
        assert.equal(s.nginx.real_ip_header, "X-Forwarded-For");
        assert.equal(s.nginx.real_ip_recursive, "on");
        assert.deepEqual(s.gitlab_rails.trusted_proxies, ["10.0.0.5/32"]);
        assert.deepEqual(s.gitlab_rails.monitoring_whitelist, ["127.0.0.0/8", "::1/128", "10.0.0.5/32"]);
        assert.ok(!s.gitlab_rails.monitoring_whitelist.includes("0.0.0.0/0"));
        assert.equal(s.gitlab_rails.gitlab_shell_ssh_port, 2222);
        assert.equal(s.gitlab_rails.initial_root_password, undefined);
    });

    it("carries passwords with quotes, backslashes, #{}, $(), backticks, newlines and non-ASCII intact", () => {
        const s = loadGitlabRb(renderGitlabRb(input()));
        assert.equal(s.gitlab_rails.db_password, HOSTILE);
        assert.equal(s.gitlab_rails.redis_password, `r${HOSTILE}`);
    });

    it("migrates and seeds the root password on the migration node only", () => {
        const s = loadGitlabRb(renderGitlabRb(input({ migrationNode: true, initialRootPassword: "root'pw" })));
        assert.equal(s.gitlab_rails.auto_migrate, true);
        assert.equal(s.gitlab_rails.initial_root_password, "root'pw");
    });

    it("sends no forwarded-TLS headers when the URL is plain http", () => {
        const s = loadGitlabRb(renderGitlabRb(input({ externalUrl: "http://gitlab.example.com" })));
        assert.equal(s.nginx.proxy_set_headers, undefined);
    });

    it("adds extra rails settings and the backup keep time", () => {
        const s = loadGitlabRb(renderGitlabRb(input({ rails: { time_zone: "Europe/Berlin", gitlab_default_can_create_group: false, max_attachment_size: 100 }, backupKeepTimeSeconds: 604800 })));
        assert.equal(s.gitlab_rails.time_zone, "Europe/Berlin");
        assert.equal(s.gitlab_rails.gitlab_default_can_create_group, false);
        assert.equal(s.gitlab_rails.max_attachment_size, 100);
        assert.equal(s.gitlab_rails.backup_keep_time, 604800);
    });

    it("refuses a value Ruby cannot hold", () => {
        assert.throws(() => renderGitlabRb(input({ database: { ...input().database, password: "a\0b" } })), /cannot be written as a Ruby string: it contains a NUL/);
    });
});
