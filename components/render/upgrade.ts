// Scripts of GitLab's zero-downtime upgrade (docs.gitlab.com/update/zero_downtime): the preflight
// that runs before any GitLab container is replaced, and the post-deployment migrations that run
// once every node runs the new release. Pure: typed values in, POSIX sh out.
import { minorOrder } from "../upgradePath";
import { shellQuote } from "./quote";

const HEADER = "#!/bin/sh\nset -eu\n";

/** Where an Omnibus image (and the test stand-in) keeps the GitLab release it runs: `18.4.1`. */
export const GITLAB_RAILS_DIR = "/opt/gitlab/embedded/service/gitlab-rails";
export const GITLAB_VERSION_FILE = `${GITLAB_RAILS_DIR}/VERSION`;

/**
 * Set on the deploy (migration) node's container: the image runs `gitlab-ctl reconfigure` at every
 * start, and its migrations then skip the post-deployment ones, which the program runs once all
 * nodes run the new release.
 */
export const SKIP_POST_DEPLOYMENT_MIGRATIONS_ENV = "SKIP_POST_DEPLOYMENT_MIGRATIONS=true";

export interface ReleaseInput {
    readonly major: number;
    readonly minor: number;
    readonly patch: number;
    /** The image tag, for messages: `18.5.0-ce.0`. */
    readonly text: string;
}

export interface UpgradeStopInput {
    readonly major: number;
    readonly minor: number;
    /** A stop GitLab requires only for some instances: warned about, not refused. */
    readonly onlyFor?: string;
}

export interface UpgradePreflightInput {
    /** The deploy node's container: the one whose release and background migrations are read. */
    readonly container: string;
    /** The release of the new `gitlab.image`. */
    readonly target: ReleaseInput;
    /** GitLab's required upgrade stops (components/upgradePath.ts). */
    readonly stops: readonly UpgradeStopInput[];
    /** GitLab's upgrade path page, named in every message about a stop. */
    readonly upgradePathDocs: string;
}


/**
 * Before any GitLab container is replaced for a new image: reads the release the deploy node runs
 * and refuses (exit 1, nothing changed) a downgrade, a jump over a required upgrade stop, or an
 * upgrade while batched background migrations are unfinished. No deploy node container: a first
 * deploy, nothing to check. The same release again (a new build or digest of it): nothing to check.
 */
export function upgradePreflightScript(input: UpgradePreflightInput): string {
    const c = shellQuote(input.container);
    const t = input.target;
    const targetVersion = `${t.major}.${t.minor}.${t.patch}`;
    // Stops at or above the target are never skipped; the running release decides the rest on the host.
    const before = input.stops.filter(s => minorOrder(s) < minorOrder(t));
    const required = before.filter(s => s.onlyFor === undefined).map(s => `${minorOrder(s)}:${s.major}.${s.minor}`);
    const conditional = before.filter(s => s.onlyFor !== undefined);
    const conditionalChecks = conditional.map(s =>
        `if [ "$running_minor_at" -lt ${minorOrder(s)} ]; then echo ${shellQuote(`warning: GitLab ${s.major}.${s.minor} is a required upgrade stop for ${s.onlyFor}: if that is this instance, upgrade through it first (${input.upgradePathDocs})`)}; fi`).join("\n");
    // A new major's .0 follows the old major's last minor: one step. Otherwise more than one minor is warned about.
    const multiMinorWarning = t.minor === 0 ? "" : `if [ "$(( ${minorOrder(t)} - running_minor_at ))" -gt 1 ]; then
    echo "warning: GitLab $version to $target is more than one minor release: GitLab documents zero-downtime upgrades one minor release at a time, so nodes still on $version may fail requests until they are replaced"
fi
`;
    return `${HEADER}container=${c}
target=${shellQuote(targetVersion)}
refuse() {
    echo "upgrade to GitLab ${t.text} refused: $*" >&2
    echo "nothing was changed: every GitLab container still runs its old release" >&2
    exit 1
}
if ! docker inspect "$container" >/dev/null 2>&1; then
    echo "no container $container on this host: a first deploy, nothing to check"
    exit 0
fi
if [ "$(docker inspect -f '{{.State.Running}}' "$container")" != true ]; then
    refuse "$container is not running, so its release and background migrations cannot be read: start it (docker start $container), wait until it is ready, then run pulumi up again"
fi
running=$(docker exec "$container" cat ${GITLAB_VERSION_FILE} | head -n 1 | tr -d '[:space:]') || running=""
version=\${running%%-*}
case "$version" in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) refuse "cannot read the release $container runs from ${GITLAB_VERSION_FILE} (got '$running')" ;;
esac
major=\${version%%.*}
rest=\${version#*.}
minor=\${rest%%.*}
patch=\${rest#*.}
case "$major$minor$patch" in *[!0-9]*) refuse "cannot read the release $container runs from ${GITLAB_VERSION_FILE} (got '$running')" ;; esac
running_at=$(( major * 1000000 + minor * 1000 + patch ))
running_minor_at=$(( major * 1000 + minor ))
target_at=${t.major * 1000000 + t.minor * 1000 + t.patch}
if [ "$running_at" -eq "$target_at" ]; then
    echo "$container already runs GitLab $version: nothing to check"
    exit 0
fi
if [ "$running_at" -gt "$target_at" ]; then
    refuse "GitLab does not support downgrades ($version to $target: the database has already migrated). Set gitlab.image back to GitLab $version (going back to $target means restoring a backup taken on $target)"
fi
skipped=""
for stop in ${required.join(" ")}; do
    if [ "$running_minor_at" -lt "\${stop%%:*}" ]; then skipped="$skipped \${stop#*:}"; fi
done
if [ -n "$skipped" ]; then
    first=\${skipped# }
    first=\${first%% *}
    refuse "GitLab $version to $target skips required upgrade stop(s)$skipped: set gitlab.image to the latest patch of $first first, run pulumi up, let its batched background migrations finish, then upgrade further (${input.upgradePathDocs})"
fi
${conditionalChecks}
${multiMinorWarning}# GitLab's check before an upgrade: every batched background migration finished (or finalized).
status=$(docker exec "$container" gitlab-rake gitlab:background_migrations:status 2>&1) || refuse "cannot read the batched background migrations of $container: $status"
unfinished=$(printf '%s\\n' "$status" | awk -F'|' 'NF > 1 { s = $1; gsub(/[ \\t]/, "", s); if (s != "status" && s != "finished" && s != "finalized") print }')
if [ -n "$unfinished" ]; then
    printf '%s\\n' "$unfinished" >&2
    refuse "$(printf '%s\\n' "$unfinished" | wc -l | tr -d ' ') batched background migration(s) of GitLab $version are not finished. Wait for them (Admin area > Monitoring > Background migrations, or: docker exec $container gitlab-rake gitlab:background_migrations:status), then run pulumi up again"
fi
echo "GitLab $version to $target: no stop skipped, background migrations finished; upgrading"
`;
}

/**
 * On the deploy node, once every node runs the new release: the post-deployment migrations its
 * start skipped (SKIP_POST_DEPLOYMENT_MIGRATIONS is in the container's environment, which
 * `docker exec` inherits: unset for this one command).
 */
export function postDeployMigrationsScript(container: string, release: string): string {
    const c = shellQuote(container);
    return `${HEADER}echo "every node runs GitLab ${release}: post-deployment migrations on ${container}"
docker exec ${c} env -u SKIP_POST_DEPLOYMENT_MIGRATIONS gitlab-rake db:migrate
echo "post-deployment migrations done"
`;
}
