import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import {
    GITALY_NODE_OMNIBUS, MANAGED_OMNIBUS_SETTINGS, MANAGED_RAILS_KEYS, OMNIBUS_TOP_LEVEL, OMNIBUS_TOP_LEVEL_NAMES, omnibusSettingProblems, REFUSED_OMNIBUS_SETTINGS,
    renderGitalyRb, renderGitlabRb, type GitlabRbInput,
} from "../../components/render/gitlabRb";
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
        rails: {},
        omnibus: {},
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
        assert.equal(s.user, undefined, "user['uid']/['gid'] do nothing in the Docker image: not written");
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

/** Omnibus settings a real cluster sets: nested hashes (LDAP), arrays of hashes (OmniAuth), nil, tuning. */
const OMNIBUS = {
    puma: { worker_processes: 4, min_threads: 1, max_threads: 4, per_worker_max_memory_mb: 1200.5 },
    sidekiq: { concurrency: 20, queue_groups: ["*", "mailers,default"] },
    gitlab_rails: {
        smtp_enable: true, smtp_address: "smtp.example.com", smtp_port: 587, smtp_password: HOSTILE,
        ldap_enabled: true,
        ldap_servers: { main: { label: "Corp LDAP", host: "ldap.example.com", port: 636, encryption: "simple_tls", uid: "sAMAccountName",
            bind_dn: "CN=GitLab,OU=Svc,DC=example,DC=com", password: HOSTILE, base: "", group_base: null, active_directory: true } },
        omniauth_providers: [{ name: "openid_connect", label: "SSO", args: { scope: ["openid", "profile"], client_options: { identifier: "gitlab", secret: `s${HOSTILE}` } } }],
        env: {},
    },
    registry: { enable: false },
    prometheus_monitoring: { enable: false },
    nginx: { client_max_body_size: "0" },
};

