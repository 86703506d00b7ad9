// Runs a step's script on a host: locally for a local host, else with the system ssh client,
// using the same key file and known_hosts file the program writes for the Docker provider.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { sshFilePaths } from "../../components/sshFiles";
import { shellQuote } from "../../components/render/quote";
import type { HostRef, OutputSink, RunResult, Runner } from "./plan";

export class ShellRunner implements Runner {
    constructor(private readonly sshFilesDir: string) {}

    /** The argv that runs `script` on `host`. */
    argv(host: HostRef, script: string): string[] {
        if (host.ssh.local) return ["sh", "-c", script];
        const { key, knownHosts } = sshFilePaths(this.sshFilesDir, host.name);
        const args = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-p", String(host.ssh.port)];
        if (fs.existsSync(key)) args.push("-i", key, "-o", "IdentitiesOnly=yes");
        // As for the Docker provider: a pinned key when the program wrote one, else trust on first use.
        if (fs.existsSync(knownHosts)) args.push("-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`);
        else args.push("-o", "StrictHostKeyChecking=accept-new");
        args.push(`${host.ssh.user}@${host.address}`, `sh -c ${shellQuote(script)}`);
        return args;
    }

    run(host: HostRef, script: string, stdin?: string, onOutput?: OutputSink): Promise<RunResult> {
        const [cmd, ...args] = this.argv(host, script);
        return new Promise((resolve, reject) => {
            const child = spawn(cmd!, args, { stdio: ["pipe", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            child.stdout.setEncoding("utf8");
            child.stderr.setEncoding("utf8");
            child.stdout.on("data", (d: string) => { stdout += d; onOutput?.("stdout", d); });
            child.stderr.on("data", (d: string) => { stderr += d; onOutput?.("stderr", d); });
            // A script that exits before reading its stdin closes the pipe: EPIPE here is not a failure
            // of its own (the exit code says how the script ended), and must not crash the run.
            child.stdin.on("error", () => undefined);
            child.on("error", reject);
            child.on("close", code => {
                const why = !host.ssh.local && code === 255 ? sshFailure(stderr) : undefined;
                resolve({ code: code ?? 1, stdout, stderr, ...(why !== undefined ? { unreachable: why } : {}) });
            });
            child.stdin.end(stdin ?? "");
        });
    }
}

/** ssh exits 255 for its own errors; its message names the cause (refused, timeout, host key, auth). */
export function sshFailure(stderr: string): string | undefined {
    const line = stderr.split("\n").map(l => l.trim()).find(l => /^ssh: |Connection refused|Connection timed out|No route to host|Permission denied|Host key verification failed|Could not resolve|REMOTE HOST IDENTIFICATION HAS CHANGED|Connection closed/i.test(l));
    return line ?? (stderr.trim() === "" ? "ssh exited 255 without a message" : undefined);
}
