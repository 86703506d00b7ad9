// npm run promote -- <from> <to> [--write]
// Copies the promotable settings (images, versions, GitLab and tier settings) from
// Pulumi.<from>.yaml to Pulumi.<to>.yaml and prints the change as a unified diff; writes the
// file only with --write. Never touches hosts, roles, ssh, secrets or other namespaces.
// The logic is in promotePlan.ts; this is the shell around it.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { unifiedDiff } from "./promoteDiff";
import { promoteStackFile } from "./promotePlan";

const USAGE = "usage: npm run promote -- <from> <to> [--write]\n\n" +
    "Copies images, versions and tier settings from Pulumi.<from>.yaml to Pulumi.<to>.yaml and prints the diff.\n" +
    "Nothing is written without --write. Refuses a GitLab downgrade, or a gitlab.image whose release it cannot read\n" +
    "(a digest without its tag); warns when an upgrade skips a required stop.\n\nExit codes: 0 done, 1 refused or failed, 2 usage.";

/** Runs the CLI; returns the exit code. `root` holds the stack files. */
export function runPromote(argv: readonly string[], root: string, out: (s: string) => void = s => process.stdout.write(s), err: (s: string) => void = s => process.stderr.write(s)): number {
    const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { write: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
    if (values.help) {
        out(`${USAGE}\n`);
        return 0;
    }
    const [from, to] = positionals;
    if (positionals.length !== 2 || from === undefined || to === undefined || from === to || ![from, to].every(s => /^[A-Za-z0-9_.-]+$/.test(s))) {
        err(`${USAGE}\n`);
        return 2;
    }
    const fromFile = path.join(root, `Pulumi.${from}.yaml`), toFile = path.join(root, `Pulumi.${to}.yaml`);
    for (const f of [fromFile, toFile]) {
        if (!fs.existsSync(f)) {
            err(`error: ${path.basename(f)} does not exist\n`);
            return 1;
        }
    }
    const before = fs.readFileSync(toFile, "utf8");
    try {
        const promotion = promoteStackFile(fs.readFileSync(fromFile, "utf8"), before, { from: `Pulumi.${from}.yaml`, to: `Pulumi.${to}.yaml` });
        for (const w of promotion.warnings) err(`warning: ${w}\n`);
        for (const k of promotion.skippedSecure) err(`note: ${k} holds an encrypted value; not promoted (set it with pulumi config set --secret --stack ${to})\n`);
        if (promotion.changes.length === 0) {
            out(`Pulumi.${to}.yaml already has the promotable settings of Pulumi.${from}.yaml\n`);
            return 0;
        }
        out(unifiedDiff(before, promotion.text, `a/Pulumi.${to}.yaml`, `b/Pulumi.${to}.yaml`));
        if (values.write) {
            fs.writeFileSync(toFile, promotion.text);
            out(`wrote Pulumi.${to}.yaml (${promotion.changes.length} change${promotion.changes.length > 1 ? "s" : ""})\n`);
        } else {
            out(`(dry run: add --write to update Pulumi.${to}.yaml)\n`);
        }
        return 0;
    } catch (e) {
        // A refused downgrade, or a stack file that cannot be read: say why, change nothing.
        err(`error: ${e instanceof Error ? e.message : String(e)}\n`);
        return 1;
    }
}

if (require.main === module) {
    process.exitCode = runPromote(process.argv.slice(2), path.resolve(__dirname, "..", ".."));
}
