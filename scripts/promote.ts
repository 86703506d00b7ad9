// npm run promote -- <from> <to> [--write] [--allow-reset]
// Copies the promotable settings (images, versions, GitLab and tier settings) from
// Pulumi.<from>.yaml to Pulumi.<to>.yaml, prints each effective value old → new and the unified
// diff; writes the file only with --write, and resets a target-only setting to its default only
// with --allow-reset. Never touches hosts, roles, ssh, secrets or other namespaces.
// The logic is in promotePlan.ts (what moves), promoteUpgrade.ts (what is refused or warned about)
// and promoteFile.ts (the edit of the target file); promoteDiff.ts shows it. This is the shell.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { runMain } from "./cli";
import { unifiedDiff } from "./promoteDiff";
import { promoteStackFile } from "./promoteFile";
import { describeChange, resets } from "./promotePlan";

const USAGE = "usage: npm run promote -- <from> <to> [--write] [--allow-reset]\n\n" +
    "Makes the promotable settings of Pulumi.<to>.yaml (images, versions, GitLab and tier settings; never hosts, roles,\n" +
    "ssh, per-stack paths, ports, URLs, TLS, backup hosts or encrypted values) equal to those of Pulumi.<from>.yaml.\n" +
    "Prints each effective value old → new, then the diff of Pulumi.<to>.yaml. Nothing is written without --write.\n\n" +
    "A setting only Pulumi.<to>.yaml sets (a tuned timeout, keepDays, a rails setting, a pinned image) would be removed\n" +
    "and fall back to its default: each such line says so and shows the default, and the promotion is refused unless\n" +
    "--allow-reset is given (or set the value in Pulumi.<from>.yaml first).\n\n" +
    "Refuses a GitLab downgrade, or a gitlab.image whose release it cannot read (a digest without its tag); warns when\n" +
    "an upgrade skips a required stop.\n\n" +
    "Exit codes: 0 done (or nothing to do), 1 refused (downgrade, reset without --allow-reset) or failed, 2 usage.";

/** The CLI; returns the exit code. `root` holds the stack files (the project's directory). */
export async function main(
    argv: readonly string[], root = path.resolve(__dirname, "..", ".."),
    out: (s: string) => void = s => process.stdout.write(s), err: (s: string) => void = s => process.stderr.write(s),
): Promise<number> {
    let parsed;
    try {
        parsed = parseArgs({ args: [...argv], allowPositionals: true, options: { write: { type: "boolean" }, "allow-reset": { type: "boolean" }, help: { type: "boolean", short: "h" } } });
    } catch (e) {
        err(`error: ${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
        return 2;
    }
    const { values, positionals } = parsed;
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
        out(`Pulumi.${to}.yaml, effective values (old → new):\n`);
        for (const c of promotion.changes) out(`  ${describeChange(c, `Pulumi.${from}.yaml`)}\n`);
        out(unifiedDiff(before, promotion.text, `a/Pulumi.${to}.yaml`, `b/Pulumi.${to}.yaml`));
        const reset = resets(promotion.changes);
        if (reset.length > 0 && values["allow-reset"] !== true) {
            err(`error: ${reset.length} setting${reset.length > 1 ? "s" : ""} only Pulumi.${to}.yaml sets would be reset to the default (${reset.map(c => c.path).join(", ")}): ` +
                `set ${reset.length > 1 ? "them" : "it"} in Pulumi.${from}.yaml too, or add --allow-reset; nothing was written\n`);
            return 1;
        }
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

runMain(module, main);
