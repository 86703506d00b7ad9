import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { installTlsPairScript, renderNginxConf, TLS12_CIPHERS, type NginxConfInput } from "../../components/render/nginxConf";
import { evaluate } from "../../scripts/evaluate";
import { threeNodeConfig } from "../fixtures";
import { nginxModulePreamble, nginxTest, shellcheck, shSyntax, tempDir } from "../support/readers";
import { localNginxVersion, selfSignedPair } from "../support/tls";

const NAME_FOR_TLS = "gitlab.example.com";

function input(overrides: Partial<NginxConfInput> = {}): NginxConfInput {
    return {
        serverName: "gitlab.example.com",
        nodes: [
            { name: "app1", address: "10.0.0.11", httpPort: 80, sshPort: 2222 },
            { name: "app2", address: "10.0.0.12", httpPort: 80, sshPort: 2222 },
            { name: "app3", address: "10.0.0.13", httpPort: 80, sshPort: 2222 },
        ],
        httpPort: 80, httpsPort: 443, sshPort: 2222,
        proxyReadTimeoutSeconds: 3600, proxyConnectTimeoutSeconds: 3, healthPort: 8081,
        preamble: nginxModulePreamble(),
        ...overrides,
    };
}

/** The `server` lines of an upstream block. */
function upstream(conf: string, name: string): string[] {
    const block = new RegExp(`upstream ${name} \\{([^}]*)\\}`).exec(conf);
    assert.ok(block, `no upstream ${name}`);
    return [...block[1]!.matchAll(/server (\S+) /g)].map(m => m[1]!);
}

