// The one shape of the command-line tools in scripts/ (render, ops, promote, bench). Each module:
//   - exports `async function main(argv: readonly string[]): Promise<number>`, the exit code
//     (tests call it with more arguments: a runner, a log, a directory; each has a default);
//   - has a USAGE text that `--help` prints on stdout (exit 0) with no other effect, and that a
//     usage error prints on stderr (exit 2);
//   - runs nothing on import, and ends with `runMain(module, main)`.
// runMain runs main only when the module is the program node started, and turns what it throws
// into an exit code: a CliError its message and code, a ConfigError its message and 1, anything
// else its stack and 1.
import { ConfigError } from "../components/config";

/** A failure the user can act on: its message is printed as `error: <message>`, without a stack. */
export class CliError extends Error {
    constructor(message: string, readonly exitCode: number) {
        super(message);
        this.name = "CliError";
    }
}

/** What a command-line tool's module exports. */
export type Main = (argv: readonly string[]) => Promise<number>;

let stdoutClosed = false;

/**
 * Prints a line on stdout, or on stderr once stdout is closed (`npm run ops -- restore ... | head`):
 * the run goes on, and its last lines (the cluster's state) are still seen.
 */
export function printLine(line: string): void {
    if (stdoutClosed) process.stderr.write(`${line}\n`);
    else process.stdout.write(`${line}\n`);
}

/** Ends the process once stdout has taken what was written to it; an open handle cannot keep it alive. */
function exit(code: number): void {
    process.exitCode = code;
    process.stdout.write("", () => process.exit(code));
}

/** Runs `main` with the command line when `mod` is the module node was started with; else does nothing. */
export function runMain(mod: NodeModule, main: Main): void {
    if (require.main !== mod) return;
    // A reader that stops early (`| head`) must not kill a run half way with EPIPE.
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code !== "EPIPE") throw e;
        stdoutClosed = true;
    });
    main(process.argv.slice(2)).then(exit, (err: unknown) => {
        if (err instanceof CliError || err instanceof ConfigError) {
            console.error(`error: ${err.message}`);
            exit(err instanceof CliError ? err.exitCode : 1);
            return;
        }
        console.error(err);
        exit(1);
    });
}
