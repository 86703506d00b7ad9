// nginx.conf for the load balancer: HTTP(S) to the GitLab nodes' port 80, git-over-SSH as TCP.
import { nginxString } from "./quote";

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
    readonly proxyReadTimeoutSeconds: number;
    readonly proxyConnectTimeoutSeconds: number;
    /** Port of the local-only health endpoint used by the container's healthcheck. */
    readonly healthPort: number;
    /** Lines placed before everything else, e.g. `load_module` on distributions with dynamic modules. */
    readonly preamble?: readonly string[];
}

function hostPort(address: string, port: number): string {
    return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

export function renderNginxConf(input: NginxConfInput): string {
    if (input.nodes.length === 0) throw new Error("nginx.conf needs at least one GitLab node");
    const server = nginxString(input.serverName);
    const httpServers = input.nodes.map(n => `        server ${hostPort(n.address, n.httpPort)} max_fails=3 fail_timeout=10s; # ${n.name}`);
    const sshServers = input.nodes.map(n => `        server ${hostPort(n.address, n.sshPort)} max_fails=3 fail_timeout=10s; # ${n.name}`);
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
        `            proxy_connect_timeout ${input.proxyConnectTimeoutSeconds}s;`,
        "            # Passive failover: a node that refuses or restarts (Puma) is skipped.",
        "            proxy_next_upstream error timeout http_502 http_503 http_504;",
        "            proxy_next_upstream_tries 3;",
        "        }",
    ];
    const common = [
        `        server_name ${server};`,
        "        client_max_body_size 0;",
        "        server_tokens off;",
    ];
    const servers: string[] = [];
    if (input.tls) {
        servers.push(
            "    server {",
            `        listen ${input.httpPort};`,
            ...common,
            `        location / { return 301 https://$host${input.httpsPort === 443 ? "" : `:${input.httpsPort}`}$request_uri; }`,
            "    }",
            "    server {",
            // `listen ... ssl http2` rather than `http2 on`, which nginx before 1.25.1 does not know.
            `        listen ${input.httpsPort} ssl http2;`,
            ...common,
            `        ssl_certificate ${nginxString(input.tls.certificatePath)};`,
            `        ssl_certificate_key ${nginxString(input.tls.privateKeyPath)};`,
            "        ssl_protocols TLSv1.2 TLSv1.3;",
            "        ssl_session_cache shared:SSL:10m;",
            "        ssl_session_timeout 1h;",
            ...proxy("https"),
            "    }",
        );
    } else {
        servers.push(
            "    server {",
            `        listen ${input.httpPort};`,
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
        "    upstream gitlab_http {",
        ...httpServers,
        "    }",
        ...servers,
        "    # Local-only endpoint for the container healthcheck.",
        "    server {",
        `        listen 127.0.0.1:${input.healthPort};`,
        "        location = /nginx-health { access_log off; return 200 \"ok\\n\"; }",
        "    }",
        "}",
        "stream {",
        "    upstream gitlab_ssh {",
        ...sshServers,
        "    }",
        "    server {",
        `        listen ${input.sshPort};`,
        "        proxy_pass gitlab_ssh;",
        "        proxy_connect_timeout 10s;",
        `        proxy_timeout ${input.proxyReadTimeoutSeconds}s;`,
        "    }",
        "}",
    ];
    return `${lines.join("\n")}\n`;
}
