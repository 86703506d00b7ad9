// TLS material and a served nginx for the balancer tests: real keys from openssl, the nginx
// installed here, on 127.0.0.1 and ports above 1024, stopped by the test (and by `timeout`
// should the test process die).
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { waitForPort } from "./net";
import * as path from "node:path";
import { tempDir } from "./readers";

export interface Pair { readonly certificatePath: string; readonly keyPath: string; readonly certificate: string; readonly key: string }

/** A fresh self-signed certificate for `cn` (also its subjectAltName) and its unencrypted key. */
export function selfSignedPair(cn: string, keyType: "rsa" | "ec" = "rsa"): Pair {
    const dir = tempDir("pair");
    const keyPath = path.join(dir, "key.pem");
    const certificatePath = path.join(dir, "cert.pem");
    const newkey = keyType === "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    execFileSync("openssl", ["req", "-x509", ...newkey, "-nodes", "-days", "2", "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn}`,
        "-keyout", keyPath, "-out", certificatePath], { stdio: "ignore" });
    return { certificatePath, keyPath, certificate: fs.readFileSync(certificatePath, "utf8"), key: fs.readFileSync(keyPath, "utf8") };
}

/** The local nginx's version (`nginx -v` prints `nginx version: nginx/1.22.1` on stderr). */
export function localNginxVersion(): string {
    const r = spawnSync("nginx", ["-v"], { encoding: "utf8" });
    const v = /nginx\/(\d+\.\d+\.\d+)/.exec(`${r.stderr}${r.stdout}`)?.[1];
    if (!v) throw new Error(`cannot tell the nginx version from: ${r.stderr}`);
    return v;
}



export interface ServedNginx {
    readonly prefix: string;
    readonly confPath: string;
    /** nginx's log (stdout and stderr). */
    readonly log: () => string;
    /** `nginx -s reload` with this instance's prefix and config. */
    readonly reloadArgs: readonly string[];
    readonly stop: () => Promise<void>;
}

/**
 * Serves `conf` with the local nginx in the foreground, under `timeout` so that it stops by
 * itself after `maxSeconds` whatever happens to the test; resolves once `port` accepts.
 */
export async function serveNginx(conf: string, port: number, maxSeconds = 120): Promise<ServedNginx> {
    const prefix = tempDir("nginx-serve");
    fs.chmodSync(prefix, 0o755);
    const confPath = path.join(prefix, "nginx.conf");
    fs.writeFileSync(confPath, conf);
    const logPath = path.join(prefix, "nginx.log");
    const fd = fs.openSync(logPath, "w");
    const child: ChildProcess = spawn("timeout", [String(maxSeconds), "nginx", "-p", prefix, "-c", confPath, "-g", "daemon off;"], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    const exited = new Promise<void>(resolve => child.once("exit", () => resolve()));
    const log = () => fs.readFileSync(logPath, "utf8");
    try {
        await Promise.race([waitForPort(port, 10_000), exited.then(() => { throw new Error(`nginx exited: ${log()}`); })]);
    } catch (err) {
        child.kill("SIGTERM");
        throw err;
    }
    return {
        prefix, confPath, log,
        reloadArgs: ["-p", prefix, "-c", confPath, "-s", "reload"],
        stop: async () => { if (child.exitCode === null) { child.kill("SIGTERM"); await exited; } },
    };
}
