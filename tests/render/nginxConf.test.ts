import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { describe, it } from "node:test";
import { renderNginxConf, type NginxConfInput } from "../../components/render/nginxConf";
import { nginxModulePreamble, nginxTest, tempDir } from "../support/readers";

function input(overrides: Partial<NginxConfInput> = {}): NginxConfInput {
    return {
        serverName: "gitlab.example.com",
        nodes: [
            { name: "app1", address: "10.0.0.11", httpPort: 80, sshPort: 2222 },
            { name: "app2", address: "10.0.0.12", httpPort: 80, sshPort: 2222 },
            { name: "app3", address: "10.0.0.13", httpPort: 80, sshPort: 2222 },
        ],
        httpPort: 80, httpsPort: 443, sshPort: 2222,
        proxyReadTimeoutSeconds: 3600, proxyConnectTimeoutSeconds: 300, healthPort: 8081,
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
        assert.match(conf, /return 301 https:\/\/\$host\$request_uri;/);
        assert.match(conf, /proxy_set_header X-Forwarded-Proto https;/);
        assert.match(conf, /proxy_set_header X-Forwarded-Ssl on;/);
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
            "proxy_connect_timeout 300s;", "proxy_next_upstream error timeout http_502 http_503 http_504;"]) {
            assert.ok(conf.includes(line), line);
        }
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
});
