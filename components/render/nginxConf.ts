// nginx.conf for the load balancer: HTTP(S) to the GitLab nodes' port 80, git-over-SSH as TCP;
// and the script that puts a new TLS certificate and key in place only as a matching pair.
import { nginxString, shellQuote } from "./quote";
import { whenContainerExists } from "./scripts";

export interface NginxUpstreamNode {
    readonly name: string;
    readonly address: string;
    readonly httpPort: number;
    readonly sshPort: number;
}

export interface NginxConfInput {
    readonly serverName: string;
    readonly nodes: readonly NginxUpstreamNode[];
    readonly httpPort: number;
    readonly httpsPort: number;
    readonly sshPort: number;
    /** Paths inside the container; when set, 443 terminates TLS and 80 redirects to it. */
    readonly tls?: { readonly certificatePath: string; readonly privateKeyPath: string };
    /** Read and send timeouts to the nodes (GitLab's own nginx: 3600 s); also the SSH stream's idle timeout. */
    readonly proxyReadTimeoutSeconds: number;
    /** Connect timeout to a node, 1 to UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS: a node that is off waits it out per request. */
    readonly proxyConnectTimeoutSeconds: number;
    /** Port of the local-only health endpoint used by the container's healthcheck. */
    readonly healthPort: number;
    /** Lines placed before everything else, e.g. `load_module` on distributions with dynamic modules. */
    readonly preamble?: readonly string[];
    /**
     * Version of the nginx that reads the file (`1.27.4`): from 1.25.1 HTTP/2 is `http2 on;`, the
     * `listen ... http2` form being deprecated; unknown (an image by digest) means the old form,
     * which every version still reads.
     */
    readonly nginxVersion?: string;
    /** Address the HTTP(S) and SSH servers bind inside nginx's network namespace; default all. */
    readonly listenAddress?: string;
}

/**
 * TLS 1.2 suites with forward secrecy only (ECDHE key exchange, AEAD ciphers), as in Mozilla's
 * "intermediate" profile without the DHE suites. TLS 1.3 suites all have forward secrecy and
 * are OpenSSL's defaults (`ssl_ciphers` does not touch them).
 */
export const TLS12_CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
];

/**
 * The longest connect timeout the balancer waits for a node. A node that is off or hung drops
 * the SYN instead of refusing it, and every request sent to it waits out the whole connect
 * timeout before nginx tries the next node (GitLab's own nginx uses 300 s, meant for a local
 * upstream). On the LAN a connect takes well under a millisecond; Linux retransmits a lost SYN
 * after 1 s, so 3 s survives one lost SYN and still fails over in seconds: the default. The
 * configuration refuses more than 10 s.
 */
export const UPSTREAM_CONNECT_TIMEOUT_DEFAULT_SECONDS = 3;
export const UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS = 10;
/** Nodes tried per request or SSH connection: the first and two more. */
export const UPSTREAM_TRIES = 3;

function versionAtLeast(version: string | undefined, min: readonly number[]): boolean | undefined {
    const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version ?? "");
    if (!m) return undefined;
    const v = [Number(m[1]), Number(m[2]), Number(m[3])];
    for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
    return true;
}

/** A server name that is an IP address: clients send no SNI for it. */
function isAddressName(name: string): boolean {
    return /^[0-9.]+$/.test(name) || name.startsWith("[") || name.includes(":");
}

