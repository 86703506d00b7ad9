// The integration test's stacks on the harness's test network (tests/integration/lib/harness.sh),
// reached over real SSH with the harness's key and each host's key pinned from ssh-keyscan of its
// started container:
//   "nfs"    (run.sh's first stack) the three-node topology of the design, git-data on NFS served by app1;
//   "gitaly" (run.sh's second stack, gitaly-layout.sh) repositories on a Gitaly node of their own
//            (roles.gitaly gitaly1), two GitLab nodes, the NFS share on a dedicated storage host nfs1.
import { randomBytes, randomInt } from "node:crypto";
import * as fs from "node:fs";

/** What run.sh knows after starting the host containers (written by it as JSON). */
export interface Inventory {
    /** Address of each host container on the test network, and its ssh-keyscan'ed ed25519 key line. */
    readonly hosts: Readonly<Record<string, { readonly address: string; readonly hostKey: string }>>;
    /** The harness's private key file. */
    readonly privateKeyFile: string;
}

export const ITEST_STACK = "itest";
export const HOST_NAMES = ["data1", "app1", "app2", "app3", "edge1"] as const;
/** The Gitaly layout's hosts: no app3; gitaly1 runs only Gitaly, nfs1 only the NFS server. */
export const GITALY_HOST_NAMES = ["data1", "app1", "app2", "edge1", "gitaly1", "nfs1"] as const;
export type Layout = "nfs" | "gitaly";
/** Which stack a driver run evaluates: ITEST_LAYOUT (run.sh sets it), "nfs" when unset. */
export function layoutFromEnv(value = process.env.ITEST_LAYOUT): Layout {
    if (value === undefined || value === "" || value === "nfs") return "nfs";
    if (value === "gitaly") return "gitaly";
    throw new Error(`ITEST_LAYOUT=${value}: expected nfs or gitaly`);
}
/** The GitLab stand-in reports this version (images/gitlab-standin/VERSION): the tag must match. */
export const GITLAB_IMAGE = "gitlab/gitlab-ce:18.4.1-ce.0";

/** Raw `gitlab-cluster:*` values, as a stack file would hold them. */
export function itestStackConfig(inv: Inventory, layout: Layout = "nfs"): Record<string, unknown> {
    const hosts: Record<string, unknown> = {};
    for (const name of layout === "gitaly" ? GITALY_HOST_NAMES : HOST_NAMES) {
        const h = inv.hosts[name];
        if (!h) throw new Error(`inventory has no host ${name}`);
        hosts[name] = { address: h.address, ssh: { hostKey: h.hostKey } };
    }
    return {
        hosts,
        ssh: { user: "root", privateKey: fs.readFileSync(inv.privateKeyFile, "utf8") },
        roles: layout === "gitaly"
            // gitaly.port and gitaly.dataRoot stay at their defaults (8075, /srv/gitlab-cluster/gitaly).
            ? { redis: "data1", postgres: "data1", gitlab: ["app1", "app2"], gitaly: "gitaly1", nfsServer: "nfs1", loadBalancer: "edge1" }
            : { redis: "data1", postgres: "data1", gitlab: ["app1", "app2", "app3"], nfsServer: "app1", loadBalancer: "edge1" },
        gitlab: {
            image: GITLAB_IMAGE,
            externalUrl: `http://${inv.hosts.edge1!.address}`,
            // The stand-in is ready within seconds; a broken start should fail the test quickly.
            readinessTimeoutSeconds: 120,
        },
        // The default paths are all under /srv (gitlab, gitlab-nfs, gitlab-cluster/{postgres,redis,nginx}).
        backup: { schedule: "30 2 * * *", keepDays: 7 },
    };
}

/**
 * A fresh password for each generated secret: random letters with the characters that need
 * quoting in each file they land in (gitlab.rb, redis.conf, SQL, shell) at random places.
 */
export function hostilePassword(): string {
    const hostile = ["'", "\"", "\\", "$", " ", "`", "#", ";", "$(x)", "${HOME}", "\\n", "%s", "'\\''"];
    const parts = [randomBytes(12).toString("base64url")];
    for (const h of hostile) parts.splice(randomInt(parts.length + 1), 0, h);
    // Never starts or ends with a space: a space is still in the middle, which is what quoting must keep.
    return `p${parts.join("")}q`;
}

/** Generated passwords of this run, kept in a 0600 file so every evaluation of the run agrees. */
export function runPasswords(file: string): (name: string) => string {
    const known: Record<string, string> = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, string> : {};
    return name => {
        if (known[name] === undefined) {
            known[name] = hostilePassword();
            fs.writeFileSync(file, JSON.stringify(known, null, 1), { mode: 0o600 });
        }
        return known[name]!;
    };
}
