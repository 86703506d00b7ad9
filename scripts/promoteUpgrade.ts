// May a promotion move the target stack to the source's images? GitLab's upgrade path (no
// downgrade, the required stops) and PostgreSQL's major version (no new major on old data).
// Pure: image references in, a refusal or warnings out. Used by scripts/promoteFile.ts.
import { gitlabRelease, postgresMajor, type GitlabRelease } from "../components/config";
import { POSTGRES_UPGRADE_RUNBOOK } from "../components/render/postgres";
import { GITLAB_REQUIRED_UPGRADE_STOPS, minorOrder, UPGRADE_PATH_DOCS, type UpgradeStop } from "../components/upgradePath";

// GitLab's required upgrade stops: one list, in components/ (the program's upgrade preflight reads it too).
export { GITLAB_REQUIRED_UPGRADE_STOPS, UPGRADE_PATH_DOCS, type UpgradeStop };

export type GitlabVersion = GitlabRelease;

/**
 * The GitLab release in an Omnibus image reference (`gitlab/gitlab-ce:18.4.1-ce.0`, also with
 * `@sha256:...`), or undefined (a digest alone, another tag). The stack config's own parser.
 */
export function gitlabVersion(image: string): GitlabVersion | undefined {
    return gitlabRelease(image);
}

/** Negative, zero or positive as a is older than, the same as, or newer than b. */
export function compareVersions(a: GitlabVersion, b: GitlabVersion): number {
    return a.major - b.major || a.minor - b.minor || a.patch - b.patch || a.build - b.build;
}

/** The required stops strictly between the running release and the next one. */
export function skippedUpgradeStops(running: GitlabVersion, next: GitlabVersion, stops: readonly UpgradeStop[] = GITLAB_REQUIRED_UPGRADE_STOPS): UpgradeStop[] {
    return stops.filter(s => minorOrder(running) < minorOrder(s) && minorOrder(s) < minorOrder(next));
}

export interface UpgradeCheck {
    /** Set when the promotion must not happen. */
    readonly refusal?: string;
    readonly warnings: readonly string[];
}

/** Checks moving `to` (the target stack) from its GitLab image to the source stack's image. */
export function checkGitlabUpgrade(targetImage: string | undefined, sourceImage: string | undefined, to = "the target stack"): UpgradeCheck {
    if (targetImage === undefined || sourceImage === undefined || targetImage === sourceImage) return { warnings: [] };
    const running = gitlabVersion(targetImage), next = gitlabVersion(sourceImage);
    if (!running || !next) {
        // Without both versions a downgrade cannot be told from an upgrade: refuse, as the stack config does.
        const unreadable = [!running ? `"${targetImage}" (${to})` : undefined, !next ? `"${sourceImage}" (the source)` : undefined].filter(Boolean).join(" and ");
        return {
            refusal: `gitlab.image: cannot read a GitLab release from ${unreadable}, so a downgrade cannot be ruled out: ` +
                "give gitlab.image with its release tag, with or without a digest (gitlab/gitlab-ce:18.4.1-ce.0 or gitlab/gitlab-ce:18.4.1-ce.0@sha256:<64 hex>)",
            warnings: [],
        };
    }
    if (compareVersions(next, running) < 0) {
        return {
            refusal: `gitlab.image: refusing to downgrade ${to} from GitLab ${running.text} to ${next.text}: ` +
                "GitLab does not support downgrades (the database has already migrated); restore a backup of the older release instead",
            warnings: [],
        };
    }
    const skipped = skippedUpgradeStops(running, next);
    if (skipped.length === 0) return { warnings: [] };
    const list = skipped.map(s => `${s.major}.${s.minor}${s.onlyFor ? ` (for ${s.onlyFor})` : ""}`).join(", ");
    return {
        warnings: [`gitlab.image: upgrading ${to} from GitLab ${running.text} to ${next.text} skips required upgrade stop${skipped.length > 1 ? "s" : ""} ${list}: ` +
            `upgrade to the latest patch of each stop first and let its background migrations finish (${UPGRADE_PATH_DOCS})`],
    };
}

/**
 * Why moving `to` from one PostgreSQL image to another must not happen by promotion: a new major
 * cannot start on the existing data directory (the data host's check would refuse it at deploy).
 */
export function checkPostgresMajor(targetImage: string, sourceImage: string, to = "the target stack"): string | undefined {
    const running = postgresMajor(targetImage), next = postgresMajor(sourceImage);
    if (running === undefined || next === undefined || running === next) return undefined;
    return `postgres.image: refusing to move ${to} from PostgreSQL ${running} (${targetImage}) to ${next} (${sourceImage}): ` +
        `a PostgreSQL ${next} server cannot start on data written by ${running}; upgrade ${to}'s data first (${POSTGRES_UPGRADE_RUNBOOK}), then promote`;
}
