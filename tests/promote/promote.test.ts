// Promotion staging -> prod on temporary copies of the real stack files: what moves, what never
// moves, the GitLab upgrade path, and that the target file keeps its comments and layout.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseDocument } from "yaml";
import { main } from "../../scripts/promote";
import { unifiedDiff } from "../../scripts/promoteDiff";
import { promoteStackFile, PromotionRefused } from "../../scripts/promoteFile";
import { planPromotion } from "../../scripts/promotePlan";
import { checkGitlabUpgrade, GITLAB_REQUIRED_UPGRADE_STOPS, gitlabVersion, skippedUpgradeStops } from "../../scripts/promoteUpgrade";
import { evaluate } from "../../scripts/evaluate";
import { readStackFile } from "../../scripts/renderStack";
import { tempDir } from "../support/readers";

const root = path.resolve(__dirname, "..", "..", "..");
const realStaging = fs.readFileSync(path.join(root, "Pulumi.staging.yaml"), "utf8");
const realProd = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("promote-keys");

/** A scratch directory with copies of the stack files, edited by `edit`. */
function stacks(edit: { staging?: (s: string) => string; prod?: (s: string) => string } = {}): string {
    const dir = tempDir("promote");
    fs.writeFileSync(path.join(dir, "Pulumi.staging.yaml"), (edit.staging ?? (s => s))(realStaging));
    fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), (edit.prod ?? (s => s))(realProd));
    return dir;
}

async function run(dir: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "", err = "";
    const code = await main(args, dir, s => { out += s; }, s => { err += s; });
    return { code, out, err };
}

const setImage = (version: string) => (s: string) => s.replace(/gitlab\/gitlab-ce:[0-9.]+-ce\.0/, `gitlab/gitlab-ce:${version}`);
const prodFile = (dir: string) => fs.readFileSync(path.join(dir, "Pulumi.prod.yaml"), "utf8");

/** The source text of one `config:` entry, from its key to the end of its value. */
function entryText(text: string, key: string): string {
    const doc = parseDocument(text, { keepSourceTokens: true });
    const pair = (doc.get("config", true) as { items: { key: { value: string; range: number[] }; value: { range: number[] } }[] }).items.find(p => p.key.value === key);
    assert.ok(pair, key);
    return text.slice(pair.key.range[0]!, pair.value.range[2]);
}

