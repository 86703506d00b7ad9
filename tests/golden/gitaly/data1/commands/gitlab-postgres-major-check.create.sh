set -eu
if ! docker volume inspect gitlab-postgres-data >/dev/null 2>&1; then echo "volume gitlab-postgres-data does not exist yet: a new data directory"; exit 0; fi
found=$(docker run --rm --network none --entrypoint cat -v gitlab-postgres-data:/d:ro postgres:16.15-bookworm /d/PG_VERSION 2>/dev/null || true)
if [ -z "$found" ]; then echo "no PG_VERSION on the volume: a new data directory"; exit 0; fi
server=$(docker run --rm --network none --entrypoint postgres postgres:16.15-bookworm --version) || { echo "gitlab-cluster: cannot run 'postgres --version' in postgres:16.15-bookworm" >&2; exit 1; }
version=$(printf '%s\n' "$server" | sed -n 's/^postgres (PostgreSQL) \([0-9][0-9.]*\).*/\1/p' | head -n 1)
case "$version" in [0-9].*) major=${version%.*} ;; *) major=${version%%.*} ;; esac
if [ -z "$major" ]; then echo "gitlab-cluster: cannot read PostgreSQL's version from postgres:16.15-bookworm: $server" >&2; exit 1; fi
if [ "$found" != "$major" ]; then
    echo 'gitlab-cluster: the PostgreSQL data on volume gitlab-postgres-data was written by PostgreSQL '"$found"' (its PG_VERSION), and postgres.image (postgres:16.15-bookworm) runs PostgreSQL '"$major"', which cannot start on it. Set postgres.image back to a PostgreSQL '"$found"' release, or move the data to PostgreSQL '"$major"' first (dump and restore, or pg_upgrade): README.md, "Upgrading PostgreSQL to a new major version".' >&2
    exit 1
fi
echo "PostgreSQL $found data, image PostgreSQL $major: same major"
