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
# The RFB client ships in agentcorp: use the environment install.sh made.
PY="${AGENTCORP_PYTHON:-$root/.venv/bin/python}"

# shellcheck source=engine.sh
source "$here/engine.sh"

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
run() { $ENGINE run --rm --init --no-healthcheck --network none -v "$data:/data" "$IMAGE" "$@"; }

uid="$($ENGINE run --rm --no-healthcheck --network none --entrypoint id "$IMAGE" -u)"
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
say "live view: refused without a password; with one, a VNC handshake through the mapped port"
set +e
run run /opt/agentcorp/sandboxes/docker/watch.yaml --live-view >/dev/null 2>&1
code=$?
set -e
[ "$code" = 2 ] || { say "live view without a password exited $code, expected 2"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
vport=$(free_port); wport=$(free_port)
AGENTCORP_VNC_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
export AGENTCORP_VNC_PASSWORD  # passed by name (-e VAR), so it shows on no command line
cid=$($ENGINE run -d --rm --init --no-healthcheck -e AGENTCORP_VNC_PASSWORD -p "127.0.0.1:$vport:5900" \
  -p "127.0.0.1:$wport:6080" "$IMAGE" run /opt/agentcorp/sandboxes/docker/watch.yaml --live-view)
stop_watch() { $ENGINE rm -f "$cid" >/dev/null 2>&1 || true; rm -rf "$data"; }
trap stop_watch EXIT
deadline=$(( $(date +%s) + 90 ))
until "$PY" -m agentcorp.testing.rfb 127.0.0.1 "$vport" >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] || { say "no VNC handshake on the mapped port"; $ENGINE logs "$cid" >&2 || true; exit 1; }
  sleep 1
done
if AGENTCORP_VNC_PASSWORD=wrong-password "$PY" -m agentcorp.testing.rfb 127.0.0.1 "$vport" >/dev/null 2>&1; then
  say "live view accepted a wrong password"; exit 1
fi
python3 -c "import sys, urllib.request; sys.exit(0 if b'noVNC' in urllib.request.urlopen('http://127.0.0.1:$wport/vnc.html', timeout=10).read() else 1)" \
  || { say "noVNC is not served on the mapped port"; exit 1; }
$ENGINE rm -f "$cid" >/dev/null 2>&1 || true
unset AGENTCORP_VNC_PASSWORD

t2=$(date +%s)
size=$($ENGINE image inspect --format '{{.Size}}' "$IMAGE")
printf '{"engine": "%s", "image_bytes": %s, "image_mb": %s, "build_s": %s, "run_s": %s, "uid": %s, "task": "%s", "session": "%s", "live_view_handshake": true}\n' \
  "$ENGINE" "$size" "$((size / 1000000))" "$((t1 - t0))" "$((t2 - t1))" "$uid" "$TASK" "${manifest#"$data"/}"
