# shellcheck shell=bash
# Image builders for the integration tests. No registry is reachable, so the
# base image is made with debootstrap from Debian's mirror and `docker import`,
# and every other image is `docker build` FROM it.
#
#   source tests/integration/lib/images.sh
#   build_all_images     # sets IMG_BASE IMG_SSHD IMG_HOST IMG_STANDIN IMG_*_STANDIN (+ IMG_DATA IMG_LB with ITEST_PHASE1=1)
#   build_base_image     # gitlab-cluster-test/base:bookworm (skipped if present)
#   build_image NAME PARENT_REF   # images/NAME/ -> gitlab-cluster-test/NAME:h-<hash>
#   build_dockerhost_images       # build_all_images + IMG_DOCKERHOST (hosts with their own dockerd)
#
# Tags: gitlab-cluster-test/NAME:h-<12 hex> where the hash covers every file in
# images/NAME/ (names + contents) and the parent image's ID, so editing a
# Dockerfile or a file it copies, or rebuilding the parent, makes a new tag;
# an existing tag is reused as is. :latest is moved to the current build and
# older h-* tags of the same image are removed.
# ITEST_REBUILD=1 forces rebuilding everything (base included).
# ITEST_DEBIAN_MIRROR (default http://deb.debian.org/debian) is used for
# debootstrap and written into the base image's sources.

_ITEST_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$_ITEST_LIB_DIR/common.sh"

ITEST_IMAGE_PREFIX="${ITEST_IMAGE_PREFIX:-gitlab-cluster-test}"
ITEST_DEBIAN_MIRROR="${ITEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ITEST_DEBIAN_SUITE=bookworm
IMG_BASE="$ITEST_IMAGE_PREFIX/base:$ITEST_DEBIAN_SUITE"
ITEST_BUILD_LOG_DIR="${ITEST_BUILD_LOG_DIR:-/tmp/gitlab-cluster-itest-build}"

_image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
_image_id()     { docker image inspect --format '{{.Id}}' "$1"; }

