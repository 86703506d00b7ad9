// GitLab's upgrade path: the required stops, as data. One list, read by the promotion command
// (scripts/promotePlan.ts: a warning) and by the program's upgrade preflight (a refusal on the host).

/** Orders releases by major and minor only (stops are minors): 18.5 < 18.5.x < 18.6. */
export function minorOrder(v: { readonly major: number; readonly minor: number }): number {
    return v.major * 1000 + v.minor;
}

export interface UpgradeStop {
    readonly major: number;
    readonly minor: number;
    /** Set when GitLab requires the stop only for some instances: the condition. */
    readonly onlyFor?: string;
}

/**
 * GitLab's required upgrade stops from 15.0 on: versions an instance must run (latest patch of
 * that minor, background migrations finished) before it may go further. From 17.5 the stops are
 * x.2, x.5, x.8 and x.11.
 * Sources: https://docs.gitlab.com/update/upgrade_paths/ ("Required upgrade stops") and GitLab's
 * own list, config/upgrade_path.yml in gitlab-org/gitlab. Add a major's stops when GitLab publishes them.
 */
export const GITLAB_REQUIRED_UPGRADE_STOPS: readonly UpgradeStop[] = [
    { major: 15, minor: 0 },
    { major: 15, minor: 4 },
    { major: 15, minor: 11 },
    { major: 16, minor: 0, onlyFor: "instances with lots of users or a large pipeline variables history" },
    { major: 16, minor: 1, onlyFor: "instances with NPM packages in their package registry" },
    { major: 16, minor: 2, onlyFor: "instances with a large pipeline variables history" },
    { major: 16, minor: 3 },
    { major: 16, minor: 7 },
    { major: 16, minor: 11 },
    { major: 17, minor: 1, onlyFor: "instances with a large ci_pipeline_messages table" },
    { major: 17, minor: 3 },
    { major: 17, minor: 5 },
    { major: 17, minor: 8 },
    { major: 17, minor: 11 },
    { major: 18, minor: 2 },
    { major: 18, minor: 5 },
    { major: 18, minor: 8 },
    { major: 18, minor: 11 },
];

export const UPGRADE_PATH_DOCS = "https://docs.gitlab.com/update/upgrade_paths/";
