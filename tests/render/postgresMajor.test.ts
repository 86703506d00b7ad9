// Issue 16, item 11: a PostgreSQL major change (postgres.image 16 -> 17) on an existing volume
// cannot start. The check runs before the container is (re)created; here it runs for real under
// sh against a data directory with a PG_VERSION file, through a docker stand-in that maps the
// volume to that directory and runs `cat` for real (the image is not needed for reading a file).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { POSTGRES_UPGRADE_RUNBOOK, postgresMajorCheckScript } from "../../components/render/postgres";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { dependsOn } from "../support/graph";
import { shellcheck, shSyntax, tempDir } from "../support/readers";

/**
 * A `docker` on PATH: `volume inspect V` succeeds when V's directory exists; `run --entrypoint cat
 * -v V:/d:ro IMAGE /d/F` reads it for real; `run --entrypoint postgres IMAGE --version` answers as
 * the official image's server does, for the version in $IMAGE_PG_VERSION. Calls are logged.
 */
function dockerStandIn(volumesDir: string): string {
    const bin = tempDir("pg-major-bin");
    fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh
echo "$*" >> "${volumesDir}/calls.log"
case "$1 $2" in
"volume inspect") [ -d "${volumesDir}/$3" ]; exit $? ;;
esac
if [ "$1" = run ]; then
    volume=""; file=""; entrypoint=""
    while [ $# -gt 0 ]; do
        case "$1" in
        -v) volume=\${2%%:*}; shift ;;
        --entrypoint) entrypoint=$2; shift ;;
        /d/*) file=\${1#/d/} ;;
        esac
        shift
    done
    if [ "$entrypoint" = postgres ]; then echo "postgres (PostgreSQL) $IMAGE_PG_VERSION (Debian $IMAGE_PG_VERSION-1.pgdg120+1)"; exit 0; fi
    exec cat "${volumesDir}/$volume/$file"
fi
exit 2
`, { mode: 0o755 });
    return bin;
}

/** Runs the check with the image's server at `imageVersion`. */
function runCheck(script: string, volumesDir: string, imageVersion: string) {
    const bin = dockerStandIn(volumesDir);
    return spawnSync("sh", ["-c", script], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, IMAGE_PG_VERSION: imageVersion } });
}

const INPUT = { volume: "gitlab-postgres-data", image: "postgres:17.6-bookworm" };

describe("PostgreSQL major version check (issue 16, item 11)", () => {
    it("sh -n and shellcheck accept it", () => {
        const script = postgresMajorCheckScript(INPUT);
        assert.equal(shSyntax(script).status, 0, shSyntax(script).stderr);
        const lint = shellcheck(script);
        assert.equal(lint.status, 0, lint.stdout);
    });

    it("refuses PostgreSQL 17 on a data directory written by 16, pointing to the runbook", () => {
        const volumes = tempDir("pg-major-volumes");
        fs.mkdirSync(path.join(volumes, INPUT.volume));
        fs.writeFileSync(path.join(volumes, INPUT.volume, "PG_VERSION"), "16\n");
        const r = runCheck(postgresMajorCheckScript(INPUT), volumes, "17.6");
        assert.equal(r.status, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /the PostgreSQL data on volume gitlab-postgres-data was written by PostgreSQL 16 \(its PG_VERSION\), and postgres\.image \(postgres:17\.6-bookworm\) runs PostgreSQL 17, which cannot start on it/);
        assert.match(r.stderr, /Set postgres\.image back to a PostgreSQL 16 release, or move the data to PostgreSQL 17 first \(dump and restore, or pg_upgrade\)/);
        assert.ok(r.stderr.includes(POSTGRES_UPGRADE_RUNBOOK), r.stderr);
        assert.match(fs.readFileSync(path.join(volumes, "calls.log"), "utf8"), /run --rm --network none --entrypoint cat -v gitlab-postgres-data:\/d:ro postgres:17\.6-bookworm \/d\/PG_VERSION/);
    });

    it("refuses a downgrade as well, and passes the same major, a new volume and an uninitialised one", () => {
        const volumes = tempDir("pg-major-volumes");
        fs.mkdirSync(path.join(volumes, INPUT.volume));
        fs.writeFileSync(path.join(volumes, INPUT.volume, "PG_VERSION"), "17\n");
        assert.equal(runCheck(postgresMajorCheckScript({ ...INPUT, image: "postgres:16.15-bookworm" }), volumes, "16.15").status, 1);
        const same = runCheck(postgresMajorCheckScript(INPUT), volumes, "17.6");
        assert.equal(same.status, 0, same.stderr);
        assert.match(same.stdout, /PostgreSQL 17 data, image PostgreSQL 17: same major/);
        const fresh = runCheck(postgresMajorCheckScript({ ...INPUT, volume: "other-data" }), volumes, "17.6");
        assert.equal(fresh.status, 0, fresh.stderr);
        assert.match(fresh.stdout, /does not exist yet/);
        fs.mkdirSync(path.join(volumes, "empty-data"));
        const empty = runCheck(postgresMajorCheckScript({ ...INPUT, volume: "empty-data" }), volumes, "17.6");
        assert.equal(empty.status, 0, empty.stderr);
        assert.match(empty.stdout, /no PG_VERSION/);
    });

    it("reads the major from the image's server, not its tag: a digest, a pre-10 major, an unreadable version", () => {
        const volumes = tempDir("pg-major-volumes");
        fs.mkdirSync(path.join(volumes, INPUT.volume));
        fs.writeFileSync(path.join(volumes, INPUT.volume, "PG_VERSION"), "16\n");
        const digest = { ...INPUT, image: `postgres@sha256:${"a".repeat(64)}` };
        assert.equal(runCheck(postgresMajorCheckScript(digest), volumes, "16.15").status, 0);
        assert.match(runCheck(postgresMajorCheckScript(digest), volumes, "17.6").stderr, /runs PostgreSQL 17, which cannot start on it/);
        fs.writeFileSync(path.join(volumes, INPUT.volume, "PG_VERSION"), "9.6\n");
        assert.equal(runCheck(postgresMajorCheckScript(INPUT), volumes, "9.6.24").status, 0, "9.6.24 is major 9.6");
        const unreadable = runCheck(postgresMajorCheckScript(INPUT), volumes, "");
        assert.equal(unreadable.status, 1);
        assert.match(unreadable.stderr, /cannot read PostgreSQL's version from postgres:17\.6-bookworm/);
    });

    it("runs on the data host before the PostgreSQL container, again when the image changes", async () => {
        process.env.GITLAB_CLUSTER_KEY_DIR ??= tempDir("pg-major-keys");
        const raw = threeNodeConfig();
        raw.postgres = { image: "postgres:17.6-bookworm" };
        const e = await evaluate(raw);
        const check = e.byName("gitlab-postgres-major-check");
        assert.equal(check.inputs.create, postgresMajorCheckScript({ volume: "gitlab-postgres-data", image: "postgres:17.6-bookworm" }));
        assert.deepEqual(check.inputs.triggers, ["postgres:17.6-bookworm"]);
        assert.ok(dependsOn(e, e.byName("gitlab-postgres"), check), "the container waits for the check");
        assert.ok(dependsOn(e, check, e.byName("gitlab-postgres-image")), "the check runs the pulled image");
    });
});
