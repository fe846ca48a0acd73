#!/usr/bin/env bash
# Sourced by the container proofs: picks Docker where a Docker engine runs, else installs and
# configures Podman (no registry here: the base image is made with debootstrap). Exports ENGINE.
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  ENGINE=podman
  need=()
  for p in podman runc catatonit debootstrap fuse-overlayfs containernetworking-plugins; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "engine: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  mkdir -p /etc/containers/containers.conf.d
  cp "$_here/containers.conf" /etc/containers/containers.conf.d/agentcorp.conf
  ENGINE=podman bash "$_here/base-image.sh"
fi
export ENGINE
