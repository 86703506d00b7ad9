// The Gitaly layout's two gitlab.rb files, loaded back by the stand-in's Ruby loader: the Gitaly
// node's own (only Gitaly runs), and a Rails node's when it uses the Gitaly node.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    GITALY_NODE_DISABLED_SERVICES, GITALY_NODE_OMNIBUS, GITALY_STORAGE, GITALY_STORAGE_PATH, MANAGED_OMNIBUS_SETTINGS, gitalyAddress, renderGitalyRb,
    renderGitlabRb, type GitalyRbInput, type GitlabRbInput,
} from "../../components/render/gitlabRb";
import { loadGitlabRb } from "../support/readers";

/** What a generated secret must survive: quotes, backslashes, interpolation, newlines, CR, non-ASCII. */
const HOSTILE = `t'o"k\\e\\\\n#{system('touch /tmp/pwned')}$(id)\`id\`\nline2\r\nü€ '`;

function gitalyInput(overrides: Partial<GitalyRbInput> = {}): GitalyRbInput {
    return {
        nodeName: "gitaly1",
        internalApiUrl: "https://gitlab.example.com",
        port: 8075,
        token: "gitaly-token-1234",
        shellSecret: "shell-secret-5678",
        omnibus: {},
        ...overrides,
    };
}

function railsInput(overrides: Partial<GitlabRbInput> = {}): GitlabRbInput {
    return {
        nodeName: "app2",
        externalUrl: "https://gitlab.example.com",
        migrationNode: false,
        database: { host: "10.0.0.21", port: 5432, name: "gitlabhq_production", user: "gitlab", password: "db-pw" },
        redis: { host: "10.0.0.21", port: 6379, password: "redis-pw" },
        balancerSources: ["10.0.0.5/32"],
        sshPort: 2222,
        rails: {},
        omnibus: {},
        ...overrides,
    };
}

// The loader turns Ruby symbols into strings (its prune step: `k.to_s`, `v.to_s`), so Gitaly's
// `{ listen_addr: ..., auth: { token: ... } }` comes back with string keys.
describe("the Gitaly node's gitlab.rb, loaded by Ruby", () => {
    it("listens on every interface of the container at the port, with the token, serving the one storage at Omnibus's path", () => {
        const s = loadGitlabRb(renderGitalyRb(gitalyInput({ port: 9999 })));
        assert.deepEqual(s.gitaly.configuration, {
            listen_addr: "0.0.0.0:9999",
            auth: { token: "gitaly-token-1234" },
            storage: [{ name: "default", path: "/var/opt/gitlab/git-data/repositories" }],
        });
        assert.equal(GITALY_STORAGE, "default");
        assert.equal(GITALY_STORAGE_PATH, "/var/opt/gitlab/git-data/repositories");
        assert.equal(s.gitaly.enable, undefined, "Gitaly is left on (Omnibus's default)");
    });

    it("runs nothing but Gitaly: every other default service is off, and it neither migrates nor clears Rails' cache", () => {
        const s = loadGitlabRb(renderGitalyRb(gitalyInput()));
        for (const service of GITALY_NODE_DISABLED_SERVICES) assert.equal(s[service]?.enable, false, service);
        // GitLab's "Configure Gitaly" list for a Gitaly server of the Linux package (monitoring as one switch).
        for (const service of ["postgresql", "redis", "nginx", "puma", "sidekiq", "gitlab_workhorse", "gitlab_exporter", "gitlab_kas", "prometheus_monitoring"]) {
            assert.equal(s[service]?.enable, false, service);
        }
        assert.equal(s.gitlab_rails.auto_migrate, false);
        assert.equal(s.gitlab_rails.rake_cache_clear, false);
        assert.equal(s.external_url, undefined, "no external_url: this node serves no web traffic");
    });

    it("lets the git hooks call the internal API at the external URL, with gitlab-shell's secret", () => {
        const s = loadGitlabRb(renderGitalyRb(gitalyInput({ internalApiUrl: "http://gitlab.internal.example:8080" })));
        assert.equal(s.gitlab_rails.internal_api_url, "http://gitlab.internal.example:8080");
        assert.equal(s.gitlab_shell.secret_token, "shell-secret-5678");
    });

    it("carries a token and a secret with quotes, backslashes, #{}, newlines and CR intact", () => {
        const s = loadGitlabRb(renderGitalyRb(gitalyInput({ token: HOSTILE, shellSecret: `s${HOSTILE}` })));
        assert.equal(s.gitaly.configuration.auth.token, HOSTILE);
        assert.equal(s.gitlab_shell.secret_token, `s${HOSTILE}`);
        assert.equal(s.gitaly.configuration.listen_addr, "0.0.0.0:8075", "the rest of the hash is not swallowed by the token");
        assert.deepEqual(s.gitaly.configuration.storage, [{ name: "default", path: "/var/opt/gitlab/git-data/repositories" }]);
    });

    it("writes the gitlab.omnibus settings of the names a Gitaly node takes, merged beside its own", () => {
        const omnibus = { gitaly: { env: { GOMAXPROCS: "4" } }, logging: { svlogd_num: 10 }, logrotate: { frequency: "daily", rotate: 7 } };
        const s = loadGitlabRb(renderGitalyRb(gitalyInput({ omnibus })));
        assert.deepEqual(s.gitaly.env, { GOMAXPROCS: "4" });
        assert.equal(s.logging.svlogd_num, 10);
        assert.deepEqual(s.logrotate, { frequency: "daily", rotate: 7 });
        assert.equal(s.gitaly.configuration.auth.token, "gitaly-token-1234", "the program's configuration stays");
    });

    it("refuses a gitlab.omnibus name outside GITALY_NODE_OMNIBUS, naming it", () => {
        assert.deepEqual([...GITALY_NODE_OMNIBUS].sort(), ["gitaly", "logging", "logrotate"]);
        for (const name of ["puma", "gitlab_rails", "nginx", "gitlab_shell"]) {
            assert.throws(() => renderGitalyRb(gitalyInput({ omnibus: { [name]: { x: 1 } } })),
                new RegExp(`^Error: the Gitaly node takes only gitaly, logging, logrotate settings, not ${name}$`), name);
        }
    });

    it("refuses a gitaly setting the program manages (configuration, enable)", () => {
        for (const key of ["configuration", "enable"]) {
            assert.ok(MANAGED_OMNIBUS_SETTINGS.gitaly?.includes(key), key);
            assert.throws(() => renderGitalyRb(gitalyInput({ omnibus: { gitaly: { [key]: { listen_addr: "0.0.0.0:1" } } } })),
                new RegExp(`^Error: gitlab\\.omnibus\\.gitaly\\.${key}: is set by the program`), key);
        }
        assert.doesNotThrow(() => renderGitalyRb(gitalyInput({ omnibus: { gitaly: { env: {} } } })), "an unmanaged gitaly key is fine");
    });
});

