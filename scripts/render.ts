// npm run render -- --stack <name> [--out DIR]
// Evaluates the program for Pulumi.<name>.yaml under mocks (no Pulumi CLI, no hosts touched)
// and writes every file it would push, per host, under out/<name>/ for review.
import * as path from "node:path";
import { parseArgs } from "node:util";
import { runMain } from "./cli";
import { evaluate } from "./evaluate";
import { readStackFile, renderTree, writeTree } from "./renderStack";

const USAGE = "usage: npm run render -- --stack <name> [--out DIR]\n\nWrites what the program would push to each host under out/<name>/ (secrets appear as placeholders).\n\n" +
    "Exit codes: 0 written, 1 the stack's configuration is invalid or unreadable, 2 usage.";

/** The CLI; returns the exit code. An invalid stack file throws ConfigError (exit 1). */
export async function main(argv: readonly string[]): Promise<number> {
    let values: { stack?: string; out?: string; help?: boolean };
    try {
        ({ values } = parseArgs({ args: [...argv], options: { stack: { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } } }));
    } catch (e) {
        console.error(`error: ${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
        return 2;
    }
    if (values.help || values.stack === undefined) {
        (values.help ? console.log : console.error)(USAGE);
        return values.help ? 0 : 2;
    }
    const root = path.resolve(__dirname, "..", "..");
    const stackFile = path.join(root, `Pulumi.${values.stack}.yaml`);
    const stack = readStackFile(stackFile);
    const evaluation = await evaluate(stack.config, {
        stack: values.stack,
        secretKeys: stack.secretKeys,
        // Generated passwords are shown by name: the real ones exist only in the stack's state.
        passwordFor: name => `[generated ${name}]`,
    });
    const out = path.resolve(values.out ?? path.join(root, "out", values.stack));
    const files = renderTree(evaluation);
    writeTree(out, files);
    console.log(`wrote ${files.size} files for stack ${values.stack} under ${path.relative(process.cwd(), out) || "."}`);
    return 0;
}

runMain(module, main);
