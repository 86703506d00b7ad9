// GitLab's zero-downtime upgrade, as `pulumi up` of a new gitlab.image runs it: a preflight before
// any GitLab container is replaced; the deploy node first, starting with regular migrations only;
// the other nodes one at a time, each after the previous one is ready on the new image; the
// post-deployment migrations once, after every node is ready.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { classify, type Classified } from "../../scripts/bench/blastRadius";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { dependsOn, directlyDependsOn, str } from "../support/graph";
import { tempDir } from "../support/readers";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("keys");
const OLD = "gitlab/gitlab-ce:18.4.1-ce.0";
const NEW = "gitlab/gitlab-ce:18.5.0-ce.0";
const NODES = ["app1", "app2", "app3"];
const PREFLIGHT = "gitlab-gitlab-app1-upgrade-preflight";
const POST_MIGRATE = "gitlab-gitlab-app1-post-deploy-migrations";

function withImage(image: string): Record<string, any> { // any: as threeNodeConfig's
    const cfg = threeNodeConfig();
    cfg.gitlab.image = image;
    return cfg;
}

describe("zero-downtime upgrade (a new gitlab.image)", () => {
    let before1: Evaluation;
    let after: Evaluation;
    let ops: Map<string, Classified>;
    before(async () => {
        before1 = await evaluate(withImage(OLD));
        after = await evaluate(withImage(NEW));
        ops = new Map(classify(before1.resources, after.resources).resources.map(r => [r.name, r]));
    });
    const node = (n: string, part = "") => after.byName(`gitlab-gitlab-${n}${part}`);

    it("changes exactly the images, containers, readiness waits, identity, preflight and post-deployment migrations", () => {
        const touched = [...ops.values()].filter(r => r.op !== "same").map(r => `${r.name} ${r.op}`).sort();
        assert.deepEqual(touched, [
            "gitlab-gitlab-app1 replace", "gitlab-gitlab-app1-image replace", POST_MIGRATE + " replace",
            "gitlab-gitlab-app1-read-identity replace", "gitlab-gitlab-app1-ready replace", PREFLIGHT + " replace",
            "gitlab-gitlab-app2 replace", "gitlab-gitlab-app2-identity update", "gitlab-gitlab-app2-image replace", "gitlab-gitlab-app2-ready replace",
            "gitlab-gitlab-app3 replace", "gitlab-gitlab-app3-identity update", "gitlab-gitlab-app3-image replace", "gitlab-gitlab-app3-ready replace",
        ].sort());
        // Replaced by their triggers (the image), so each runs its new `create`: the preflight checks, the migrations run.
        for (const name of [PREFLIGHT, POST_MIGRATE]) {
            assert.deepEqual(ops.get(name)!.replaceInputs, ["triggers"], name);
            assert.deepEqual(ops.get(name)!.changedInputs, ["create", "triggers"], name);
        }
    });

    it("runs the preflight before any GitLab container is replaced; the new image is pulled on every node meanwhile", () => {
        const preflight = after.byName(PREFLIGHT);
        assert.deepEqual(preflight.inputs.triggers, [NEW], "re-runs for each new image");
        assert.match(str(preflight, "create"), /^target=18\.5\.0$/m);
        for (const n of NODES) {
            assert.ok(directlyDependsOn(node(n), preflight), `${n}'s container waits for the preflight`);
            assert.ok(!dependsOn(after, node(n, "-image"), preflight), `${n}'s image is pulled without waiting (shorter turn per node)`);
            assert.ok(!dependsOn(after, preflight, node(n)), `the preflight does not wait for ${n}`);
        }
    });

    it("replaces the deploy node first, then each other node only after the previous one is ready on its new container", () => {
        for (const [i, n] of NODES.entries()) {
            assert.ok(directlyDependsOn(node(n, "-ready"), node(n)), `${n}: readiness after its container`);
            assert.deepEqual(node(n, "-ready").inputs.triggers, [`gitlab-gitlab-${n}-id`], `${n}: a new container is waited for again`);
            if (i === 0) continue;
            const previous = NODES[i - 1]!;
            assert.ok(directlyDependsOn(node(n), node(previous, "-ready")), `${n} after ${previous}'s readiness`);
            assert.ok(!dependsOn(after, node(previous), node(n)), `${previous} does not wait for ${n}`);
        }
        // Never two GitLab containers down at once: each replaced container is after the previous readiness, transitively.
        assert.ok(dependsOn(after, node("app3"), node("app1", "-ready")));
    });

    it("gives only the deploy node SKIP_POST_DEPLOYMENT_MIGRATIONS, so its start runs the regular migrations only", () => {
        assert.deepEqual(node("app1").inputs.envs, ["SKIP_POST_DEPLOYMENT_MIGRATIONS=true"]);
        for (const n of ["app2", "app3"]) assert.equal(node(n).inputs.envs, undefined, n);
    });

    it("runs the post-deployment migrations once, on the deploy node, after every node is ready on the new image", () => {
        const migrate = after.byName(POST_MIGRATE);
        assert.deepEqual(migrate.inputs.triggers, [NEW]);
        assert.match(str(migrate, "create"), /docker exec gitlab-gitlab-app1 env -u SKIP_POST_DEPLOYMENT_MIGRATIONS gitlab-rake db:migrate/);
        for (const n of NODES) assert.ok(directlyDependsOn(migrate, node(n, "-ready")), n);
        assert.equal(after.resources.filter(r => /post-deploy-migrations/.test(r.name) && r.custom).length, 1);
    });

    it("a change that keeps the image leaves the preflight and the post-deployment migrations alone", async () => {
        const cfg = withImage(NEW);
        cfg.gitlab.rails = { time_zone: "Europe/Berlin" };
        const same = classify(after.resources, (await evaluate(cfg)).resources).resources;
        for (const name of [PREFLIGHT, POST_MIGRATE, ...NODES.map(n => `gitlab-gitlab-${n}`)]) {
            assert.equal(same.find(r => r.name === name)!.op, "same", name);
        }
    });
});