_rootfs_cleanup() {   # $1: temp dir holding the debootstrap target
  local d=$1 m
  [[ -n "$d" && -d "$d" ]] || return 0
  # debootstrap mounts proc/sys (and may bind /dev) inside the target; a failed
  # run can leave them mounted. Unmount before deleting, never cross mounts.
  for m in $(awk -v p="$d/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$d"
}

build_base_image() {
  if [[ -z "${ITEST_REBUILD:-}" ]] && _image_exists "$IMG_BASE"; then
    itest_log "reusing $IMG_BASE"; return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || itest_apt_install debootstrap
  local tmp rc=0
  tmp=$(mktemp -d /var/tmp/gitlab-cluster-itest-rootfs.XXXXXX)
  mkdir -p "$ITEST_BUILD_LOG_DIR"
  itest_log "debootstrap --variant=minbase $ITEST_DEBIAN_SUITE from $ITEST_DEBIAN_MIRROR (log: $ITEST_BUILD_LOG_DIR/debootstrap.log)"
  timeout 900 debootstrap --variant=minbase "$ITEST_DEBIAN_SUITE" "$tmp/root" "$ITEST_DEBIAN_MIRROR" \
      >"$ITEST_BUILD_LOG_DIR/debootstrap.log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    tail -n 20 "$ITEST_BUILD_LOG_DIR/debootstrap.log" >&2
    _rootfs_cleanup "$tmp"; itest_die "debootstrap failed (rc=$rc)"
  fi
  local sec_mirror=${ITEST_DEBIAN_MIRROR%/debian}/debian-security
  {
    echo "deb $ITEST_DEBIAN_MIRROR $ITEST_DEBIAN_SUITE main"
    echo "deb $ITEST_DEBIAN_MIRROR $ITEST_DEBIAN_SUITE-updates main"
    [[ "$ITEST_DEBIAN_MIRROR" == */debian ]] && echo "deb $sec_mirror $ITEST_DEBIAN_SUITE-security main"
  } > "$tmp/root/etc/apt/sources.list"
  # Smaller image; apt-get update is run by every derived build anyway.
  rm -rf "$tmp/root/var/lib/apt/lists/"* "$tmp/root/var/cache/apt/"*.bin "$tmp/root/var/cache/apt/archives/"*.deb
  : > "$tmp/root/etc/hostname"
  itest_log "docker import -> $IMG_BASE"
  tar --numeric-owner -C "$tmp/root" -c . \
    | docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL org.opencontainers.image.description=debootstrap-minbase-$ITEST_DEBIAN_SUITE gitlab-cluster-test=1" \
        - "$IMG_BASE" >/dev/null || rc=$?
  _rootfs_cleanup "$tmp"
  (( rc == 0 )) || itest_die "docker import failed"
}

# _context_hash DIR PARENT_ID: hash of all files (relative names + contents).
_context_hash() {
  local dir=$1 parent=$2
  {
    echo "parent=$parent"
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    # the executable bit matters for COPY'd scripts
    (cd "$dir" && find . -type f -perm -u+x | LC_ALL=C sort)
  } | sha256sum | cut -c1-12
}

# build_image NAME PARENT_REF -> prints the tag it built or reused on stdout
build_image() {
  local name=$1 parent=$2 dir="$ITEST_DIR/images/$1" parent_id hash tag
  [[ -f "$dir/Dockerfile" ]] || itest_die "no $dir/Dockerfile"
  parent_id=$(_image_id "$parent") || itest_die "parent image $parent missing"
  hash=$(_context_hash "$dir" "$parent_id")
  tag="$ITEST_IMAGE_PREFIX/$name:h-$hash"
  if [[ -z "${ITEST_REBUILD:-}" ]] && _image_exists "$tag"; then
    itest_log "reusing $tag"
  else
    mkdir -p "$ITEST_BUILD_LOG_DIR"
    local t0; t0=$(itest_now)
    itest_log "building $tag (log: $ITEST_BUILD_LOG_DIR/$name.log)"
    if ! timeout 1200 docker build --build-arg "BASE=$parent" \
          --label gitlab-cluster-test=1 --label "gitlab-cluster-test.hash=$hash" \
          -t "$tag" "$dir" >"$ITEST_BUILD_LOG_DIR/$name.log" 2>&1; then
      tail -n 30 "$ITEST_BUILD_LOG_DIR/$name.log" >&2
      itest_die "docker build of $name failed"
    fi
    itest_log "built $tag in $(( $(itest_now) - t0 )) s"
  fi
  docker tag "$tag" "$ITEST_IMAGE_PREFIX/$name:latest"
  # drop tags of earlier builds of this image (their inputs changed); an image
  # still used by a container is kept (docker rmi refuses, ignored)
  local old
  for old in $(docker images --format '{{.Repository}}:{{.Tag}}' "$ITEST_IMAGE_PREFIX/$name" | grep ':h-'); do
    [[ "$old" == "$tag" ]] || docker rmi "$old" >/dev/null 2>&1 || true
  done
  echo "$tag"
}

# build_all_images: the images phase 2 uses (sets IMG_BASE IMG_SSHD IMG_HOST
# IMG_STANDIN IMG_PG_STANDIN IMG_REDIS_STANDIN IMG_NGINX_STANDIN); with
# ITEST_PHASE1=1 also the phase-1 self-check images (IMG_DATA IMG_LB).
build_all_images() {
  build_base_image
  # build_image runs in $(...): its itest_die only ends the subshell, hence || itest_die
  IMG_SSHD=$(build_image sshd "$IMG_BASE") || itest_die "image sshd"
  IMG_HOST=$(build_image host "$IMG_SSHD") || itest_die "image host"
  IMG_STANDIN=$(build_image gitlab-standin "$IMG_SSHD") || itest_die "image gitlab-standin"
  IMG_PG_STANDIN=$(build_image postgres-standin "$IMG_BASE") || itest_die "image postgres-standin"
  IMG_REDIS_STANDIN=$(build_image redis-standin "$IMG_BASE") || itest_die "image redis-standin"
  IMG_NGINX_STANDIN=$(build_image nginx-standin "$IMG_BASE") || itest_die "image nginx-standin"
  if [[ -n "${ITEST_PHASE1:-}" ]]; then
    IMG_DATA=$(build_image data "$IMG_SSHD") || itest_die "image data"
    IMG_LB=$(build_image lb "$IMG_SSHD") || itest_die "image lb"
  fi
  export IMG_BASE IMG_SSHD IMG_HOST IMG_STANDIN IMG_PG_STANDIN IMG_REDIS_STANDIN IMG_NGINX_STANDIN IMG_DATA IMG_LB
}

# build_dockerhost_images: build_all_images plus IMG_DOCKERHOST, the host image with its own
# dockerd (lib/dockerhost.sh); apart, so run.sh does not build it.
build_dockerhost_images() {
  build_all_images
  IMG_DOCKERHOST=$(build_image dockerhost "$IMG_HOST") || itest_die "image dockerhost"
  export IMG_DOCKERHOST
}
