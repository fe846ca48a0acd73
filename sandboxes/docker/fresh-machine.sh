#!/usr/bin/env bash
# Proves README command 1 on a fresh machine whose Python is "externally managed" (PEP 668):
# a container of bare Debian 12 (the debootstrapped base image plus only python3 and
# python3-venv) holding nothing but a fresh clone of this repository runs the README's first
# command exactly as written, as root, and the demo company must pass. Needs root for Podman.
#
#   bash sandboxes/docker/fresh-machine.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
IMAGE="${AGENTCORP_FRESH_IMAGE:-localhost/agentcorp-fresh-debian:12}"
say() { echo "fresh-machine: $*" >&2; }

# shellcheck source=engine.sh
source "$here/engine.sh"

# README command 1, as written: the first line after "# 1." in the README's code block.
cmd="$(awk '/^# 1\./{getline; print; exit}' "$root/README.md")"
[ -n "$cmd" ] || { say "README has no command 1"; exit 1; }
say "README command 1: $cmd"

if ! $ENGINE image exists "$IMAGE" 2>/dev/null && ! $ENGINE image inspect "$IMAGE" >/dev/null 2>&1; then
  ctx="$(mktemp -d)"
  cat > "$ctx/Containerfile" <<'CF'
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
CF
  BUILD_FMT=(); [ "$ENGINE" = podman ] && BUILD_FMT=(--format docker)
  $ENGINE build "${BUILD_FMT[@]}" --network host -t "$IMAGE" "$ctx" >/tmp/agentcorp-fresh-build.log 2>&1 \
    || { tail -20 /tmp/agentcorp-fresh-build.log >&2; say "base build failed"; exit 1; }
  rm -rf "$ctx"
fi
$ENGINE run --rm --network none "$IMAGE" python3 -c 'import sysconfig, pathlib, sys; sys.exit(0 if pathlib.Path(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED").exists() else 1)' \
  || { say "the image's Python is not externally managed: not a faithful fresh Debian"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$root" "$work/agentcorp"
# This host reaches PyPI through a TLS-inspecting proxy: hand pip the host's CA bundle.
ca=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/host-ca.crt:ro -e PIP_CERT=/etc/host-ca.crt)
t0=$(date +%s)
set +e
# Its own network namespace: its loopback services never meet the host's (outbound still works).
$ENGINE run --rm --init "${ca[@]}" -v "$work/agentcorp:/src" -w /src "$IMAGE" \
  bash -c "$cmd" >"$work/out.log" 2>&1
code=$?
set -e
t1=$(date +%s)
if [ "$code" != 0 ]; then
  keep="${AGENTCORP_FRESH_KEEP:-/tmp/agentcorp-fresh-runs}"
  rm -rf "$keep"; mkdir -p "$keep"
  cp -r "$work/agentcorp/runs" "$work/out.log" "$keep/" 2>/dev/null || true
  tail -40 "$work/out.log" >&2
  say "sessions and output kept in $keep"
  say "README command 1 exited $code on bare Debian 12"; exit 1
fi
passed=$(grep -rl '"status": *"pass' "$work/agentcorp/runs" --include=manifest.json 2>/dev/null | wc -l)
[ "$passed" -gt 0 ] || { tail -20 "$work/out.log" >&2; say "no passed session in runs/"; exit 1; }
printf '{"engine": "%s", "command": "%s", "seconds": %s, "passed_sessions": %s}\n' \
  "$ENGINE" "${cmd//\"/\\\"}" "$((t1 - t0))" "$passed"
