// Example stack configurations: raw `gitlab-cluster:*` values as a stack file holds them, with
// made-up keys and certificates. The three-node example of the design, and N nodes of it for
// `npm run bench`; the tests use them too (tests/fixtures.ts re-exports them).

export const TEST_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-KEY-NOT-REAL\n-----END OPENSSH PRIVATE KEY-----";
export const TEST_TLS_KEY = "-----BEGIN PRIVATE KEY-----\nTEST-TLS-KEY-NOT-REAL\n-----END PRIVATE KEY-----";
export const TEST_TLS_CERT = "-----BEGIN CERTIFICATE-----\nTEST-CERT\n-----END CERTIFICATE-----";

/** A made-up ed25519 host key line for a host (remote hosts must pin one). */
export function testHostKey(host: string): string {
    return `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${host.replace(/[^A-Za-z0-9]/g, "")}`;
}

/** The three-node example of the design: app1..3, data1, edge1. */
export function threeNodeConfig(): Record<string, any> { // any: fixtures are edited freely by tests to make bad configs
    return {
        hosts: {
            app1: { address: "10.0.0.11", ssh: { hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIapp1" } },
            app2: { address: "10.0.0.12", ssh: { hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIapp2" } },
            app3: { address: "10.0.0.13", ssh: { hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIapp3" } },
            data1: { address: "10.0.0.21", ssh: { hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIdata" } },
            edge1: { address: "10.0.0.5", ssh: { hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIedge" } },
        },
        ssh: { user: "root", privateKey: TEST_PRIVATE_KEY },
        roles: { redis: "data1", postgres: "data1", gitlab: ["app1", "app2", "app3"], nfsServer: "app1", loadBalancer: "edge1" },
        gitlab: { image: "gitlab/gitlab-ce:18.4.1-ce.0", externalUrl: "https://gitlab.example.com" },
        loadBalancer: { tls: { certificate: TEST_TLS_CERT, privateKey: TEST_TLS_KEY } },
    };
}

/** N GitLab nodes app1..appN, NFS on app1. */
export function nNodeConfig(n: number): Record<string, any> { // any: see threeNodeConfig
    const cfg = threeNodeConfig();
    cfg.hosts = { data1: cfg.hosts.data1, edge1: cfg.hosts.edge1 };
    cfg.roles.gitlab = [];
    for (let i = 1; i <= n; i++) {
        cfg.hosts[`app${i}`] = { address: `10.0.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`, ssh: { hostKey: testHostKey(`app${i}`) } };
        cfg.roles.gitlab.push(`app${i}`);
    }
    if (n === 1) delete cfg.roles.nfsServer;
    return cfg;
}

/**
 * The three-node example in GitLab's supported layout: repositories on a Gitaly host (gitaly1),
 * uploads and shared data on a storage host of its own (nfs1) that runs no GitLab.
 */
export function gitalyConfig(): Record<string, any> { // any: see threeNodeConfig
    const cfg = threeNodeConfig();
    cfg.hosts.gitaly1 = { address: "10.0.0.31", ssh: { hostKey: testHostKey("gitaly1") } };
    cfg.hosts.nfs1 = { address: "10.0.0.41", ssh: { hostKey: testHostKey("nfs1") } };
    cfg.roles.gitaly = "gitaly1";
    cfg.roles.nfsServer = "nfs1";
    return cfg;
}