describe("gitlab.omnibus: any Omnibus setting, nested, loaded back by Ruby exactly", () => {
    it("writes name['key'] = value lines whose values come back exactly, hostile strings included", () => {
        const rb = renderGitlabRb(input({ omnibus: OMNIBUS }));
        const s = loadGitlabRb(rb);
        for (const [name, settings] of Object.entries(OMNIBUS)) {
            for (const [key, value] of Object.entries(settings)) assert.deepEqual(s[name][key], value, `${name}['${key}']`);
        }
        assert.match(rb, /^puma\['worker_processes'\] = 4$/m);
        assert.match(rb, /^gitlab_rails\['ldap_servers'\] = \{ 'main' => \{ 'label' => 'Corp LDAP', /m);
        assert.match(rb, /'group_base' => nil/);
    });

    it("merges into Omnibus's attribute hashes instead of replacing them", () => {
        const rb = renderGitlabRb(input({ omnibus: OMNIBUS }));
        assert.doesNotMatch(rb, /^[a-z_]+ = /m, "no `name = {...}`, which would drop Omnibus's defaults");
        const s = loadGitlabRb(rb);
        assert.equal(s.gitlab_rails.db_host, "10.0.0.21", "the program's gitlab_rails settings stay beside the stack's");
        assert.equal(s.nginx.listen_port, 80);
        assert.equal(s.nginx.client_max_body_size, "0");
    });

    it("takes hostile keys and values at any depth: quotes, backslashes, newlines, CR, #{}", () => {
        const keys = [HOSTILE, "a'b", "back\\slash", "#{`id`}", "new\nline", "cr\r\nlf\r", "", " "];
        const nested = Object.fromEntries(keys.map((k, i) => [k, i % 2 === 0 ? `${k}${HOSTILE}\r` : [k, { [k]: [null, i, -i / 4, 1e21, { "": k }] }]]));
        const omnibus = { gitlab_rails: { env: nested }, gitlab_workhorse: { env: { ...nested, deeper: { list: [nested, [nested]] } } } };
        const s = loadGitlabRb(renderGitlabRb(input({ omnibus })));
        assert.deepEqual(s.gitlab_rails.env, omnibus.gitlab_rails.env);
        assert.deepEqual(s.gitlab_workhorse.env, omnibus.gitlab_workhorse.env);
    });

    it("keeps gitlab.rails and gitlab.omnibus.gitlab_rails side by side, and refuses a key set in both", () => {
        const s = loadGitlabRb(renderGitlabRb(input({ rails: { time_zone: "UTC" }, omnibus: { gitlab_rails: { smtp_enable: true } } })));
        assert.equal(s.gitlab_rails.time_zone, "UTC");
        assert.equal(s.gitlab_rails.smtp_enable, true);
        assert.throws(() => renderGitlabRb(input({ rails: { time_zone: "UTC" }, omnibus: { gitlab_rails: { time_zone: "Europe/Berlin" } } })),
            /^Error: gitlab\.omnibus\.gitlab_rails\.time_zone: is also set as gitlab\.rails\.time_zone: set it in one place$/);
    });

    it("refuses every setting this file writes itself, naming it", () => {
        for (const [name, keys] of Object.entries(MANAGED_OMNIBUS_SETTINGS)) {
            for (const key of keys) {
                assert.deepEqual(omnibusSettingProblems({ [name]: { [key]: 1 } }).map(p => [p.path.join("."), p.message]),
                    [[`${name}.${key}`, "is set by the program (from the cluster's topology and generated secrets) and cannot be overridden"]]);
                assert.throws(() => renderGitlabRb(input({ omnibus: { [name]: { [key]: 1 } } })), new RegExp(`gitlab\\.omnibus\\.${name}\\.${key}: is set by the program`));
            }
        }
    });

    it("lists every setting this file writes, in every variant (so none can be overridden unnoticed)", () => {
        const gitaly = { address: "10.0.0.31", port: 8075, token: "t", shellSecret: "s" };
        const settingsOf = (rb: string) => Object.entries(loadGitlabRb(rb))
            .filter(([name]) => name !== "external_url") // a single value, refused as such
            .flatMap(([name, settings]) => Object.keys(settings as object).map(key => [name, key] as const));
        const written = new Set<string>();
        // The Rails nodes' file: each of its settings is one the stack's gitlab.omnibus reaches (and
        // gitlab.rails, for gitlab_rails), so each must be managed.
        for (const variant of [
            input(), input({ migrationNode: true, initialRootPassword: "pw", backupKeepTimeSeconds: 1 }), input({ externalUrl: "http://gitlab.example.com" }),
            input({ gitaly }), input({ migrationNode: true, initialRootPassword: "pw", gitaly }),
        ]) {
            for (const [name, key] of settingsOf(renderGitlabRb(variant))) written.add(`${name}.${key}`);
        }
        // The Gitaly node's file: the stack reaches it only through the gitlab.omnibus names in
        // GITALY_NODE_OMNIBUS (the cluster passes no others, and renderGitalyRb refuses them), so its
        // settings under those names must be managed. Its gitlab_rails settings count too: they are
        // MANAGED_RAILS_KEYS, the list that also refuses gitlab.rails keys, and must hold every
        // gitlab_rails key the program writes on any node. Its other settings (nginx['enable'] = false,
        // puma['enable'] = false, ...) no stack setting can reach on that node, and managing them would
        // refuse them for the Rails nodes, where they are the stack's to set.
        const gitalyNodeWritten = settingsOf(renderGitalyRb({ nodeName: "gitaly1", internalApiUrl: "https://gitlab.example.com", port: 8075, token: "t", shellSecret: "s", omnibus: {} }));
        const reachable = (name: string) => (GITALY_NODE_OMNIBUS as readonly string[]).includes(name) || name === "gitlab_rails";
        for (const [name, key] of gitalyNodeWritten.filter(([name]) => reachable(name))) written.add(`${name}.${key}`);
        // The rule is not vacuous: it keeps the Gitaly node's own settings, and leaves out what only it turns off.
        assert.ok(written.has("gitaly.configuration") && written.has("gitlab_rails.internal_api_url") && written.has("gitlab_rails.rake_cache_clear"));
        assert.ok(gitalyNodeWritten.some(([name, key]) => name === "puma" && key === "enable"));
        const managed = Object.entries(MANAGED_OMNIBUS_SETTINGS).flatMap(([name, keys]) => keys.map(k => `${name}.${k}`));
        assert.deepEqual([...written].sort(), [...managed].sort());
        assert.deepEqual(MANAGED_OMNIBUS_SETTINGS.gitlab_rails, MANAGED_RAILS_KEYS);
    });

    it("refuses top-level names Omnibus does not know, or that take no ['key'] settings, with the reason", () => {
        const problem = (omnibus: Record<string, unknown>) => omnibusSettingProblems(omnibus).map(p => `${p.path.join(".")}: ${p.message}`);
        assert.deepEqual(problem({ gitlab_rials: { time_zone: "UTC" } }), ["gitlab_rials: is not a top-level setting of Omnibus 18.4's gitlab.rb (reconfigure would fail on it); did you mean gitlab_rails?"]);
        assert.deepEqual(problem({ grafana: { enable: false } }), ["grafana: is not a top-level setting of Omnibus 18.4's gitlab.rb (reconfigure would fail on it)"]);
        assert.match(problem({ external_url: { x: 1 } })[0]!, /^external_url: is set by the program, from gitlab\.externalUrl$/);
        assert.match(problem({ registry_external_url: { x: 1 } })[0]!, /the balancer routes only gitlab\.externalUrl/);
        assert.match(problem({ git_data_dirs: { default: { path: "/x" } } })[0]!, /removed in GitLab 18\.0/);
        assert.match(problem({ runtime_dir: { x: 1 } })[0]!, /is a single value \(runtime_dir '\.\.\.'\)/);
        for (const role of [...OMNIBUS_TOP_LEVEL.roles, "roles"]) assert.match(problem({ [role]: { enable: true } })[0]!, /assigns an Omnibus role/, role);
        assert.match(problem({ node: { x: 1 } })[0]!, /internal to Omnibus/);
        assert.deepEqual(problem({ puma: 4 }), ["puma: must be a map of puma['<key>'] settings"]);
        assert.deepEqual(problem({ puma: { "Worker-Processes": 4 } }), ["puma.Worker-Processes: must be an Omnibus setting name: lower-case letters, digits, '_'"]);
    });

    it("refuses the data paths the NFS mounts and the backup scripts rely on", () => {
        for (const [name, key] of [["gitlab_rails", "uploads_directory"], ["gitlab_rails", "shared_path"], ["gitlab_ci", "builds_directory"]]) {
            assert.match(omnibusSettingProblems({ [name!]: { [key!]: "/data/x" } })[0]?.message ?? "", /^would move data off \/var\/opt\/gitlab\/.*, where the program mounts the NFS share/, key);
        }
        assert.match(omnibusSettingProblems({ gitlab_rails: { backup_path: "/data/backups" } })[0]?.message ?? "", /backup and restore scripts/);
        // The repository storages are the program's now (the Gitaly node's address, or Omnibus's default): managed, not refused.
        assert.equal(REFUSED_OMNIBUS_SETTINGS.gitlab_rails?.repositories_storages, undefined);
        assert.deepEqual(omnibusSettingProblems({ gitlab_rails: { repositories_storages: { default: { gitaly_address: "tcp://x:8075" } } } }).map(p => p.message),
            ["is set by the program (from the cluster's topology and generated secrets) and cannot be overridden"]);
        for (const [name, keys] of Object.entries(REFUSED_OMNIBUS_SETTINGS)) {
            for (const key of Object.keys(keys)) assert.throws(() => renderGitlabRb(input({ omnibus: { [name]: { [key]: "x" } } })), new RegExp(`^Error: gitlab\\.omnibus\\.${name}\\.${key}: `));
        }
    });

    it("refuses user['uid'] and user['gid'], which the Docker image ignores", () => {
        for (const key of ["uid", "gid"]) {
            assert.match(omnibusSettingProblems({ user: { [key]: 1001 } })[0]?.message ?? "", /ignored by the GitLab Docker image, which sets manage_accounts\['enable'\] = false and fixes git at 998:998/);
        }
        assert.deepEqual(omnibusSettingProblems({ user: { git_user_email: "gitlab@example.com" } }), []);
    });

    it("refuses a value Ruby cannot hold, naming where inside it", () => {
        const omnibus = { gitlab_rails: { ldap_servers: { main: { password: "a\0b" } }, omniauth_providers: [{ args: { secret: "x\0" } }] } };
        assert.deepEqual(omnibusSettingProblems(omnibus).map(p => `${p.path.join(".")}: ${p.message}`), [
            "gitlab_rails.ldap_servers.main.password: must not contain a NUL character",
            "gitlab_rails.omniauth_providers.0.args.secret: must not contain a NUL character",
        ]);
        assert.throws(() => renderGitlabRb(input({ omnibus })), /^Error: gitlab\.omnibus\.gitlab_rails\.ldap_servers\.main\.password: must not contain a NUL character; gitlab\.omnibus\.gitlab_rails\.omniauth_providers\[0\]\.args\.secret: /);
    });
});

describe("Omnibus's top-level names: one list", () => {
    const LOADER = path.join(__dirname, "..", "..", "..", "tests", "integration", "images", "gitlab-standin", "load_gitlab_rb.rb");

    it("the stand-in loader knows exactly the names of OMNIBUS_TOP_LEVEL", () => {
        const known = JSON.parse(execFileSync("ruby", [LOADER, "--known"], { encoding: "utf8" })) as string[];
        assert.deepEqual(known, [...OMNIBUS_TOP_LEVEL_NAMES].sort());
    });

    it("has each name once, in one group, all lower-case identifiers", () => {
        assert.equal(new Set(OMNIBUS_TOP_LEVEL_NAMES).size, OMNIBUS_TOP_LEVEL_NAMES.length);
        for (const name of OMNIBUS_TOP_LEVEL_NAMES) assert.match(name, /^[a-z][a-z0-9_]*$/);
        for (const name of Object.keys(MANAGED_OMNIBUS_SETTINGS)) assert.ok(OMNIBUS_TOP_LEVEL.settings.includes(name as never), name);
        // Omnibus 18.4.1 declares 57 attribute hashes, 7 single values (+ roles), 15 roles, node and edition.
        assert.deepEqual(Object.values(OMNIBUS_TOP_LEVEL).map(g => g.length), [57, 8, 15, 2]);
    });

    it("every setting name in the list loads in strict mode; a name outside it does not", () => {
        const rb = OMNIBUS_TOP_LEVEL.settings.map(n => `${n}['probe'] = 1`).join("\n");
        const s = loadGitlabRb(`${rb}\n`);
        for (const n of OMNIBUS_TOP_LEVEL.settings) assert.equal(s[n]?.probe, 1, n);
        assert.throws(() => loadGitlabRb("grafana['enable'] = false\n"), /unknown top-level names in .*: grafana/);
    });
});

