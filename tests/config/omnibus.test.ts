// gitlab.omnibus (any Omnibus setting, nested) and the removed gitlab.gitUid/gitGid, as the stack
// configuration sees them: every problem names its key path; secret-named values must be encrypted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseClusterConfig, secretFlagsOf } from "../../components/config";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { loadGitlabRb } from "../support/readers";
import { allSecret, refusalsOf } from "../support/config";


const withOmnibus = (omnibus: unknown, rails?: Record<string, unknown>) => {
    const raw = threeNodeConfig();
    raw.gitlab.omnibus = omnibus;
    if (rails) raw.gitlab.rails = rails;
    return raw;
};

describe("gitlab.omnibus", () => {
    it("is parsed as ClusterConfig.gitlab.omnibus, empty by default", () => {
        assert.deepEqual(parseClusterConfig(threeNodeConfig(), allSecret).gitlab.omnibus, {});
        const omnibus = { puma: { worker_processes: 4 }, sidekiq: { concurrency: 20 }, gitlab_rails: { smtp_enable: true, ldap_servers: { main: { port: 636, base: null } } } };
        assert.deepEqual(parseClusterConfig(withOmnibus(omnibus), allSecret).gitlab.omnibus, omnibus);
    });

    it("reaches every node's gitlab.rb (through the real cluster)", async () => {
        const e = await evaluate(withOmnibus({ puma: { worker_processes: 3 }, gitlab_rails: { ldap_servers: { main: { host: "ldap.example.com" } } } }));
        for (const node of ["app1", "app2", "app3"]) {
            const s = loadGitlabRb(String(e.byName(`gitlab-gitlab-${node}-gitlab-rb`).inputs.stdin));
            assert.equal(s.puma.worker_processes, 3, node);
            assert.deepEqual(s.gitlab_rails.ldap_servers, { main: { host: "ldap.example.com" } }, node);
        }
    });

    it("names the key path of every problem", () => {
        assert.deepEqual(refusalsOf(withOmnibus({
            gitlab_rials: { time_zone: "UTC" },
            nginx: { listen_port: 8080, client_max_body_size: "0" },
            gitlab_rails: { db_password: "x", ldap_servers: { main: { bind_dn: "a\0b" } } },
            user: { uid: 1001 },
            puma: 4,
        })), [
            "gitlab-cluster:gitlab.omnibus.gitlab_rials: is not a top-level setting of Omnibus 18.4's gitlab.rb (reconfigure would fail on it); did you mean gitlab_rails? (got an object)",
            "gitlab-cluster:gitlab.omnibus.nginx.listen_port: is set by the program (from the cluster's topology and generated secrets) and cannot be overridden (got 8080)",
            "gitlab-cluster:gitlab.omnibus.gitlab_rails.db_password: is set by the program (from the cluster's topology and generated secrets) and cannot be overridden (got [secret])",
            "gitlab-cluster:gitlab.omnibus.gitlab_rails.ldap_servers.main.bind_dn: must not contain a NUL character (got [secret])",
            "gitlab-cluster:gitlab.omnibus.user.uid: is ignored by the GitLab Docker image, which sets manage_accounts['enable'] = false and fixes git at 998:998 (the same on every node, as the NFS share needs) (got 1001)",
            "gitlab-cluster:gitlab.omnibus.puma: must be a map of puma['<key>'] settings (got 4)",
        ]);
    });

    it("refuses a gitlab_rails key set both in gitlab.rails and gitlab.omnibus.gitlab_rails", () => {
        assert.deepEqual(refusalsOf(withOmnibus({ gitlab_rails: { time_zone: "Europe/Berlin", smtp_enable: true } }, { time_zone: "UTC" })), [
            "gitlab-cluster:gitlab.omnibus.gitlab_rails.time_zone: is also set as gitlab.rails.time_zone: set it in one place",
        ]);
    });

    it("requires secret-named strings at any depth to be stored encrypted, and names the command", () => {
        const raw = withOmnibus({
            gitlab_rails: {
                smtp_password: "hunter2", smtp_enable: true,
                ldap_servers: { main: { password: "ldap-pw", port: 636 } },
                omniauth_providers: [{ name: "openid_connect", args: { client_options: { secret: "oidc" } } }],
                gitlab_default_projects_features_builds: true,
            },
            gitlab_kas: { api_secret_key: "k" },
        });
        const encrypted = ["ssh", "loadBalancer", "gitlab.omnibus.gitlab_rails.smtp_password", "gitlab.omnibus.gitlab_rails.ldap_servers.main.password",
            "gitlab.omnibus.gitlab_rails.omniauth_providers[0].args.client_options.secret", "gitlab.omnibus.gitlab_kas.api_secret_key"];
        assert.doesNotThrow(() => parseClusterConfig(raw, secretFlagsOf(encrypted)));
        assert.deepEqual(refusalsOf(raw, secretFlagsOf([...encrypted.slice(0, 2), ...encrypted.slice(3, 5)])), [
            "gitlab-cluster:gitlab.omnibus.gitlab_rails.smtp_password: is stored in plain text; set it with `pulumi config set --secret --path 'gitlab.omnibus.gitlab_rails.smtp_password'`",
            "gitlab-cluster:gitlab.omnibus.gitlab_kas.api_secret_key: is stored in plain text; set it with `pulumi config set --secret --path 'gitlab.omnibus.gitlab_kas.api_secret_key'`",
        ]);
        // A switch or a number under a secret-looking name is no secret.
        assert.doesNotThrow(() => parseClusterConfig(withOmnibus({ gitlab_rails: { smtp_enable_starttls_auto: true, personal_access_token_prefix_length: 3 } }), secretFlagsOf(["ssh", "loadBalancer"])));
    });

    it("never echoes a secret-named value, nor the contents of a setting, in an error", () => {
        const problems = refusalsOf(withOmnibus({ gitlab_rails: { db_password: "HUNTER2", ldap_servers: { main: { password: "HUNTER2\0" } } }, gitlab_railz: { smtp_password: "HUNTER2" } }));
        assert.equal(problems.length, 3);
        assert.ok(!problems.join("\n").includes("HUNTER2"), problems.join("\n"));
    });
});

describe("gitlab.gitUid and gitlab.gitGid (removed)", () => {
    for (const key of ["gitUid", "gitGid"]) {
        it(`${key}: refused with the reason it was removed`, () => {
            const raw = threeNodeConfig();
            raw.gitlab[key] = 998;
            assert.deepEqual(refusalsOf(raw), [
                `gitlab-cluster:gitlab.${key}: was removed: the GitLab Docker image ignores user['uid'] and user['gid'] (it sets manage_accounts['enable'] = false) and its git user is 998:998 on every node, which is what the NFS share needs; delete it (got 998)`,
            ]);
        });
    }

    it("are not in the parsed configuration", () => {
        const gitlab = parseClusterConfig(threeNodeConfig(), allSecret).gitlab as Record<string, unknown>;
        assert.ok(!("gitUid" in gitlab) && !("gitGid" in gitlab));
    });
});
