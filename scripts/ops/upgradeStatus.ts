// `npm run ops -- upgrade-status`: where a zero-downtime upgrade stands. Each node's running
// release; on the deploy (migration) node, the post-deployment migrations not yet run and the
// batched background migrations not finished (what the upgrade preflight refuses on). Pure plan +
// parser; ops.ts runs it through a Runner (SSH, or a fake in tests).
import type { OpsInventory } from "../../components/cluster";
import { shellQuote } from "../../components/render/quote";
import { GITLAB_VERSION_FILE } from "../../components/render/upgrade";
import { unreachableMessage, type HostRef, type Runner } from "./plan";

/**
 * Prints `key=value` lines: `state`, `version`, and on the deploy node `post_deployment_pending`
 * (`down` migrations of `db:migrate:status`, read with SKIP_POST_DEPLOYMENT_MIGRATIONS unset: set,
 * GitLab leaves the post-deployment ones out) and `background_unfinished`. A value that cannot be
 * read is `unknown`; the script itself always exits 0 once the container is found.
 */
export function upgradeStatusScript(container: string, deployNode: boolean): string {
    const c = shellQuote(container);
    const deploy = !deployNode ? "" : `
if s=$(docker exec ${c} env -u SKIP_POST_DEPLOYMENT_MIGRATIONS gitlab-rake db:migrate:status 2>/dev/null); then
    echo "post_deployment_pending=$(printf '%s\\n' "$s" | grep -c '^[[:space:]]*down[[:space:]]' || true)"
else
    echo "post_deployment_pending=unknown"
fi
if s=$(docker exec ${c} gitlab-rake gitlab:background_migrations:status 2>/dev/null); then
    echo "background_unfinished=$(printf '%s\\n' "$s" | awk -F'|' 'NF > 1 { s = $1; gsub(/[ \\t]/, "", s); if (s != "status" && s != "finished" && s != "finalized") n++ } END { print n + 0 }')"
else
    echo "background_unfinished=unknown"
fi`;
    return `state=$(docker inspect -f '{{.State.Status}}' ${c} 2>/dev/null) || { echo "state=missing"; exit 0; }
echo "state=$state"
[ "$state" = running ] || exit 0
echo "version=$(docker exec ${c} cat ${GITLAB_VERSION_FILE} 2>/dev/null | head -n 1 || true)"${deploy}
`;
}

export interface NodeUpgradeStatus {
    readonly name: string;
    readonly deployNode: boolean;
    /** running, exited, missing, unreachable, ... */
    readonly state: string;
    readonly version?: string;
    /** Deploy node only; undefined when not read. */
    readonly postDeploymentPending?: number | "unknown";
    readonly backgroundUnfinished?: number | "unknown";
    /** Why the node could not be read. */
    readonly error?: string;
}

/** The `key=value` lines of upgradeStatusScript. */
export function parseUpgradeStatus(stdout: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const line of stdout.split("\n")) {
        const m = /^([a-z_]+)=(.*)$/.exec(line.trim());
        if (m) out[m[1]!] = m[2]!;
    }
    return out;
}

const count = (v: string | undefined): number | "unknown" | undefined =>
    v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : "unknown";

/** Reads every node (in parallel): never throws for one node; its line says what went wrong. */
export async function readUpgradeStatus(inv: OpsInventory, runner: Runner): Promise<NodeUpgradeStatus[]> {
    return Promise.all(inv.nodes.map(async (n): Promise<NodeUpgradeStatus> => {
        const host: HostRef = { name: n.name, address: n.address, ssh: n.ssh };
        const r = await runner.run(host, upgradeStatusScript(n.container, n.migrationNode));
        if (r.unreachable !== undefined) return { name: n.name, deployNode: n.migrationNode, state: "unreachable", error: unreachableMessage(host, r.unreachable) };
        if (r.code !== 0) return { name: n.name, deployNode: n.migrationNode, state: "unknown", error: r.stderr.trim() || `exit ${r.code}` };
        const v = parseUpgradeStatus(r.stdout);
        return {
            name: n.name, deployNode: n.migrationNode, state: v.state ?? "unknown",
            ...(v.version ? { version: v.version } : {}),
            ...(n.migrationNode && v.state === "running" ? { postDeploymentPending: count(v.post_deployment_pending), backgroundUnfinished: count(v.background_unfinished) } : {}),
        };
    }));
}

/** The report's lines and its exit code: 0 every node runs one release with nothing pending, 1 otherwise. */
export function upgradeStatusReport(nodes: readonly NodeUpgradeStatus[]): { readonly lines: string[]; readonly code: number } {
    const lines = nodes.map(n => {
        const parts = [`${n.name}${n.deployNode ? " (deploy node)" : ""}: ${n.state}`];
        if (n.version !== undefined) parts.push(`GitLab ${n.version}`);
        if (n.postDeploymentPending !== undefined) parts.push(`post-deployment migrations pending: ${n.postDeploymentPending}`);
        if (n.backgroundUnfinished !== undefined) parts.push(`batched background migrations unfinished: ${n.backgroundUnfinished}`);
        if (n.error !== undefined) parts.push(n.error);
        return parts.join(", ");
    });
    const versions = new Set(nodes.map(n => n.version));
    const deploy = nodes.find(n => n.deployNode);
    const notes: string[] = [];
    if (nodes.some(n => n.state !== "running")) notes.push("a node is not running: pulumi up (or docker start) before upgrading");
    if (versions.size > 1) notes.push(`the nodes run different releases (${[...versions].map(v => v ?? "unknown").join(", ")}): an upgrade is under way or stopped; pulumi up resumes it`);
    if (typeof deploy?.postDeploymentPending === "number" && deploy.postDeploymentPending > 0) notes.push("post-deployment migrations pending: pulumi up runs them once every node runs the release");
    if (typeof deploy?.backgroundUnfinished === "number" && deploy.backgroundUnfinished > 0) notes.push("batched background migrations running: the next upgrade's preflight waits for them");
    if (deploy?.postDeploymentPending === "unknown" || deploy?.backgroundUnfinished === "unknown") notes.push("could not read the migrations on the deploy node (gitlab-rake failed)");
    return { lines: [...lines, ...(notes.length === 0 ? ["ready for the next upgrade"] : notes)], code: notes.length === 0 ? 0 : 1 };
}
