// Promotion of gitlab.omnibus: promoted like gitlab.rails, except Puma's and Sidekiq's sizing
// (gitlab.omnibus.puma, .sidekiq), which fits each stack's own hosts.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseDocument } from "yaml";
import { promoteStackFile } from "../../scripts/promoteFile";
import { planPromotion } from "../../scripts/promotePlan";

const root = path.resolve(__dirname, "..", "..", "..");
const realStaging = fs.readFileSync(path.join(root, "Pulumi.staging.yaml"), "utf8");
const realProd = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
const gitlabOf = (omnibus?: Record<string, unknown>) => ({ "gitlab-cluster:gitlab": { image: "g/gitlab-ce:18.4.1-ce.0", ...(omnibus ? { omnibus } : {}) } });
const omnibusOf = (config: Record<string, unknown>) => (config["gitlab-cluster:gitlab"] as { omnibus?: unknown }).omnibus;

describe("promotion of gitlab.omnibus", () => {
    it("copies every Omnibus setting but keeps the target's Puma and Sidekiq sizing", () => {
        const plan = planPromotion(
            gitlabOf({ puma: { worker_processes: 2 }, sidekiq: { concurrency: 10 }, gitlab_rails: { smtp_address: "smtp.new", ldap_servers: { main: { port: 636 } } } }),
            gitlabOf({ puma: { worker_processes: 8 }, sidekiq: { concurrency: 25 }, gitlab_rails: { smtp_address: "smtp.old" }, registry: { enable: false } }),
        );
        assert.deepEqual(omnibusOf(plan.config), { puma: { worker_processes: 8 }, sidekiq: { concurrency: 25 }, gitlab_rails: { smtp_address: "smtp.new", ldap_servers: { main: { port: 636 } } } });
        assert.deepEqual(plan.changes.map(c => c.path).sort(), ["gitlab.omnibus.gitlab_rails.ldap_servers", "gitlab.omnibus.gitlab_rails.smtp_address", "gitlab.omnibus.registry"]);
    });

    it("adds the settings to a target that has none, and removes them from one whose source has none, sizing aside", () => {
        assert.deepEqual(omnibusOf(planPromotion(gitlabOf({ puma: { worker_processes: 2 }, nginx: { client_max_body_size: "0" } }), gitlabOf()).config), { nginx: { client_max_body_size: "0" } });
        assert.deepEqual(omnibusOf(planPromotion(gitlabOf({ puma: { worker_processes: 2 } }), gitlabOf()).config), undefined);
        assert.deepEqual(omnibusOf(planPromotion(gitlabOf(), gitlabOf({ sidekiq: { concurrency: 30 }, registry: { enable: false } })).config), { sidekiq: { concurrency: 30 } });
    });

    it("leaves an encrypted Omnibus value alone", () => {
        const plan = planPromotion(
            gitlabOf({ gitlab_rails: { smtp_password: { secure: "v1:src" }, smtp_port: 587 } }),
            gitlabOf({ gitlab_rails: { smtp_password: { secure: "v1:dst" }, smtp_port: 25 } }),
        );
        assert.deepEqual(plan.skippedSecure, ["gitlab.omnibus.gitlab_rails.smtp_password"]);
        assert.deepEqual(omnibusOf(plan.config), { gitlab_rails: { smtp_password: { secure: "v1:dst" }, smtp_port: 587 } });
    });

    it("staging -> prod: an LDAP setting added in staging reaches prod; prod's own sizing and comments stay", () => {
        const staging = realStaging.replace("        smtp_enable: true\n", "        smtp_enable: true\n        ldap_enabled: true\n");
        const r = promoteStackFile(staging, realProd, { from: "Pulumi.staging.yaml", to: "Pulumi.prod.yaml" });
        assert.deepEqual(r.changes.map(c => c.path), ["gitlab.omnibus.gitlab_rails.ldap_enabled"]);
        const before = realProd.split("\n"), after = r.text.split("\n");
        assert.deepEqual(after.filter(l => !before.includes(l)), ["        ldap_enabled: true"]);
        const omnibus = (parseDocument(r.text).toJS() as { config: Record<string, unknown> }).config;
        assert.deepEqual((omnibusOf(omnibus) as { puma: unknown }).puma, { worker_processes: 4, max_threads: 4 });
        assert.equal(promoteStackFile(realStaging, realProd).changes.length, 0, "the example stacks differ only in per-stack settings");
    });
});