describe("a Rails node's gitlab.rb with the Gitaly node, loaded by Ruby", () => {
    const gitaly = { address: "10.0.0.31", port: 8075, token: "gitaly-token-1234", shellSecret: "shell-secret-5678" };

    it("runs no Gitaly of its own and keeps the default storage on the Gitaly node, over TCP with the token", () => {
        const s = loadGitlabRb(renderGitlabRb(railsInput({ gitaly })));
        assert.equal(s.gitaly.enable, false);
        assert.deepEqual(s.gitlab_rails.repositories_storages, { default: { gitaly_address: "tcp://10.0.0.31:8075" } });
        assert.equal(s.gitlab_rails.gitaly_token, "gitaly-token-1234");
        assert.equal(s.gitlab_shell.secret_token, "shell-secret-5678");
    });

    it("writes an IPv6 address in brackets", () => {
        const s = loadGitlabRb(renderGitlabRb(railsInput({ gitaly: { ...gitaly, address: "fd00::31", port: 9999 } })));
        assert.equal(s.gitlab_rails.repositories_storages.default.gitaly_address, "tcp://[fd00::31]:9999");
        assert.equal(new URL(s.gitlab_rails.repositories_storages.default.gitaly_address).hostname, "[fd00::31]");
        assert.equal(new URL(s.gitlab_rails.repositories_storages.default.gitaly_address).port, "9999");
        assert.equal(gitalyAddress("10.0.0.31", 8075), "tcp://10.0.0.31:8075");
    });

    it("carries a token and a secret with quotes, backslashes, #{}, newlines and CR intact", () => {
        const s = loadGitlabRb(renderGitlabRb(railsInput({ gitaly: { ...gitaly, token: HOSTILE, shellSecret: `s${HOSTILE}` } })));
        assert.equal(s.gitlab_rails.gitaly_token, HOSTILE);
        assert.equal(s.gitlab_shell.secret_token, `s${HOSTILE}`);
    });

    it("the token and secret it holds are the ones the Gitaly node's file holds", () => {
        const rails = loadGitlabRb(renderGitlabRb(railsInput({ gitaly: { ...gitaly, token: HOSTILE, shellSecret: `s${HOSTILE}` } })));
        const node = loadGitlabRb(renderGitalyRb(gitalyInput({ token: HOSTILE, shellSecret: `s${HOSTILE}` })));
        assert.equal(rails.gitlab_rails.gitaly_token, node.gitaly.configuration.auth.token);
        assert.equal(rails.gitlab_shell.secret_token, node.gitlab_shell.secret_token);
        assert.equal(rails.gitlab_rails.repositories_storages.default.gitaly_address.replace(/^tcp:\/\/[^:]+/, ""),
            node.gitaly.configuration.listen_addr.replace(/^0\.0\.0\.0/, ""), "the same port");
        assert.ok(GITALY_STORAGE in rails.gitlab_rails.repositories_storages);
        assert.equal(node.gitaly.configuration.storage[0].name, GITALY_STORAGE);
    });

    it("without the Gitaly node, writes none of it: today's layout, setting for setting", () => {
        for (const variant of [{}, { migrationNode: true, initialRootPassword: "pw" }, { externalUrl: "http://gitlab.example.com" }]) {
            const without = loadGitlabRb(renderGitlabRb(railsInput(variant)));
            assert.equal(without.gitaly, undefined);
            assert.equal(without.gitlab_shell, undefined);
            assert.equal(without.gitlab_rails.repositories_storages, undefined);
            assert.equal(without.gitlab_rails.gitaly_token, undefined);
            // The Gitaly layout adds exactly its four settings to that file, and changes nothing else.
            const withGitaly = loadGitlabRb(renderGitlabRb(railsInput({ ...variant, gitaly })));
            delete withGitaly.gitaly;
            delete withGitaly.gitlab_shell;
            delete withGitaly.gitlab_rails.repositories_storages;
            delete withGitaly.gitlab_rails.gitaly_token;
            assert.deepEqual(withGitaly, without);
        }
    });
});
