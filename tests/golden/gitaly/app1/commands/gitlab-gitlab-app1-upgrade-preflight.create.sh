#!/bin/sh
set -eu
container=gitlab-gitlab-app1
target=18.4.1
refuse() {
    echo "upgrade to GitLab 18.4.1-ce.0 refused: $*" >&2
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
running=$(docker exec "$container" cat /opt/gitlab/embedded/service/gitlab-rails/VERSION | head -n 1 | tr -d '[:space:]') || running=""
version=${running%%-*}
case "$version" in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) refuse "cannot read the release $container runs from /opt/gitlab/embedded/service/gitlab-rails/VERSION (got '$running')" ;;
esac
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
patch=${rest#*.}
case "$major$minor$patch" in *[!0-9]*) refuse "cannot read the release $container runs from /opt/gitlab/embedded/service/gitlab-rails/VERSION (got '$running')" ;; esac
running_at=$(( major * 1000000 + minor * 1000 + patch ))
running_minor_at=$(( major * 1000 + minor ))
target_at=18004001
if [ "$running_at" -eq "$target_at" ]; then
    echo "$container already runs GitLab $version: nothing to check"
    exit 0
fi
if [ "$running_at" -gt "$target_at" ]; then
    refuse "GitLab does not support downgrades ($version to $target: the database has already migrated). Set gitlab.image back to GitLab $version (going back to $target means restoring a backup taken on $target)"
fi
skipped=""
for stop in 15000:15.0 15004:15.4 15011:15.11 16003:16.3 16007:16.7 16011:16.11 17003:17.3 17005:17.5 17008:17.8 17011:17.11 18002:18.2; do
    if [ "$running_minor_at" -lt "${stop%%:*}" ]; then skipped="$skipped ${stop#*:}"; fi
done
if [ -n "$skipped" ]; then
    first=${skipped# }
    first=${first%% *}
    refuse "GitLab $version to $target skips required upgrade stop(s)$skipped: set gitlab.image to the latest patch of $first first, run pulumi up, let its batched background migrations finish, then upgrade further (https://docs.gitlab.com/update/upgrade_paths/)"
fi
if [ "$running_minor_at" -lt 16000 ]; then echo 'warning: GitLab 16.0 is a required upgrade stop for instances with lots of users or a large pipeline variables history: if that is this instance, upgrade through it first (https://docs.gitlab.com/update/upgrade_paths/)'; fi
if [ "$running_minor_at" -lt 16001 ]; then echo 'warning: GitLab 16.1 is a required upgrade stop for instances with NPM packages in their package registry: if that is this instance, upgrade through it first (https://docs.gitlab.com/update/upgrade_paths/)'; fi
if [ "$running_minor_at" -lt 16002 ]; then echo 'warning: GitLab 16.2 is a required upgrade stop for instances with a large pipeline variables history: if that is this instance, upgrade through it first (https://docs.gitlab.com/update/upgrade_paths/)'; fi
if [ "$running_minor_at" -lt 17001 ]; then echo 'warning: GitLab 17.1 is a required upgrade stop for instances with a large ci_pipeline_messages table: if that is this instance, upgrade through it first (https://docs.gitlab.com/update/upgrade_paths/)'; fi
if [ "$(( 18004 - running_minor_at ))" -gt 1 ]; then
    echo "warning: GitLab $version to $target is more than one minor release: GitLab documents zero-downtime upgrades one minor release at a time, so nodes still on $version may fail requests until they are replaced"
fi
# GitLab's check before an upgrade: every batched background migration finished (or finalized).
status=$(docker exec "$container" gitlab-rake gitlab:background_migrations:status 2>&1) || refuse "cannot read the batched background migrations of $container: $status"
unfinished=$(printf '%s\n' "$status" | awk -F'|' 'NF > 1 { s = $1; gsub(/[ \t]/, "", s); if (s != "status" && s != "finished" && s != "finalized") print }')
if [ -n "$unfinished" ]; then
    printf '%s\n' "$unfinished" >&2
    refuse "$(printf '%s\n' "$unfinished" | wc -l | tr -d ' ') batched background migration(s) of GitLab $version are not finished. Wait for them (Admin area > Monitoring > Background migrations, or: docker exec $container gitlab-rake gitlab:background_migrations:status), then run pulumi up again"
fi
echo "GitLab $version to $target: no stop skipped, background migrations finished; upgrading"
