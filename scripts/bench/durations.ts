// Simulated step durations: what each resource's create / update step costs on a real host.
// Nothing here is measured on GitLab hosts (this machine runs none); each figure is an assumption
// stated with its reasoning, so the simulation's conclusions can be re-run with other numbers.
import type { Operation } from "./blastRadius";

export interface DurationRule {
    readonly step: string;
    readonly type: string;
    /** Matched against the resource's logical name. */
    readonly name: RegExp;
    /** Only for the migration node's resources, or only for the others. */
    readonly node?: "migration" | "other";
    /** Seconds for a create (and for a replace's create). */
    readonly create: number;
    /** Seconds for an in-place update; default: same as create. */
    readonly update?: number;
    readonly basis: string;
}

const REMOTE = "command:remote:Command";
const CONTAINER = "docker:index/container:Container";
const IMAGE = "docker:index/remoteImage:RemoteImage";

/** First match wins. */
export const DURATION_TABLE: readonly DurationRule[] = [
    { step: "provider configure", type: "pulumi:providers:docker", name: /./, create: 1, basis: "ssh handshake of the Docker provider's first call" },
    { step: "password generation", type: "random:index/randomPassword:RandomPassword", name: /./, create: 0.1, basis: "local, no I/O" },
    { step: "volume create", type: "docker:index/volume:Volume", name: /./, create: 1, basis: "one Docker API call over ssh" },
    { step: "image pull: GitLab Omnibus", type: IMAGE, name: /-gitlab-.*-image$/, create: 90, update: 1,
        basis: "gitlab-ce 18.x is ~1.5 GB compressed: ~30 s download at 50 MB/s plus ~60 s extraction on one disk" },
    { step: "image pull: PostgreSQL", type: IMAGE, name: /-postgres-image$/, create: 12, update: 1, basis: "postgres:16 bookworm ~150 MB" },
    { step: "image pull: Redis / nginx", type: IMAGE, name: /-(redis|lb)-image$/, create: 6, update: 1, basis: "redis:7.2 ~45 MB, nginx:1.27 ~70 MB" },
    { step: "container start to healthy: PostgreSQL", type: CONTAINER, name: /-postgres$/, create: 15, update: 1,
        basis: "wait: true; initdb of an empty cluster plus pg_isready (healthcheck every 10 s)" },
    { step: "container start to healthy: Redis / nginx", type: CONTAINER, name: /-(redis|lb)$/, create: 10, update: 1,
        basis: "wait: true; first healthcheck after startPeriod, interval 10 s" },
    { step: "container start: GitLab (no wait)", type: CONTAINER, name: /-gitlab-[^-]+$/, create: 5, update: 1,
        basis: "docker create + start; readiness is the separate -ready step" },
    { step: "GitLab readiness, first start, migration node", type: REMOTE, name: /-gitlab-.+-ready$/, node: "migration", create: 420,
        basis: "first `gitlab-ctl reconfigure` inside the container, DB schema load + seeds + migrations (auto_migrate on), " +
            "Puma boot until /-/readiness answers; GitLab's Docker docs warn initialization takes a long time, the " +
            "container's healthcheck allows startPeriod 600 s; assumed 7 min on 4 vCPU" },
    { step: "GitLab readiness, first start, other nodes", type: REMOTE, name: /-gitlab-.+-ready$/, node: "other", create: 180,
        basis: "first reconfigure without DB work (auto_migrate off) + Puma boot; assumed 3 min" },
    { step: "gitlab-ctl reconfigure + readiness wait (rollout)", type: REMOTE, name: /-rollout$/, create: 1, update: 150,
        basis: "create is an `echo` (1 s, one ssh round trip); update runs `gitlab-ctl reconfigure` on a running node " +
            "(~90 s chef run) then waits for /-/readiness (~60 s while Puma restarts)" },
    { step: "NFS server: package install + export", type: REMOTE, name: /-nfs-export$/, create: 50, update: 3,
        basis: "apt-get update + install nfs-kernel-server (~45 s), write exports, exportfs -ra; update = exports rewrite" },
    { step: "NFS client: package install + fstab + mount", type: REMOTE, name: /-nfs-mount-[^-]+$/, create: 30, update: 3,
        basis: "apt-get install nfs-common (~25 s), fstab line, mount" },
    { step: "PostgreSQL role, database, extensions", type: REMOTE, name: /-postgres-gitlab-role$/, create: 3, basis: "one psql session" },
    { step: "read identity (secrets + host keys)", type: REMOTE, name: /-read-identity$/, create: 2, basis: "tar | base64 over ssh" },
    { step: "upgrade preflight", type: REMOTE, name: /-upgrade-preflight$/, create: 2,
        basis: "first deploy: one `docker inspect` (no container: nothing to check); an upgrade adds " +
            "`gitlab-rake gitlab:background_migrations:status` in the running deploy node (a Rails boot, ~60 s)" },
    { step: "post-deployment migrations", type: REMOTE, name: /-post-deploy-migrations$/, create: 60,
        basis: "`gitlab-rake db:migrate` on the deploy node: a Rails boot (~60 s); nothing to run on a first deploy " +
            "(the schema load covers them); an upgrade's post-deployment migrations add their own time" },
    { step: "file push (gitlab.rb, identity, pg_hba, redis.conf, nginx.conf, TLS, backup files)", type: REMOTE, name: /./, create: 2,
        basis: "one ssh session writing a file from stdin (+ reload where the script has one)" },
    { step: "local command", type: "command:local:Command", name: /./, create: 1, basis: "as the remote equivalent, no ssh" },
];

export interface DurationFor {
    readonly seconds: number;
    readonly rule?: DurationRule;
}

/**
 * Seconds the step of `op` takes for a resource; `same` and `delete` cost nothing on the critical
 * path. `migrationNode` is the logical name of the migration node's GitLabNode component.
 */
export function durationOf(
    type: string, name: string, op: Operation, migrationNode: string, table: readonly DurationRule[] = DURATION_TABLE,
): DurationFor {
    const onMigrationNode = name === migrationNode || name.startsWith(`${migrationNode}-`);
    const rule = table.find(r => r.type === type && r.name.test(name)
        && (r.node === undefined || (r.node === "migration") === onMigrationNode));
    if (op === "same" || op === "delete") return { seconds: 0, rule };
    if (rule === undefined) return { seconds: 1 };
    return { seconds: op === "update" ? rule.update ?? rule.create : rule.create, rule };
}
