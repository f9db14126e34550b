#!/usr/bin/env bash
# Local base images for machines that reach Debian's packages but no image registry: a Debian bookworm root
# file system made by debootstrap and imported with `docker import`, then Python 3.11 (bookworm's python3),
# PostgreSQL 15 and Redis 7 on it, each from Debian's packages. Images are kept by Docker and rebuilt only when
# this recipe changes (label energyarb.recipe) or with REFRESH=1; the .deb files debootstrap fetched are kept in
# $DEBOOTSTRAP_CACHE. Prints the three image names as shell assignments (BASE_IMAGE=..., ...).
set -euo pipefail
cd "$(dirname "$0")"

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${DEBOOTSTRAP_CACHE:-/var/cache/energyarb-debootstrap}"
DOCKER="${DOCKER:-docker}"
PREFIX="${BASE_IMAGE_PREFIX:-energyarb-local}"
recipe_hash() {  # of this script and the given files: a change rebuilds only the images made from them
  cat base-images.sh "$@" | sha256sum | cut -c1-12
}

log() { echo "base-images: $*" >&2; }

is_current() {  # IMAGE HASH: the image exists and was built by this recipe
  [ "${REFRESH:-0}" != 1 ] &&
    [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "energyarb.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

build_debian() {
  local image="$PREFIX/debian:bookworm" hash rootfs
  hash="$(recipe_hash)"
  is_current "$image" "$hash" && return 0
  log "debootstrap bookworm (minbase) from $MIRROR"
  rootfs="$(mktemp -d /tmp/energyarb-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' RETURN
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include=ca-certificates --cache-dir="$CACHE" bookworm "$rootfs" "$MIRROR" \
    >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
SOURCES
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "$DOCKER" import \
    --change "LABEL energyarb.recipe=$hash" --change 'CMD ["bash"]' \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$image" >/dev/null
  log "imported $image"
}

build_on_debian() {  # NAME TAG [FILE...]: $PREFIX/NAME:TAG from NAME.Dockerfile (and FILEs) on the imported Debian
  local name="$1" tag="$2" image="$PREFIX/$1:$2" hash
  shift 2
  hash="$(recipe_hash "$name.Dockerfile" "$@")"
  is_current "$image" "$hash" && return 0
  log "building $image"
  "$DOCKER" build --quiet --label "energyarb.recipe=$hash" --build-arg "DEBIAN_IMAGE=$PREFIX/debian:bookworm" \
    -f "$name.Dockerfile" -t "$image" . >/dev/null
}

build_debian
build_on_debian python 3.11-bookworm
build_on_debian postgres 15-bookworm postgres-entrypoint.sh
build_on_debian redis 7-bookworm
echo "BASE_IMAGE=$PREFIX/python:3.11-bookworm"
echo "POSTGRES_IMAGE=$PREFIX/postgres:15-bookworm"
echo "REDIS_IMAGE=$PREFIX/redis:7-bookworm"