describe("promotion staging -> prod", () => {
    it("copies an image bump and tier settings, prints a diff, writes only with --write", async () => {
        const dir = stacks({
            staging: s => setImage("18.5.2-ce.0")(s)
                .replace("image: postgres:16.15-bookworm", "image: postgres:16.16-bookworm")
                .replace("keepDays: 14", "keepDays: 21")
                .replace("      time_zone: UTC\n", "      time_zone: UTC\n      gitlab_default_theme: 2\n"),
        });
        const dry = await run(dir, "staging", "prod");
        assert.equal(dry.code, 0, dry.err);
        assert.equal(prodFile(dir), realProd, "a dry run writes nothing");
        assert.match(dry.out, /^--- a\/Pulumi\.prod\.yaml\n\+\+\+ b\/Pulumi\.prod\.yaml\n@@ /m);
        assert.match(dry.out, /^ {2}backup\.keepDays: 14 → 21$/m);
        assert.match(dry.out, /^- {4}image: gitlab\/gitlab-ce:18\.4\.1-ce\.0\n\+ {4}image: gitlab\/gitlab-ce:18\.5\.2-ce\.0$/m);
        assert.match(dry.out, /^\+ {6}gitlab_default_theme: 2$/m);
        assert.equal(dry.err, "", "18.4 -> 18.5 skips no stop");

        const written = await run(dir, "staging", "prod", "--write");
        assert.equal(written.code, 0, written.err);
        const prod = readStackFile(path.join(dir, "Pulumi.prod.yaml"));
        const gitlab = prod.config.gitlab as Record<string, unknown>;
        assert.equal(gitlab.image, "gitlab/gitlab-ce:18.5.2-ce.0");
        assert.equal(gitlab.externalUrl, "https://gitlab.example.com", "externalUrl is per stack");
        assert.deepEqual(gitlab.rails, { time_zone: "UTC", gitlab_default_theme: 2 });
        assert.equal((prod.config.postgres as { image: string }).image, "postgres:16.16-bookworm");
        assert.deepEqual(prod.config.backup, { schedule: "0 3 * * *", keepDays: 21, node: "app1" });
        // The diff printed is the change written.
        assert.equal(dry.out.replace(/\(dry run.*\n$/, "").replace(/^Pulumi\.prod\.yaml, effective values[^]*?(?=^--- )/m, ""), unifiedDiff(realProd, prodFile(dir), "a/Pulumi.prod.yaml", "b/Pulumi.prod.yaml"));
        // The promoted prod stack still evaluates.
        const e = await evaluate(prod.config, { stack: "prod", secretKeys: prod.secretKeys });
        assert.equal(e.byName("gitlab-gitlab-app3-image").inputs.name, "gitlab/gitlab-ce:18.5.2-ce.0");
        assert.equal((await run(dir, "staging", "prod")).out, "Pulumi.prod.yaml already has the promotable settings of Pulumi.staging.yaml\n");
    });

    it("refuses a GitLab downgrade with exit code 1 and writes nothing", async () => {
        const dir = stacks({ staging: setImage("18.3.2-ce.0") });
        const r = await run(dir, "staging", "prod", "--write");
        assert.equal(r.code, 1);
        assert.match(r.err, /^error: gitlab\.image: refusing to downgrade Pulumi\.prod\.yaml from GitLab 18\.4\.1-ce\.0 to 18\.3\.2-ce\.0/);
        assert.equal(r.out, "");
        assert.equal(prodFile(dir), realProd);
        assert.throws(() => promoteStackFile(setImage("18.4.0-ce.0")(realStaging), realProd), PromotionRefused, "a patch downgrade too");
    });

    it("never touches hosts, roles, ssh, secure values, per-stack keys or other namespaces", async () => {
        const otherNamespace = "  docker:host: unix:///var/run/docker.sock\n";
        const dir = stacks({
            staging: s => setImage("18.5.2-ce.0")(s)
                .replace("listenAddress", "x") // staging has none; make sure prod's is kept below
                .replace("nginx:1.30.4-trixie\n", "nginx:1.30.5-trixie\n    listenAddress: 10.1.0.5\n")
                .replace("secure: v1:PLACEHOLDER-set-with-pulumi-config-set-secret\n  gitlab-cluster:roles", "secure: v1:STAGING-CIPHERTEXT\n  gitlab-cluster:roles")
                + "  docker:host: ssh://staging\n",
            prod: s => s.replace("proxyReadTimeoutSeconds: 3600\n", "proxyReadTimeoutSeconds: 3600\n    listenAddress: 10.0.0.5\n") + otherNamespace,
        });
        const before = prodFile(dir);
        assert.equal((await run(dir, "staging", "prod", "--write")).code, 0);
        const after = prodFile(dir);
        assert.notEqual(after, before);
        for (const key of ["hosts", "ssh", "roles"]) {
            assert.equal(entryText(after, `gitlab-cluster:${key}`), entryText(before, `gitlab-cluster:${key}`), key);
        }
        assert.equal(entryText(after, "gitlab-cluster:loadBalancer").match(/tls:[\s\S]*/)![0], entryText(before, "gitlab-cluster:loadBalancer").match(/tls:[\s\S]*/)![0], "tls");
        assert.deepEqual(after.match(/secure: .*/g), before.match(/secure: .*/g));
        assert.ok(after.endsWith(otherNamespace));
        const lb = readStackFile(path.join(dir, "Pulumi.prod.yaml")).config.loadBalancer as Record<string, unknown>;
        assert.equal(lb.image, "nginx:1.30.5-trixie");
        assert.equal(lb.listenAddress, "10.0.0.5");
    });

    it("keeps each stack's backup hosts: node, target and secretsTarget never travel", () => {
        const plan = planPromotion(
            { "gitlab-cluster:backup": { schedule: "0 4 * * *", node: "app2", target: { host: "data1", path: "/srv/b" }, secretsTarget: { host: "vault1", path: "/srv/s" } } },
            { "gitlab-cluster:backup": { schedule: "0 3 * * *", node: "app1", target: { host: "store1", path: "/srv/b" }, secretsTarget: { host: "keys1", path: "/srv/s" } } },
        );
        assert.deepEqual(plan.changes.map(c => c.path), ["backup.schedule"]);
    });

    it("leaves encrypted values alone even under a promotable key", () => {
        const plan = planPromotion(
            { "gitlab-cluster:gitlab": { image: "a:1.0.0", rails: { smtp_password: { secure: "v1:src" } } } },
            { "gitlab-cluster:gitlab": { image: "a:1.0.0", rails: { smtp_password: { secure: "v1:dst" } } } },
        );
        assert.deepEqual(plan.changes, []);
        assert.deepEqual(plan.skippedSecure, ["gitlab.rails.smtp_password"]);
    });

    it("warns on stderr when the upgrade skips a required stop, and still promotes", async () => {
        const dir = stacks({ prod: setImage("18.1.3-ce.0"), staging: setImage("18.6.0-ce.0") });
        const r = await run(dir, "staging", "prod", "--write");
        assert.equal(r.code, 0);
        assert.match(r.err, /^warning: gitlab\.image: upgrading Pulumi\.prod\.yaml from GitLab 18\.1\.3-ce\.0 to 18\.6\.0-ce\.0 skips required upgrade stops 18\.2, 18\.5: /);
        assert.match(prodFile(dir), /image: gitlab\/gitlab-ce:18\.6\.0-ce\.0/);
    });

    it("keeps the target's comments, blank lines and layout", async () => {
        const dir = stacks({ staging: setImage("18.5.2-ce.0"), prod: s => s.replace("    image: gitlab/", "    # pinned: bump in staging first\n    image: gitlab/").replace(/(gitlab-ce:[^\n]*)/, "$1   # current release") });
        const before = prodFile(dir);
        assert.equal((await run(dir, "staging", "prod", "--write")).code, 0);
        const after = prodFile(dir);
        const changed = unifiedDiff(before, after, "a", "b").split("\n").filter(l => /^[-+][^-+]/.test(l));
        assert.deepEqual(changed, ["-    image: gitlab/gitlab-ce:18.4.1-ce.0   # current release", "+    image: gitlab/gitlab-ce:18.5.2-ce.0   # current release"]);
        assert.equal(after.split("\n").filter(l => l.trimStart().startsWith("#")).join("\n"), before.split("\n").filter(l => l.trimStart().startsWith("#")).join("\n"));
    });

    it("adds and removes keys in the target's indentation", () => {
        const source = "config:\n  gitlab-cluster:gitlab:\n    image: g/gitlab-ce:18.5.1-ce.0\n    externalUrl: https://s\n  gitlab-cluster:nfs:\n    mountOptions: [vers=4.1, hard]\n";
        const target = "# prod\nconfig:\n    gitlab-cluster:gitlab:\n        image: g/gitlab-ce:18.5.0-ce.0   # release\n        externalUrl: https://p\n        gitUid: 1001\n    gitlab-cluster:redis: { image: 'redis:7.2.5-bookworm' }\n";
        const r = promoteStackFile(source, target);
        assert.equal(r.text, "# prod\nconfig:\n    gitlab-cluster:gitlab:\n        image: g/gitlab-ce:18.5.1-ce.0   # release\n        externalUrl: https://p\n    gitlab-cluster:nfs:\n        mountOptions:\n            - vers=4.1\n            - hard\n");
        assert.deepEqual(r.changes.map(c => c.path).sort(), ["gitlab.gitUid", "gitlab.image", "nfs.mountOptions", "redis.image"]);
    });

    it("refuses bad arguments", async () => {
        const dir = stacks();
        assert.equal((await run(dir, "staging", "prod", "--no-such-flag")).code, 2, "an unknown flag is a usage error, not a crash");
        assert.equal((await run(dir, "staging")).code, 2);
        assert.equal((await run(dir, "staging", "staging")).code, 2);
        assert.equal((await run(dir, "staging", "qa")).code, 1);
    });
});

describe("GitLab upgrade path", () => {
    it("reads the release from an Omnibus tag", () => {
        assert.deepEqual(gitlabVersion("gitlab/gitlab-ee:17.11.4-ee.0"), { major: 17, minor: 11, patch: 4, build: 0, text: "17.11.4-ee.0" });
        assert.deepEqual(gitlabVersion("registry.example.com:5000/gitlab/gitlab-ce:18.4.1-ce.2")?.build, 2);
        assert.equal(gitlabVersion(`gitlab/gitlab-ce@sha256:${"a".repeat(64)}`), undefined);
        assert.deepEqual(gitlabVersion(`gitlab/gitlab-ce:18.4.1-ce.0@sha256:${"a".repeat(64)}`)?.text, "18.4.1-ce.0", "a digest beside the tag");
    });

    it("refuses a downgrade when the images carry digests, and refuses what it cannot compare (issue 15, M6)", async () => {
        const digest = (c: string) => `@sha256:${c.repeat(64)}`;
        const down = checkGitlabUpgrade("gitlab/gitlab-ce:18.4.1-ce.0", `gitlab/gitlab-ce:18.3.2-ce.0${digest("a")}`);
        assert.match(down.refusal ?? "", /^gitlab\.image: refusing to downgrade the target stack from GitLab 18\.4\.1-ce\.0 to 18\.3\.2-ce\.0/);
        assert.deepEqual(checkGitlabUpgrade(`gitlab/gitlab-ce:18.4.1-ce.0${digest("a")}`, `gitlab/gitlab-ce:18.4.1-ce.0${digest("b")}`), { warnings: [] }, "same release, rebuilt");
        const blind = checkGitlabUpgrade("gitlab/gitlab-ce:18.4.1-ce.0", `gitlab/gitlab-ce${digest("c")}`, "Pulumi.prod.yaml");
        assert.match(blind.refusal ?? "", /^gitlab\.image: cannot read a GitLab release from "gitlab\/gitlab-ce@sha256:c+" \(the source\), so a downgrade cannot be ruled out: give gitlab\.image with its release tag/);
        // Through the command: exit 1, nothing written.
        const dir = stacks({ staging: s => s.replace(/gitlab\/gitlab-ce:[0-9.]+-ce\.0/, `gitlab/gitlab-ce:18.3.2-ce.0${digest("d")}`) });
        const r = await run(dir, "staging", "prod", "--write");
        assert.equal(r.code, 1);
        assert.match(r.err, /^error: gitlab\.image: refusing to downgrade Pulumi\.prod\.yaml from GitLab 18\.4\.1-ce\.0 to 18\.3\.2-ce\.0/);
        assert.equal(prodFile(dir), realProd);
    });

    it("lists the documented 16.x, 17.x and 18.x stops", () => {
        const listed = GITLAB_REQUIRED_UPGRADE_STOPS.filter(s => !s.onlyFor).map(s => `${s.major}.${s.minor}`);
        for (const v of ["16.3", "16.7", "16.11", "17.3", "17.5", "17.8", "17.11", "18.2", "18.5", "18.8", "18.11"]) assert.ok(listed.includes(v), v);
    });

    it("finds the stops strictly between the running and the next release", () => {
        const v = (t: string) => gitlabVersion(`gitlab/gitlab-ce:${t}-ce.0`)!;
        assert.deepEqual(skippedUpgradeStops(v("16.11.10"), v("17.4.0")).map(s => `${s.major}.${s.minor}`), ["17.1", "17.3"]);
        assert.deepEqual(skippedUpgradeStops(v("18.2.0"), v("18.5.3")), [], "from one stop to the next");
        assert.deepEqual(skippedUpgradeStops(v("18.4.1"), v("18.4.9")), []);
        assert.equal(checkGitlabUpgrade("gitlab/gitlab-ce:17.11.2-ce.0", "gitlab/gitlab-ce:18.4.1-ce.0").warnings.length, 1, "17.11 -> 18.4 skips 18.2");
        assert.match(checkGitlabUpgrade("gitlab/gitlab-ce:18.4.1-ce.0", "gitlab/gitlab-ce:17.11.2-ce.0").refusal ?? "", /refusing to downgrade/);
    });
});

describe("promotion from dev", () => {
    it("carries none of dev's paths or ports into staging, and leaves its inventory alone", () => {
        const dev = fs.readFileSync(path.join(root, "Pulumi.dev.yaml"), "utf8");
        const r = promoteStackFile(dev, realStaging, { from: "dev", to: "staging" });
        const configOf = (text: string) => (parseDocument(text).toJS() as { config: Record<string, Record<string, unknown>> }).config;
        const promoted = configOf(r.text);
        const gitlab = promoted["gitlab-cluster:gitlab"]!;
        const lb = promoted["gitlab-cluster:loadBalancer"] ?? {};
        assert.notEqual(gitlab.dataRoot, "/srv/gitlab-dev");
        assert.notEqual(gitlab.nodeSshPort, 2224);
        assert.notEqual(lb.httpPort, 8080);
        assert.notEqual(lb.listenAddress, "172.17.0.1");
        assert.deepEqual(promoted["gitlab-cluster:hosts"], configOf(realStaging)["gitlab-cluster:hosts"]);
    });
});

/** A scratch directory with copies of all three real stack files. */
function allStacks(): string {
    const dir = tempDir("promote-all");
    for (const s of ["dev", "staging", "prod"]) fs.copyFileSync(path.join(root, `Pulumi.${s}.yaml`), path.join(dir, `Pulumi.${s}.yaml`));
    return dir;
}

describe("promotion never resets a target's own tuning silently (issue 16, item 2)", () => {
    it("dev -> staging lists each setting only staging has with the value it would fall back to, and refuses without --allow-reset", async () => {
        const dir = allStacks();
        const before = fs.readFileSync(path.join(dir, "Pulumi.staging.yaml"), "utf8");
        const r = await run(dir, "dev", "staging", "--write");
        assert.equal(r.code, 1, r.err);
        assert.equal(fs.readFileSync(path.join(dir, "Pulumi.staging.yaml"), "utf8"), before, "nothing written");
        assert.match(r.out, /^ {2}gitlab\.readinessTimeoutSeconds: 1800 → 1200 \(the default\) \[reset: only the target sets it, Pulumi\.dev\.yaml does not\]$/m);
        assert.match(r.out, /^ {2}backup\.keepDays: 14 → 7 \(the default\)/m);
        assert.match(r.out, /^ {2}gitlab\.rails: \{"time_zone":"UTC"\} → \{\} \(the default\)/m);
        assert.match(r.out, /^ {2}postgres\.image: "postgres:16\.15-bookworm" → "postgres:[^"]+" \(the default\)/m);
        assert.match(r.err, /would be reset to the default .*--allow-reset; nothing was written/);
        assert.match(r.out, /^ {2}postgres\.image: .*no longer pinned: it follows the program's default from now on\]$/m);
        assert.doesNotMatch(r.out, /^ {2}backup\.keepDays: .*no longer pinned/m);
    });

    it("with --allow-reset it writes, and every removed line of the diff has a line saying what the value becomes", async () => {
        const dir = allStacks();
        const r = await run(dir, "dev", "staging", "--write", "--allow-reset");
        assert.equal(r.code, 0, r.err);
        const lines = r.out.split("\n").filter(l => l.startsWith("  ") && l.includes(" → "));
        for (const key of ["gitlab.readinessTimeoutSeconds", "gitlab.rails", "backup.keepDays", "backup.schedule", "postgres.image", "redis.image", "loadBalancer.image", "loadBalancer.proxyReadTimeoutSeconds"]) {
            assert.ok(lines.some(l => l.startsWith(`  ${key}: `)), `${key} has a line: ${r.out}`);
        }
    });

    it("a promotion that changes values prints each effective value old → new", async () => {
        const dir = stacks({ staging: setImage("18.5.2-ce.0") });
        const r = await run(dir, "staging", "prod");
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /^ {2}gitlab\.image: "gitlab\/gitlab-ce:18\.4\.1-ce\.0" → "gitlab\/gitlab-ce:18\.5\.2-ce\.0"$/m);
    });

    it("--help states the reset rule and exit codes, and touches nothing", async () => {
        const dir = allStacks();
        const r = await run(dir, "--help");
        assert.equal(r.code, 0);
        assert.match(r.out, /--allow-reset/);
        assert.match(r.out, /Exit codes: 0 .*1 .*2 usage/);
    });
});

describe("the edit of the target produces the planned configuration (issue 16, item 2)", () => {
    it("promotes between every pair of the repository's stack files without an internal error", () => {
        for (const from of ["dev", "staging", "prod"]) {
            for (const to of ["dev", "staging", "prod"]) {
                if (from === to) continue;
                const source = fs.readFileSync(path.join(root, `Pulumi.${from}.yaml`), "utf8"), target = fs.readFileSync(path.join(root, `Pulumi.${to}.yaml`), "utf8");
                try {
                    promoteStackFile(source, target, { from, to });
                } catch (e) {
                    assert.ok(e instanceof PromotionRefused, `${from} -> ${to}: ${String(e)}`);
                }
            }
        }
    });

    it("prod -> dev adds keys to dev's last map and new namespaces after it, each under its own map", () => {
        const dev = fs.readFileSync(path.join(root, "Pulumi.dev.yaml"), "utf8");
        const r = promoteStackFile(realProd, dev, { from: "prod", to: "dev" });
        const config = (parseDocument(r.text).toJS() as { config: Record<string, Record<string, unknown>> }).config;
        assert.equal(config["gitlab-cluster:loadBalancer"]!.image, "nginx:1.30.4-trixie");
        assert.equal(config["gitlab-cluster:backup"]!.keepDays, 14);
        assert.equal(config["gitlab-cluster:backup"]!.image, undefined);
    });

    it("staging -> prod with a new key in the last nested map and a new sibling map after it", async () => {
        const dir = stacks({
            staging: s => s.replace("        gitlab_email_from: gitlab@example.com\n", "        gitlab_email_from: gitlab@example.com\n        smtp_tls: false\n      registry:\n        enable: true\n"),
        });
        const r = await run(dir, "staging", "prod", "--write");
        assert.equal(r.code, 0, r.err);
        const gitlab = (parseDocument(prodFile(dir)).toJS() as { config: Record<string, { omnibus: Record<string, Record<string, unknown>> }> }).config["gitlab-cluster:gitlab"]!;
        assert.equal(gitlab.omnibus.gitlab_rails!.smtp_tls, false);
        assert.deepEqual(gitlab.omnibus.registry, { enable: true });
    });
});
