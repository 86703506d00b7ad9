// L12 (issue 15), served for real: the rendered nginx.conf run by the nginx installed here on
// 127.0.0.1 (ports above 1024; stopped by the test, and by `timeout` after two minutes whatever
// happens), in front of a small HTTP server standing in for a GitLab node. Unknown names are
// refused, the configured one is served; openssl s_client shows what TLS offers; and the
// program's own TLS rotation commands run against it with a mismatched and a matching pair.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { renderNginxConf } from "../../components/render/nginxConf";
import { evaluate, type Evaluation } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { str } from "../support/graph";
import { nginxModulePreamble, tempDir } from "../support/readers";
import { freePort } from "../support/net";
import { localNginxVersion, selfSignedPair, serveNginx, type Pair, type ServedNginx } from "../support/tls";

process.env.GITLAB_CLUSTER_KEY_DIR = tempDir("serve-keys");
const NAME = "gitlab.example.com";

interface Answer { status?: number; headers?: http.IncomingHttpHeaders; body?: string; error?: string }

function httpGet(port: number, host: string): Promise<Answer> {
    return new Promise(resolve => {
        const req = http.request({ host: "127.0.0.1", port, path: "/some/path?q=1", headers: { Host: host }, timeout: 5000 }, res => {
            let body = "";
            res.on("data", d => { body += d; });
            res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", err => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
        req.end();
    });
}

/** An HTTPS request over a connection whose SNI is `servername` (none when undefined). */
function httpsGet(port: number, servername: string | undefined, host: string): Promise<Answer & { fingerprint?: string }> {
    return new Promise(resolve => {
        const socket = tls.connect({ host: "127.0.0.1", port, ...(servername ? { servername } : {}), rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
        let raw = "";
        let fingerprint: string | undefined;
        socket.setTimeout(5000, () => socket.destroy(new Error("timeout")));
        socket.on("secureConnect", () => {
            fingerprint = socket.getPeerX509Certificate()?.fingerprint256;
            socket.write(`GET /some/path HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        });
        socket.on("data", d => { raw += d; });
        socket.on("error", err => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message, fingerprint }));
        socket.on("close", () => {
            const status = /^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1];
            resolve(status ? { status: Number(status), body: raw.split("\r\n\r\n").slice(1).join("\r\n\r\n"), fingerprint } : { error: raw === "" ? "closed without an answer" : raw, fingerprint });
        });
    });
}

function sClient(port: number, args: readonly string[]): { status: number | null; out: string } {
    const r = spawnSync("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", NAME, ...args], { input: "", encoding: "utf8", timeout: 15_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

describe("the balancer served by real nginx (L12)", () => {
    let backend: http.Server;
    let nginx: ServedNginx;
    let ports: { http: number; https: number; ssh: number; health: number; backend: number };
    let root: string; // stands in for loadBalancer.configRoot on the balancer host
    let bin: string; // a `docker` that runs the balancer's commands against the served nginx
    let pairA: Pair;
    let evaluationA: Evaluation;

    /** Runs a TLS command of the program (its script with configRoot mapped to `root`). */
    function runCommand(e: Evaluation, name: string, step: "create" | "update") {
        const r = e.byName(name);
        const script = str(r, step).replaceAll(e.config.loadBalancer.configRoot, root);
        const stdin = r.inputs.stdin as string | undefined;
        return spawnSync("sh", ["-c", script], { input: stdin ?? "", encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    }

    async function withPair(certificate: string, key: string): Promise<Evaluation> {
        const cfg = threeNodeConfig();
        cfg.loadBalancer.tls = { certificate, privateKey: key };
        return evaluate(cfg);
    }

    before(async () => {
        ports = { http: await freePort(), https: await freePort(), ssh: await freePort(), health: await freePort(), backend: await freePort() };
        backend = http.createServer((req, res) => { res.end(`gitlab node; Host ${req.headers.host}\n`); });
        await new Promise<void>(resolve => backend.listen(ports.backend, "127.0.0.1", resolve));
        root = tempDir("lb-root");
        pairA = selfSignedPair(NAME);
        // The first deploy, through the program's commands: stage both files, check, move in place.
        evaluationA = await withPair(pairA.certificate, pairA.key);
        bin = tempDir("docker-bin");
        for (const name of ["gitlab-lb-tls-certificate", "gitlab-lb-tls-key", "gitlab-lb-tls-reload"]) {
            const r = runCommand(evaluationA, name, "create");
            assert.equal(r.status, 0, `${name}: ${r.stderr}`);
        }
        assert.equal(fs.readFileSync(path.join(root, "tls", "cert.pem"), "utf8"), pairA.certificate);
        assert.equal(fs.readFileSync(path.join(root, "tls", "key.pem"), "utf8"), pairA.key);
        const conf = renderNginxConf({
            serverName: NAME,
            nodes: [{ name: "app1", address: "127.0.0.1", httpPort: ports.backend, sshPort: ports.backend }],
            httpPort: ports.http, httpsPort: ports.https, sshPort: ports.ssh, healthPort: ports.health,
            tls: { certificatePath: path.join(root, "tls", "cert.pem"), privateKeyPath: path.join(root, "tls", "key.pem") },
            proxyReadTimeoutSeconds: 60, proxyConnectTimeoutSeconds: 5,
            preamble: nginxModulePreamble(), nginxVersion: localNginxVersion(), listenAddress: "127.0.0.1",
        });
        // Test only: this instance's pid file, so that it cannot meet another nginx's.
        assert.ok(conf.includes("pid /tmp/nginx.pid;"));
        nginx = await serveNginx(conf.replace("pid /tmp/nginx.pid;", `pid ${path.join(root, "nginx.pid")};`), ports.https);
        // The balancer's commands call `docker inspect`/`docker exec <lb> nginx ...`: here they reach the served nginx.
        fs.writeFileSync(path.join(bin, "docker"), [
            "#!/bin/sh",
            `echo "docker $*" >> ${path.join(bin, "calls.log")}`,
            "case \"$1\" in inspect) exit 0 ;; esac",
            "shift 2 # exec <container>",
            "case \"$*\" in",
            // Output to a file: nginx opens /dev/stdout by path, which fails on Node's stdio sockets.
            `  *"nginx -t"*) nginx -t -q -p ${nginx.prefix} -c ${nginx.confPath} > ${path.join(bin, "nginx-t.log")} 2>&1 || { cat ${path.join(bin, "nginx-t.log")} >&2; exit 1; } ;;`,
            `  *"nginx -s reload"*) nginx ${nginx.reloadArgs.join(" ")} > ${path.join(bin, "reload.log")} 2>&1 || { cat ${path.join(bin, "reload.log")} >&2; exit 1; } ;;`,
            "  *) exit 1 ;;",
            "esac",
            "",
        ].join("\n"), { mode: 0o755 });
    });

    after(async () => {
        await nginx?.stop();
        await new Promise<void>(resolve => (backend ? backend.close(() => resolve()) : resolve()));
    });

    it("HTTP: the configured name is redirected to https://<configured host>:<port>; any other Host, or none, gets no answer", async () => {
        const ok = await httpGet(ports.http, NAME);
        assert.equal(ok.status, 301, JSON.stringify(ok));
        assert.equal(ok.headers?.location, `https://${NAME}:${ports.https}/some/path?q=1`);
        const evil = await httpGet(ports.http, "evil.example");
        assert.equal(evil.status, undefined, `unknown Host answered: ${JSON.stringify(evil)}`);
        assert.match(evil.error ?? "", /ECONNRESET|socket hang up/);
        // HTTP/1.0 without a Host header: closed without a byte.
        const bytes = await new Promise<string>(resolve => {
            let got = "";
            const s = net.connect(ports.http, "127.0.0.1", () => s.write("GET / HTTP/1.0\r\n\r\n"));
            s.on("data", d => { got += d; });
            s.on("close", () => resolve(got));
            s.on("error", () => resolve(got));
        });
        assert.equal(bytes, "");
    });

    it("HTTPS: the configured name reaches the node; an unknown or missing SNI name gets no handshake; a forged Host gets no answer", async () => {
        const ok = await httpsGet(ports.https, NAME, NAME);
        assert.equal(ok.status, 200, JSON.stringify(ok));
        assert.match(ok.body ?? "", new RegExp(`gitlab node; Host ${NAME.replace(/\./g, "\\.")}`));
        for (const servername of ["evil.example", undefined]) {
            const refused = await httpsGet(ports.https, servername, NAME);
            assert.equal(refused.fingerprint, undefined, `${servername ?? "no SNI"}: a certificate was presented`);
            assert.ok(refused.error, `${servername ?? "no SNI"}: ${JSON.stringify(refused)}`);
        }
        const forged = await httpsGet(ports.https, NAME, "evil.example");
        assert.notEqual(forged.status, 200, JSON.stringify(forged));
    });

    it("openssl s_client: TLS 1.2 negotiates ECDHE and gets no session ticket; a suite without forward secrecy is refused; TLS 1.3 uses its own suites", () => {
        const tls12 = sClient(ports.https, ["-tls1_2"]);
        assert.equal(tls12.status, 0, tls12.out);
        assert.match(tls12.out, /Cipher is ECDHE-RSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)/);
        assert.doesNotMatch(tls12.out, /TLS session ticket/, "no session ticket");
        for (const cipher of ["AES128-GCM-SHA256", "AES256-SHA", "DHE-RSA-AES128-GCM-SHA256"]) {
            const r = sClient(ports.https, ["-tls1_2", "-cipher", cipher]);
            assert.notEqual(r.status, 0, `${cipher} was accepted:\n${r.out}`);
        }
        const tls13 = sClient(ports.https, ["-tls1_3"]);
        assert.equal(tls13.status, 0, tls13.out);
        assert.match(tls13.out, /Cipher is TLS_(AES_256_GCM_SHA384|AES_128_GCM_SHA256|CHACHA20_POLY1305_SHA256)/);
        assert.match(tls13.out, /Server Temp Key: (X25519|ECDH|X448)/);
    });

    it("a TLS rotation with a mismatched pair exits non-zero, replaces nothing and nginx keeps serving the old pair; a matching pair is put in place and served", async () => {
        const pairB = selfSignedPair(NAME, "ec");
        const live = () => ({ cert: fs.readFileSync(path.join(root, "tls", "cert.pem"), "utf8"), key: fs.readFileSync(path.join(root, "tls", "key.pem"), "utf8") });
        const calls = () => (fs.existsSync(path.join(bin, "calls.log")) ? fs.readFileSync(path.join(bin, "calls.log"), "utf8") : "");
        const rotate = async (certificate: string, key: string) => {
            const e = await withPair(certificate, key);
            for (const name of ["gitlab-lb-tls-certificate", "gitlab-lb-tls-key"]) {
                const r = runCommand(e, name, "create");
                assert.equal(r.status, 0, `${name}: ${r.stderr}`);
            }
            return runCommand(e, "gitlab-lb-tls-reload", "update");
        };
        assert.equal((await httpsGet(ports.https, NAME, NAME)).fingerprint, fingerprintOf(pairA.certificate));

        // The new certificate with the old key: refused before anything moves.
        const mismatched = await rotate(pairB.certificate, pairA.key);
        assert.notEqual(mismatched.status, 0);
        assert.match(mismatched.stderr, /TLS: the certificate .* and the private key .* do not match/);
        assert.deepEqual(live(), { cert: pairA.certificate, key: pairA.key }, "the old pair stays");
        assert.doesNotMatch(calls(), /reload/);
        assert.equal((await httpsGet(ports.https, NAME, NAME)).fingerprint, fingerprintOf(pairA.certificate));

        // A certificate that does not parse: refused too.
        const garbage = await rotate("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", pairB.key);
        assert.notEqual(garbage.status, 0);
        assert.match(garbage.stderr, /is not a PEM certificate/);
        assert.deepEqual(live(), { cert: pairA.certificate, key: pairA.key });

        // The matching pair: checked, both moved, nginx tested and reloaded, the new one served.
        const matching = await rotate(pairB.certificate, pairB.key);
        assert.equal(matching.status, 0, matching.stderr);
        assert.match(matching.stdout, /TLS certificate and key installed/);
        assert.deepEqual(live(), { cert: pairB.certificate, key: pairB.key });
        assert.deepEqual(fs.readdirSync(path.join(root, "tls")).sort(), ["cert.pem", "key.pem", "new"]);
        assert.deepEqual(fs.readdirSync(path.join(root, "tls", "new")), [], "no staged file left");
        assert.equal((fs.statSync(path.join(root, "tls", "key.pem")).mode & 0o777), 0o600);
        assert.match(calls(), /nginx -t[^\n]*\n.*nginx -s reload/);
        let served: string | undefined;
        for (let i = 0; i < 50 && served !== fingerprintOf(pairB.certificate); i++) {
            await new Promise(r => setTimeout(r, 100));
            served = (await httpsGet(ports.https, NAME, NAME)).fingerprint;
        }
        assert.equal(served, fingerprintOf(pairB.certificate), nginx.log());

        // Run again with nothing staged: nothing changes, nothing reloads.
        const before = calls();
        const again = runCommand(evaluationA, "gitlab-lb-tls-reload", "create");
        assert.equal(again.status, 0, again.stderr);
        assert.match(again.stdout, /unchanged/);
        assert.equal(calls(), before);
    });
});
