// Issue 16, item 11: promotion refuses a PostgreSQL major change between stacks; the data must be
// upgraded first (README, "Upgrading PostgreSQL to a new major version").
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { promoteStackFile, PromotionRefused } from "../../scripts/promoteFile";
import { checkPostgresMajor } from "../../scripts/promoteUpgrade";

const root = path.resolve(__dirname, "..", "..", "..");
const staging = fs.readFileSync(path.join(root, "Pulumi.staging.yaml"), "utf8");
const prod = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
const setPostgres = (image: string) => (s: string) => s.replace(/postgres:\d+\.\d+-bookworm/, image);

describe("promotion and PostgreSQL majors (issue 16, item 11)", () => {
    it("refuses a major change, naming both images and the runbook", () => {
        assert.throws(() => promoteStackFile(setPostgres("postgres:17.6-bookworm")(staging), prod, { from: "Pulumi.staging.yaml", to: "Pulumi.prod.yaml" }), (e: unknown) => {
            assert.ok(e instanceof PromotionRefused);
            assert.match(e.message, /^postgres\.image: refusing to move Pulumi\.prod\.yaml from PostgreSQL 16 \(postgres:16\.\d+-bookworm\) to 17 \(postgres:17\.6-bookworm\): .*Upgrading PostgreSQL to a new major version/);
            return true;
        });
    });

    it("lets a minor release through, and compares a stack without postgres.image as the default image", () => {
        assert.doesNotThrow(() => promoteStackFile(setPostgres("postgres:16.99-bookworm")(staging), prod));
        assert.equal(checkPostgresMajor("postgres:16.15-bookworm", "postgres:16.16-bookworm"), undefined);
        assert.match(checkPostgresMajor("postgres:17.6-bookworm", "postgres:16.15-bookworm") ?? "", /from PostgreSQL 17 .* to 16 /);
        assert.equal(checkPostgresMajor(`postgres@sha256:${"a".repeat(64)}`, "postgres:17.6-bookworm"), undefined, "a digest alone says no version: the data host's check still runs");
        const noImage = prod.replace(/ {2}gitlab-cluster:postgres:\n {4}image: [^\n]*\n/, "");
        assert.notEqual(noImage, prod);
        assert.throws(() => promoteStackFile(setPostgres("postgres:17.6-bookworm")(staging), noImage), PromotionRefused);
    });
});
