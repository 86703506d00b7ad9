// The upgrade scripts, run by sh against a fake `docker` that plays the deploy node's container:
// what the preflight lets through and what it refuses, and that a refusal says what to do.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { gitlabRelease } from "../../components/config";
import { GITLAB_VERSION_FILE, postDeployMigrationsScript, upgradePreflightScript } from "../../components/render/upgrade";
import { GITLAB_REQUIRED_UPGRADE_STOPS, UPGRADE_PATH_DOCS } from "../../components/upgradePath";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

const CONTAINER = "gitlab-gitlab-app1";

function preflight(image: string): string {
    return upgradePreflightScript({ container: CONTAINER, target: gitlabRelease(image)!, stops: GITLAB_REQUIRED_UPGRADE_STOPS, upgradePathDocs: UPGRADE_PATH_DOCS });
}

interface FakeNode {
    /** No container at all (a first deploy). */
    readonly absent?: boolean;
    readonly running?: boolean;
    /** What VERSION holds. */
    readonly version?: string;
    /** What `gitlab-rake gitlab:background_migrations:status` prints. */
    readonly status?: string;
}

const FINISHED = "Database: main\nstatus     | migration\nfinished   | CopyColumnUsingBackgroundMigrationJob,events,id,[]\nfinalized  | BackfillProjectNamespaces,projects,id,[]\n";

/** Runs `script` with a fake docker on PATH; returns its result and the docker calls it made. */
function runWithFakeDocker(script: string, node: FakeNode): { status: number | null; stdout: string; stderr: string; calls: string[] } {
    const dir = tempDir("fake-docker");
    const log = path.join(dir, "calls");
    fs.writeFileSync(path.join(dir, "status"), node.status ?? FINISHED);
    fs.writeFileSync(path.join(dir, "docker"), `#!/bin/sh
echo "$*" >> ${log}
case "$1 $2" in
    "inspect -f") echo ${node.running === false ? "false" : "true"}; exit 0 ;;
    "inspect ${CONTAINER}") exit ${node.absent ? 1 : 0} ;;
esac
if [ "$1" = exec ] && [ "$3 $4" = "cat ${GITLAB_VERSION_FILE}" ]; then echo ${node.version ?? "18.4.1"}; exit 0; fi
if [ "$1" = exec ] && [ "$3 $4" = "gitlab-rake gitlab:background_migrations:status" ]; then cat ${path.join(dir, "status")}; exit 0; fi
if [ "$1" = exec ]; then exit 0; fi
echo "fake docker: unexpected $*" >&2; exit 2
`, { mode: 0o755 });
    const r = spawnSync("sh", ["-c", script], { encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls };
}

describe("upgrade scripts", () => {
    it("pass sh -n and shellcheck", () => {
        for (const script of [preflight("gitlab/gitlab-ce:18.5.0-ce.0"), preflight("gitlab/gitlab-ee:19.0.0-ee.0"), postDeployMigrationsScript(CONTAINER, "18.5.0-ce.0")]) {
            assert.equal(shSyntax(script).status, 0, shSyntax(script).stderr);
            const sc = shellcheck(script);
            assert.equal(sc.status, 0, sc.stdout);
        }
    });

    describe("preflight", () => {
        it("passes a first deploy (no deploy node container) without touching anything", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.5.0-ce.0"), { absent: true });
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stdout, /a first deploy, nothing to check/);
            assert.deepEqual(r.calls, [`inspect ${CONTAINER}`]);
        });

        it("passes the same release again (a new build or digest) without reading background migrations", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.4.1-ce.1"), { version: "18.4.1" });
            assert.equal(r.status, 0, r.stderr);
            assert.ok(!r.calls.some(c => c.includes("background_migrations")));
        });

        it("passes the next minor with every batched background migration finished, after reading them", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.5.0-ce.0"), { version: "18.4.1" });
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stdout, /GitLab 18\.4\.1 to 18\.5\.0: no stop skipped, background migrations finished/);
            assert.ok(r.calls.includes(`exec ${CONTAINER} gitlab-rake gitlab:background_migrations:status`), r.calls.join("\n"));
        });

        it("refuses while batched background migrations are unfinished, naming them and what to do", () => {
            const status = `${FINISHED}active     | BackfillIssueSearchData,issues,id,[]\npaused     | Other,notes,id,[]\n`;
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.5.0-ce.0"), { version: "18.4.1", status });
            assert.equal(r.status, 1);
            assert.match(r.stderr, /BackfillIssueSearchData/);
            assert.match(r.stderr, /2 batched background migration\(s\) of GitLab 18\.4\.1 are not finished\. Wait for them/);
            assert.match(r.stderr, /nothing was changed/);
        });

        it("refuses a jump over a required stop, naming the first stop to go to", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.6.0-ce.0"), { version: "18.4.1" });
            assert.equal(r.status, 1);
            assert.match(r.stderr, /GitLab 18\.4\.1 to 18\.6\.0 skips required upgrade stop\(s\) 18\.5: set gitlab\.image to the latest patch of 18\.5 first/);
            assert.ok(!r.calls.some(c => c.includes("background_migrations")), "refused before anything slow");
            const far = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.9.0-ce.0"), { version: "17.11.3" });
            assert.match(far.stderr, /skips required upgrade stop\(s\) 18\.2 18\.5 18\.8: set gitlab\.image to the latest patch of 18\.2 first/);
        });

        it("lets an upgrade from one stop to the next through, warning that it is more than one minor", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.5.2-ce.0"), { version: "18.2.8" });
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stdout, /warning: GitLab 18\.2\.8 to 18\.5\.2 is more than one minor release/);
        });

        it("refuses a downgrade", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.4.0-ce.0"), { version: "18.4.1" });
            assert.equal(r.status, 1);
            assert.match(r.stderr, /GitLab does not support downgrades \(18\.4\.1 to 18\.4\.0/);
        });

        it("refuses when the deploy node is not running or its release cannot be read", () => {
            const stopped = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.5.0-ce.0"), { running: false });
            assert.equal(stopped.status, 1);
            assert.match(stopped.stderr, /is not running.*docker start gitlab-gitlab-app1/);
            const garbled = runWithFakeDocker(preflight("gitlab/gitlab-ce:18.5.0-ce.0"), { version: "18.x" });
            assert.equal(garbled.status, 1);
            assert.match(garbled.stderr, /cannot read the release/);
        });

        it("reads an -ee release file as its version", () => {
            const r = runWithFakeDocker(preflight("gitlab/gitlab-ee:18.5.0-ee.0"), { version: "18.4.1-ee" });
            assert.equal(r.status, 0, r.stderr);
        });
    });

    it("post-deployment migrations run with SKIP_POST_DEPLOYMENT_MIGRATIONS unset for that one command", () => {
        const r = runWithFakeDocker(postDeployMigrationsScript(CONTAINER, "18.5.0-ce.0"), {});
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.calls, [`exec ${CONTAINER} env -u SKIP_POST_DEPLOYMENT_MIGRATIONS gitlab-rake db:migrate`]);
    });
});