describe("nginx.conf", () => {
    it("passes nginx -t, plain HTTP", () => {
        const r = nginxTest(renderNginxConf(input()));
        assert.equal(r.status, 0, r.stderr);
    });

    it("passes nginx -t with TLS, redirecting HTTP to HTTPS", () => {
        const dir = tempDir("tls");
        execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=gitlab.example.com",
            "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
        const conf = renderNginxConf(input({ tls: { certificatePath: path.join(dir, "cert.pem"), privateKeyPath: path.join(dir, "key.pem") } }));
        const r = nginxTest(conf);
        assert.equal(r.status, 0, r.stderr);
        assert.match(conf, /return 301 "https:\/\/gitlab\.example\.com\$request_uri";/);
        assert.match(conf, /proxy_set_header X-Forwarded-Proto https;/);
        assert.match(conf, /proxy_set_header X-Forwarded-Ssl on;/);
    });

    describe("TLS and unknown names (L12)", () => {
        const pair = selfSignedPair("gitlab.example.com");
        const tls = { certificatePath: pair.certificatePath, privateKeyPath: pair.keyPath };

        it("offers forward-secret suites only (ECDHE for TLS 1.2, TLS 1.3's defaults) and no session tickets; nginx -t accepts it", () => {
            const conf = renderNginxConf(input({ tls }));
            assert.match(conf, /^\s*ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
            const ciphers = /^\s*ssl_ciphers (\S+);$/m.exec(conf)?.[1]?.split(":");
            assert.deepEqual(ciphers, TLS12_CIPHERS);
            for (const c of ciphers) assert.match(c, /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
            // What OpenSSL makes of the list: only ECDHE key exchange, authenticated encryption.
            const expanded = execFileSync("openssl", ["ciphers", "-v", "-tls1_2", ciphers.join(":")], { encoding: "utf8" }).trim().split("\n")
                .filter(l => /TLSv1\.2/.test(l));
            assert.ok(expanded.length >= 4);
            for (const l of expanded) assert.match(l, /Kx=ECDH\s.*Enc=(AESGCM|CHACHA20\/POLY1305)/, l);
            assert.match(conf, /^\s*ssl_session_tickets off;$/m);
            assert.equal(nginxTest(conf).status, 0, nginxTest(conf).stderr);
        });

        it("refuses unknown names: HTTP closes without an answer (444), HTTPS refuses the handshake; nginx -t accepts it", () => {
            const conf = renderNginxConf(input({ tls }));
            const defaults = conf.split("\n    server {").filter(b => /default_server/.test(b));
            assert.equal(defaults.length, 2, "a default server for 80 and for 443");
            assert.match(defaults[0]!, /listen 80 default_server;[\s\S]*return 444;/);
            assert.match(defaults[1]!, /listen 443 ssl default_server;[\s\S]*ssl_reject_handshake on;/);
            assert.doesNotMatch(defaults.join(""), /server_name|proxy_pass|ssl_certificate /);
            // The GitLab servers are not the default of their port.
            assert.equal((conf.match(/default_server/g) ?? []).length, 2);
            assert.equal(nginxTest(conf).status, 0, nginxTest(conf).stderr);
            const plain = renderNginxConf(input());
            assert.match(plain, /listen 80 default_server;\s*server_tokens off;\s*return 444;/);
            assert.equal(nginxTest(plain).status, 0);
        });

        it("redirects HTTP to the configured host and HTTPS port, never to the client's $host", () => {
            const conf = renderNginxConf(input({ tls, httpsPort: 8443 }));
            assert.match(conf, /return 301 "https:\/\/gitlab\.example\.com:8443\$request_uri";/);
            assert.doesNotMatch(conf, /\$host\b/);
            assert.equal(nginxTest(conf).status, 0);
        });

        it("for an address as server name (no SNI from clients), the HTTPS default server completes the handshake and closes unknown Hosts", () => {
            const conf = renderNginxConf(input({ tls, serverName: "10.0.0.5" }));
            const defaultTls = conf.split("\n    server {").find(b => /ssl default_server/.test(b))!;
            assert.doesNotMatch(defaultTls, /ssl_reject_handshake/);
            assert.match(defaultTls, /ssl_certificate .*\n.*ssl_certificate_key .*\n\s*return 444;/);
            assert.equal(nginxTest(conf).status, 0, nginxTest(conf).stderr);
        });

        it("HTTP/2: `http2 on;` for nginx 1.25.1 and later (the default image), the listen parameter before; too old an nginx is refused", () => {
            const modern = renderNginxConf(input({ tls, nginxVersion: "1.27.4" }));
            assert.match(modern, /listen 443 ssl;\n\s*http2 on;/);
            assert.doesNotMatch(modern, /ssl http2/);
            const older = renderNginxConf(input({ tls, nginxVersion: "1.22.1" }));
            assert.match(older, /listen 443 ssl http2;/);
            assert.doesNotMatch(older, /http2 on/);
            assert.match(renderNginxConf(input({ tls })), /listen 443 ssl http2;/, "unknown version: the form every version reads");
            assert.throws(() => renderNginxConf(input({ tls, nginxVersion: "1.18.0" })), /nginx 1\.18\.0 is too old.*ssl_reject_handshake.*1\.19\.4/);
            // nginx -t with the nginx installed here, on the form its version reads.
            const local = localNginxVersion();
            const conf = renderNginxConf(input({ tls, nginxVersion: local }));
            const r = nginxTest(conf);
            assert.equal(r.status, 0, `nginx ${local}: ${r.stderr}`);
            assert.doesNotMatch(r.stderr, /deprecated/, `nginx ${local} warns: ${r.stderr}`);
        });
    });

    it("balances exactly the GitLab nodes' HTTP ports, and SSH to their SSH ports", () => {
        const conf = renderNginxConf(input());
        assert.deepEqual(upstream(conf, "gitlab_http"), ["10.0.0.11:80", "10.0.0.12:80", "10.0.0.13:80"]);
        assert.deepEqual(upstream(conf, "gitlab_ssh"), ["10.0.0.11:2222", "10.0.0.12:2222", "10.0.0.13:2222"]);
        assert.doesNotMatch(conf, /5432|6379/);
    });

    it("passes GitLab's headers, websockets, unlimited bodies and long timeouts", () => {
        const conf = renderNginxConf(input());
        for (const line of ["proxy_set_header Host $http_host;", "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", "proxy_set_header Upgrade $http_upgrade;",
            "proxy_set_header Connection $connection_upgrade;", "client_max_body_size 0;", "proxy_read_timeout 3600s;",
            "proxy_send_timeout 3600s;", "proxy_timeout 3600s;"]) {
            assert.ok(conf.includes(line), line);
        }
    });

    describe("failover from a node that is off or hung (issue 12; served for real in balancerFailover.test.ts)", () => {
        /** The lines of the block that opens with `opening` (no nested braces inside). */
        const block = (conf: string, opening: string) => {
            const start = conf.indexOf(opening);
            assert.ok(start >= 0, `no ${opening}`);
            return conf.slice(start, conf.indexOf("}", start)).split("\n").map(l => l.trim());
        };

        it("connects with a short timeout: 3 s by default, at most 10 s, never GitLab's local 300 s", async () => {
            const cfg = threeNodeConfig();
            const defaults = (await evaluate(cfg)).config.loadBalancer.proxyConnectTimeoutSeconds;
            assert.equal(defaults, 3);
            const conf = renderNginxConf(input({ proxyConnectTimeoutSeconds: defaults }));
            assert.deepEqual(conf.match(/proxy_connect_timeout \S+;/g), ["proxy_connect_timeout 3s;", "proxy_connect_timeout 3s;"], "HTTP and SSH");
            assert.doesNotMatch(conf, /300s/);
            assert.deepEqual(renderNginxConf(input({ proxyConnectTimeoutSeconds: 2 })).match(/proxy_connect_timeout \S+;/g), ["proxy_connect_timeout 2s;", "proxy_connect_timeout 2s;"]);
            assert.throws(() => renderNginxConf(input({ proxyConnectTimeoutSeconds: 300 })), /1 to 10/);
            cfg.loadBalancer.proxyConnectTimeoutSeconds = 300;
            await assert.rejects(evaluate(cfg), /loadBalancer\.proxyConnectTimeoutSeconds: must be at most 10: a GitLab node that is off/);
        });

        it("HTTP: tries the next node on error, timeout and 502/503/504, at most 3 nodes within 10 s; never replays a POST", () => {
            const location = block(renderNginxConf(input()), "location / {");
            for (const line of ["proxy_next_upstream error timeout http_502 http_503 http_504;", "proxy_next_upstream_tries 3;",
                "proxy_next_upstream_timeout 10s;", "proxy_read_timeout 3600s;"]) {
                assert.ok(location.includes(line), line);
            }
            assert.doesNotMatch(location.filter(l => !l.startsWith("#")).join("\n"), /non_idempotent/);
            assert.equal(renderNginxConf(input({ proxyConnectTimeoutSeconds: 1 })).match(/proxy_next_upstream_timeout 4s;/g)?.length, 2, "tries x connect timeout + 1 s");
        });

        it("SSH: the stream block tries the next node too", () => {
            const server = block(renderNginxConf(input()), "    server {\n        listen 2222;");
            for (const line of ["proxy_pass gitlab_ssh;", "proxy_connect_timeout 3s;", "proxy_next_upstream on;", "proxy_next_upstream_tries 3;",
                "proxy_next_upstream_timeout 10s;", "proxy_timeout 3600s;"]) {
                assert.ok(server.includes(line), line);
            }
        });

        it("both upstreams share their failure counts between workers (zone) and mark a node down after 3 failures for 10 s; no keepalive", () => {
            const conf = renderNginxConf(input());
            for (const name of ["gitlab_http", "gitlab_ssh"]) {
                const upstreamBlock = block(conf, `upstream ${name} {`);
                assert.ok(upstreamBlock.includes(`zone ${name} 1m;`), `${name}: zone`);
                const servers = upstreamBlock.filter(l => l.startsWith("server "));
                assert.equal(servers.length, 3);
                for (const s of servers) assert.match(s, / max_fails=3 fail_timeout=10s;/);
            }
            // A cached connection to a node gone silent would hold a request for the read timeout.
            assert.doesNotMatch(conf, /^\s*keepalive /m);
            assert.equal(nginxTest(conf).status, 0, nginxTest(conf).stderr);
        });
    });

    it("quotes the server name, and nginx reads it back", () => {
        const conf = renderNginxConf(input({ serverName: 'we"ird\\name' }));
        assert.match(conf, /server_name "we\\"ird\\\\name";/);
        assert.equal(nginxTest(conf).status, 0);
    });

    it("refuses names nginx cannot hold", () => {
        assert.throws(() => renderNginxConf(input({ serverName: "a\nb" })), /control character/);
        assert.throws(() => renderNginxConf(input({ serverName: "$host" })), /variable/);
        assert.throws(() => renderNginxConf(input({ nodes: [] })), /at least one GitLab node/);
    });

    it("a broken config fails nginx -t (the check can fail)", () => {
        assert.notEqual(nginxTest(renderNginxConf(input()).replace("proxy_pass http://gitlab_http;", "proxy_pass http://nowhere_defined;")).status, 0);
    });

    describe("the TLS pair install script (L12)", () => {
        const run = (dir: string) => spawnSync("sh", ["-c", installTlsPairScript({ dir, then: "echo RELOAD", revision: "certificate and key sha256 abc" })], { encoding: "utf8" });

        it("passes sh -n and shellcheck", () => {
            const script = installTlsPairScript({ dir: "/srv/gitlab-cluster/nginx/tls", then: "echo RELOAD", revision: "r" });
            assert.equal(shSyntax(script).status, 0);
            assert.equal(shellcheck(script).status, 0, shellcheck(script).stdout);
        });

        it("keeps the live pair and the staged files when the new key does not fit the live certificate; installs a fitting pair; then has nothing to do", () => {
            const dir = tempDir("tls-pair");
            const a = selfSignedPair(NAME_FOR_TLS);
            const b = selfSignedPair(NAME_FOR_TLS, "ec");
            fs.copyFileSync(a.certificatePath, path.join(dir, "cert.pem"));
            fs.copyFileSync(a.keyPath, path.join(dir, "key.pem"));
            fs.mkdirSync(path.join(dir, "new"));
            // Only a new key staged: it does not fit the live certificate.
            fs.copyFileSync(b.keyPath, path.join(dir, "new", "key.pem"));
            const refused = run(dir);
            assert.equal(refused.status, 1);
            assert.match(refused.stderr, /TLS: the certificate \(cert\.pem\) and the private key \(new\/key\.pem\) do not match.*nginx keeps the current certificate and key/);
            assert.doesNotMatch(refused.stdout, /RELOAD/);
            assert.equal(fs.readFileSync(path.join(dir, "key.pem"), "utf8"), a.key);
            assert.ok(fs.existsSync(path.join(dir, "new", "key.pem")), "the staged key stays: a retry fails the same way until the config is fixed");
            // An encrypted key is refused as such.
            execFileSync("openssl", ["pkey", "-in", b.keyPath, "-aes256", "-passout", "pass:secret", "-out", path.join(dir, "new", "key.pem")]);
            fs.copyFileSync(b.certificatePath, path.join(dir, "new", "cert.pem"));
            assert.match(run(dir).stderr, /new\/key\.pem is not an unencrypted PEM private key/);
            fs.copyFileSync(b.keyPath, path.join(dir, "new", "key.pem"));
            const installed = run(dir);
            assert.equal(installed.status, 0, installed.stderr);
            assert.match(installed.stdout, /installed[\s\S]*RELOAD/);
            assert.equal(fs.readFileSync(path.join(dir, "cert.pem"), "utf8"), b.certificate);
            assert.equal(fs.readFileSync(path.join(dir, "key.pem"), "utf8"), b.key);
            const again = run(dir);
            assert.equal(again.status, 0);
            assert.match(again.stdout, /unchanged/);
            assert.doesNotMatch(again.stdout, /RELOAD/);
        });
    });
});
