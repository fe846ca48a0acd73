#!/usr/bin/env bash
# Sets up everything agentcorp needs on a fresh Debian machine: system packages, then the
# Python package. Idempotent and quick when everything is already there.
#   bash sandboxes/install.sh          runtime (the demo company)
#   bash sandboxes/install.sh --dev    plus test and lint tools
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
extras="ray,demo"
[ "${1:-}" = "--dev" ] && extras="dev,ray,demo"

mapfile -t pkgs < <(grep -v -E '^\s*(#|$)' "$here/apt-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c "import agentcorp, sys; sys.exit(0)" 2>/dev/null || [ "${AGENTCORP_REINSTALL:-1}" = "1" ]; then
  "$PY" -m pip install -q --disable-pip-version-check -e "$root[$extras]"
fi
echo "install.sh: ready" >&2
