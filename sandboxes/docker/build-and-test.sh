#!/usr/bin/env bash
# Proves the image for real: builds the top-level Dockerfile (Podman here, Docker where a
# Docker engine runs), then inside the container, with no network and as the non-root user:
# `agentcorp validate` and one offline sample-company task, whose session must land on the
# mounted volume on the host. Prints one JSON line with the figures. Needs root for Podman.
#
#   bash sandboxes/docker/build-and-test.sh [TASK_ID]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
TASK="${1:-${AGENTCORP_DOCKER_TASK:-log-support-call}}"
IMAGE="${AGENTCORP_IMAGE:-localhost/agentcorp:test}"
say() { echo "build-and-test: $*" >&2; }

if docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  ENGINE=podman
  need=()
  for p in podman runc catatonit debootstrap fuse-overlayfs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  mkdir -p /etc/containers/containers.conf.d
  cp "$here/containers.conf" /etc/containers/containers.conf.d/agentcorp.conf
  ENGINE=podman bash "$here/base-image.sh"
fi
export ENGINE

t0=$(date +%s)
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt)
say "building $IMAGE with $ENGINE"
BUILD_FMT=(); [ "$ENGINE" = podman ] && BUILD_FMT=(--format docker)
build() {
  $ENGINE build "${BUILD_FMT[@]}" --network host "${secret[@]}" -t "$IMAGE" -f "$root/Dockerfile" "$root" \
    > /tmp/agentcorp-build.log 2>&1
}
# One retry: a mirror hiccup during apt-get or pip should not fail the proof.
build || { say "build failed once; retrying"; build; } \
  || { tail -40 /tmp/agentcorp-build.log >&2; say "build failed (log: /tmp/agentcorp-build.log)"; exit 1; }
t1=$(date +%s)

data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
chown 10001:10001 "$data"
run() { $ENGINE run --rm --init --network none -v "$data:/data" "$IMAGE" "$@"; }

uid="$($ENGINE run --rm --network none --entrypoint id "$IMAGE" -u)"
[ "$uid" != "0" ] || { say "image runs as root"; exit 1; }
run doctor --quiet
run validate /opt/agentcorp/tasks/acme
say "running task $TASK offline inside the container"
run run /opt/agentcorp/tasks/acme --task "$TASK" --sessions /data/sessions
manifest="$(find "$data/sessions" -name manifest.json | head -1)"
[ -n "$manifest" ] || { say "no session landed on the volume"; exit 1; }
python3 - "$manifest" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
outcome = m.get("outcome")
status = outcome.get("status") if isinstance(outcome, dict) else outcome
assert status in ("pass", "passed"), f"task did not pass inside the container: {outcome!r}"
PY
t2=$(date +%s)
size=$($ENGINE image inspect --format '{{.Size}}' "$IMAGE")
printf '{"engine": "%s", "image_bytes": %s, "image_mb": %s, "build_s": %s, "run_s": %s, "uid": %s, "task": "%s", "session": "%s"}\n' \
  "$ENGINE" "$size" "$((size / 1000000))" "$((t1 - t0))" "$((t2 - t1))" "$uid" "$TASK" "${manifest#"$data"/}"
