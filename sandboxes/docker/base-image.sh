#!/usr/bin/env bash
# Makes the Dockerfile's base image (debian:bookworm-slim) without a container registry:
# debootstrap a bookworm minbase root filesystem from the Debian mirror apt already uses and
# import it under that name. Does nothing when the image already exists. Needs root.
set -euo pipefail
ENGINE="${ENGINE:-podman}"
IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
if $ENGINE image exists "$IMAGE" 2>/dev/null; then
  echo "base-image: $IMAGE present" >&2; exit 0
fi
mirror="$(grep -h -E '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 | awk '{print $2}')"
[ -n "$mirror" ] || mirror="$(grep -h -E '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
[ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
cache="${AGENTCORP_CACHE:-/var/cache/agentcorp}"
mkdir -p "$cache"
tarball="$cache/bookworm-minbase.tar"
if [ ! -s "$tarball" ]; then
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  echo "base-image: debootstrap bookworm minbase from $mirror" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
  # Same trimming as the official slim image: no docs, man pages or apt lists.
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
$ENGINE import --change 'CMD ["bash"]' "$tarball" "$IMAGE" >/dev/null
echo "base-image: imported $IMAGE" >&2
