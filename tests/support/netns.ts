// Machines made of network namespaces for tests that send real packets: veth links between them,
// commands and servers run inside them, and a teardown that leaves nothing behind. Needs root,
// `ip` and iptables; nothing leaves the namespaces, and every wait is bounded.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";

export interface ShResult { status: number | null; stdout: string; stderr: string }

export function sh(script: string): ShResult {
    const r = spawnSync("sh", ["-c", script], { encoding: "utf8", timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function inNs(name: string, script: string): ShResult {
    return sh(`ip netns exec ${name} sh -c '${script.replace(/'/g, `'\\''`)}'`);
}

/** Runs `script` in namespace `name` and fails the test unless it exits 0; returns its stdout. */
export function must(name: string, script: string): string {
    const r = inNs(name, script);
    assert.equal(r.status, 0, `in ${name}: ${script}\n${r.stderr}`);
    return r.stdout;
}

/**
 * The `skip` option for tests that need namespaces with iptables: false where they work; a reason
 * where they do not, except on CI (root, iptables installed), where a skipped packet test would be
 * a false green.
 */
export function netnsSkip(probe: string): false | string {
    const r = sh(`ip netns add ${probe} && ip netns exec ${probe} iptables -S >/dev/null && ip netns exec ${probe} ip6tables -S >/dev/null; s=$?; ip netns del ${probe} 2>/dev/null; exit $s`);
    if (r.status === 0) return false;
    return process.env.CI === "true" ? false : "network namespaces with iptables are not available here";
}

let linkCount = 0;

/** Namespaces standing for machines, and the processes started in them. */
export class NetnsLab {
    private readonly children: ChildProcess[] = [];

    constructor(readonly namespaces: readonly string[]) {}

    /** Removes what a previous run may have left, then creates every namespace. */
    async create(): Promise<void> {
        await this.teardown();
        for (const n of this.namespaces) assert.equal(sh(`ip netns add ${n}`).status, 0, `ip netns add ${n}`);
    }

    /** Two machines joined by a veth pair, each end renamed inside its namespace. */
    link(a: string, aName: string, b: string, bName: string): void {
        // Interface names have at most 15 characters; these live only until the move below.
        const tag = `${process.pid % 10000}${(linkCount++).toString(36)}`;
        const r = sh(`ip link add gfa${tag} type veth peer name gfb${tag} && ip link set gfa${tag} netns ${a} name ${aName} && ip link set gfb${tag} netns ${b} name ${bName}`);
        assert.equal(r.status, 0, r.stderr);
    }

    /** Starts `command` in namespace `name` (`ip netns exec` becomes the command); stopped by `teardown`. */
    spawn(name: string, command: readonly string[], stdio: StdioOptions = ["pipe", "pipe", "inherit"]): ChildProcess {
        const child = spawn("ip", ["netns", "exec", name, ...command], { stdio });
        this.children.push(child);
        return child;
    }

    /** Runs a node.js `program` (with `args`) in namespace `name`; resolves once it prints "listening". */
    async serve(name: string, program: string, args: readonly string[] = []): Promise<ChildProcess> {
        const child = this.spawn(name, [process.execPath, "-e", program, ...args]);
        await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`server in ${name} did not start`)), 10_000);
            child.stdout!.on("data", d => { if (String(d).includes("listening")) { clearTimeout(timer); resolve(); } });
            child.once("exit", code => { clearTimeout(timer); reject(new Error(`server in ${name} exited (${code})`)); });
        });
        return child;
    }

    /**
     * Stops every process started here (SIGTERM, which `timeout` passes on and nginx needs to take
     * its workers along; SIGKILL after 5 s), then deletes the namespaces.
     */
    async teardown(): Promise<void> {
        const running = this.children.splice(0).filter(c => c.exitCode === null && c.signalCode === null);
        await Promise.all(running.map(c => new Promise<void>(resolve => {
            const kill = setTimeout(() => c.kill("SIGKILL"), 5000);
            c.once("exit", () => { clearTimeout(kill); resolve(); });
            c.kill("SIGTERM");
        })));
        for (const n of this.namespaces) sh(`ip netns del ${n} 2>/dev/null`);
    }
}