function hostPort(address: string, port: number): string {
    return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

export function renderNginxConf(input: NginxConfInput): string {
    if (input.nodes.length === 0) throw new Error("nginx.conf needs at least one GitLab node");
    if (input.tls && versionAtLeast(input.nginxVersion, [1, 19, 4]) === false) {
        throw new Error(`nginx ${input.nginxVersion} is too old for the balancer's TLS (ssl_reject_handshake needs nginx 1.19.4 or newer): choose a newer loadBalancer.image`);
    }
    const server = nginxString(input.serverName);
    const listen = (port: number) => (input.listenAddress === undefined ? `${port}` : hostPort(input.listenAddress, port));
    const http2Directive = versionAtLeast(input.nginxVersion, [1, 25, 1]) === true;
    const connectTimeout = input.proxyConnectTimeoutSeconds;
    if (!Number.isInteger(connectTimeout) || connectTimeout < 1 || connectTimeout > UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS) {
        throw new Error(`proxyConnectTimeoutSeconds must be 1 to ${UPSTREAM_CONNECT_TIMEOUT_MAX_SECONDS} (got ${connectTimeout})`);
    }
    // Long enough for every try to wait out the connect timeout; short enough that a request that
    // timed out after a long read (or got a 502 after minutes) is not sent again.
    const nextUpstreamTimeout = UPSTREAM_TRIES * connectTimeout + 1;
    // The zone shares the failure counts between the worker processes, which would otherwise each
    // learn on their own requests that a node is gone (1m: the minimum is 8 pages on any platform).
    const upstream = (name: string, port: (n: NginxUpstreamNode) => number) => [
        `    upstream ${name} {`,
        "        # Passive health checks only (open-source nginx has no active ones): 3 failures, as",
        "        # proxy_next_upstream counts them, take a node out for 10 s; then one request probes it.",
        `        zone ${name} 1m;`,
        ...input.nodes.map(n => `        server ${hostPort(n.address, port(n))} max_fails=3 fail_timeout=10s; # ${n.name}`),
        "    }",
    ];
    const proxy = (forwardedProto: string) => [
        "        location / {",
        "            proxy_pass http://gitlab_http;",
        "            proxy_http_version 1.1;",
        "            proxy_set_header Host $http_host;",
        "            proxy_set_header X-Real-IP $remote_addr;",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        `            proxy_set_header X-Forwarded-Proto ${forwardedProto};`,
        ...(forwardedProto === "https" ? ["            proxy_set_header X-Forwarded-Ssl on;"] : []),
        "            # WebSockets: web terminal and ActionCable.",
        "            proxy_set_header Upgrade $http_upgrade;",
        "            proxy_set_header Connection $connection_upgrade;",
        "            # Git pushes and uploads stream straight through.",
        "            proxy_request_buffering off;",
        "            proxy_buffering off;",
        `            proxy_read_timeout ${input.proxyReadTimeoutSeconds}s;`,
        `            proxy_send_timeout ${input.proxyReadTimeoutSeconds}s;`,
        `            proxy_connect_timeout ${connectTimeout}s;`,
        "            # Passive failover. The next node gets the request when a node refuses or drops the",
        "            # connect (nothing was sent, whatever the method), or answers 502/503/504 (Puma",
        "            # restarting) to a request nginx may replay: never a POST, PATCH or LOCK (no",
        "            # non_idempotent), nor, once sent, any request with a body (streamed, not kept).",
        "            proxy_next_upstream error timeout http_502 http_503 http_504;",
        `            proxy_next_upstream_tries ${UPSTREAM_TRIES};`,
        `            proxy_next_upstream_timeout ${nextUpstreamTimeout}s;`,
        "        }",
    ];
    const common = [
        `        server_name ${server};`,
        "        client_max_body_size 0;",
        "        server_tokens off;",
    ];
    // Requests for any other name (a scanner by address, a forged Host) get no answer: the
    // default server of each port closes the connection (444), and on HTTPS refuses the TLS
    // handshake for an unknown or missing SNI name.
    const servers: string[] = [
        "    # Any other name: closed without an answer.",
        "    server {",
        `        listen ${listen(input.httpPort)} default_server;`,
        "        server_tokens off;",
        "        return 444;",
        "    }",
    ];
    if (input.tls) {
        const certificate = [
            `        ssl_certificate ${nginxString(input.tls.certificatePath)};`,
            `        ssl_certificate_key ${nginxString(input.tls.privateKeyPath)};`,
        ];
        // The redirect names the configured host: never the client's Host ($host).
        const origin = nginxString(`https://${input.serverName}${input.httpsPort === 443 ? "" : `:${input.httpsPort}`}`);
        servers.push(
            "    server {",
            `        listen ${listen(input.httpsPort)} ssl default_server;`,
            "        server_tokens off;",
            // Clients send no SNI for an address: there the handshake must succeed (with the
            // balancer's certificate) and the Host header decides.
            ...(isAddressName(input.serverName) ? certificate : ["        ssl_reject_handshake on;"]),
            "        return 444;",
            "    }",
            "    server {",
            `        listen ${listen(input.httpPort)};`,
            ...common,
            `        location / { return 301 ${origin.slice(0, -1)}$request_uri"; }`,
            "    }",
            "    server {",
            `        listen ${listen(input.httpsPort)} ssl${http2Directive ? "" : " http2"};`,
            ...(http2Directive ? ["        http2 on;"] : []),
            ...common,
            ...certificate,
            ...proxy("https"),
            "    }",
        );
    } else {
        servers.push(
            "    server {",
            `        listen ${listen(input.httpPort)};`,
            ...common,
            ...proxy("$scheme"),
            "    }",
        );
    }
    const lines = [
        "# Managed by gitlab-cluster (Pulumi): edits here are overwritten on the next `pulumi up`.",
        ...(input.preamble ?? []),
        "worker_processes auto;",
        "pid /tmp/nginx.pid;",
        "error_log stderr warn;",
        "events { worker_connections 4096; }",
        "http {",
        "    access_log /dev/stdout;",
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        // No upstream keepalive: a request given a cached connection to a node that has gone silent
        // waits the read timeout (an hour), not the connect timeout. Open-source nginx has no active
        // health checks (health_check is NGINX Plus), so GitLab's /-/readiness cannot steer it.
        ...upstream("gitlab_http", n => n.httpPort),
        // For every server: until SNI picks one, the port's default server governs the
        // handshake (protocols, ticket keys), so these are set once for all of them.
        ...(input.tls ? [
            "    ssl_protocols TLSv1.2 TLSv1.3;",
            `    ssl_ciphers ${TLS12_CIPHERS.join(":")};`,
            "    ssl_prefer_server_ciphers off;",
            // Ticket keys live as long as nginx runs: a stolen key would decrypt every recorded
            // session. The session cache resumes sessions without them.
            "    ssl_session_tickets off;",
            "    ssl_session_cache shared:SSL:10m;",
            "    ssl_session_timeout 1h;",
        ] : []),
        ...servers,
        "    # Local-only endpoint for the container healthcheck.",
        "    server {",
        `        listen 127.0.0.1:${input.healthPort};`,
        "        location = /nginx-health { access_log off; return 200 \"ok\\n\"; }",
        "    }",
        "}",
        "stream {",
        ...upstream("gitlab_ssh", n => n.sshPort),
        "    server {",
        `        listen ${listen(input.sshPort)};`,
        "        proxy_pass gitlab_ssh;",
        `        proxy_connect_timeout ${connectTimeout}s;`,
        "        # Nothing has reached the node before its connect succeeds: always safe to try the next.",
        "        proxy_next_upstream on;",
        `        proxy_next_upstream_tries ${UPSTREAM_TRIES};`,
        `        proxy_next_upstream_timeout ${nextUpstreamTimeout}s;`,
        `        proxy_timeout ${input.proxyReadTimeoutSeconds}s;`,
        "    }",
        "}",
    ];
    return `${lines.join("\n")}\n`;
}

export interface TlsPairInput {
    /** Directory of the live pair: nginx reads `cert.pem` and `key.pem` there. */
    readonly dir: string;
    /** Runs after a new pair is in place (test the config, reload nginx). */
    readonly then?: string;
    /** A line of text that changes with the pair (a digest), so that a new pair changes the script. */
    readonly revision?: string;
}

/** The live pair's file names, and the subdirectory where a rotation stages the new files first. */
export const TLS_FILES = { certificate: "cert.pem", key: "key.pem", stagingDir: "new" } as const;

/**
 * Puts a staged certificate and/or key (`new/cert.pem`, `new/key.pem`, written from stdin by
 * their own commands) in place of the live pair, only when the resulting pair is sound: the
 * certificate parses and its public key is the private key's. Otherwise it exits 1 with the
 * reason, leaving the live pair (which nginx keeps serving) and the staged files as they are.
 * Both files are renamed in the same directory before `then`, so nginx never loads a mixed pair.
 */
export function installTlsPairScript(input: TlsPairInput): string {
    const { certificate: cert, key, stagingDir } = TLS_FILES;
    const dir = input.dir.replace(/["$`\\]/g, "");
    return `#!/bin/sh
set -eu
${input.revision === undefined ? "" : `# ${input.revision.replace(/\n/g, " ")}\n`}cd ${shellQuote(input.dir)}
new_cert=${cert}; [ -f ${stagingDir}/${cert} ] && new_cert=${stagingDir}/${cert}
new_key=${key}; [ -f ${stagingDir}/${key} ] && new_key=${stagingDir}/${key}
if [ "$new_cert" = ${cert} ] && [ "$new_key" = ${key} ]; then
    echo "TLS certificate and key unchanged in ${dir}"
    exit 0
fi
refuse() {
    echo "TLS: $1; nothing replaced: nginx keeps the current certificate and key in ${dir}" >&2
    exit 1
}
command -v openssl >/dev/null 2>&1 || refuse "openssl is needed on this host to check that the certificate and the key belong together"
cert_public=$(openssl x509 -noout -pubkey -in "$new_cert" 2>/dev/null | openssl pkey -pubin -pubout 2>/dev/null) || cert_public=
[ -n "$cert_public" ] || refuse "$new_cert is not a PEM certificate"
key_public=$(openssl pkey -in "$new_key" -passin pass: -pubout 2>/dev/null) || key_public=
[ -n "$key_public" ] || refuse "$new_key is not an unencrypted PEM private key"
[ "$cert_public" = "$key_public" ] || refuse "the certificate ($new_cert) and the private key ($new_key) do not match: their public keys differ"
if [ "$new_key" != ${key} ]; then mv -f ${stagingDir}/${key} ${key}; fi
if [ "$new_cert" != ${cert} ]; then mv -f ${stagingDir}/${cert} ${cert}; fi
echo "TLS certificate and key installed in ${dir}"
${input.then ?? ""}
`.replace(/\n*$/, "\n");
}

/** After a config or TLS change: the new config is tested inside the running container before nginx reloads it. */
export function nginxReloadScript(container: string, configFile: string): string {
    const c = shellQuote(container);
    return whenContainerExists(container, `docker exec ${c} nginx -t -q -c ${configFile} && docker exec ${c} nginx -s reload -c ${configFile} && echo "nginx reloaded"`);
}
