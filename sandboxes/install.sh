#!/usr/bin/env bash
# Sets up everything agentcorp needs on a fresh Debian/Ubuntu machine: system packages, then a
# virtual environment of its own (.venv in the checkout) holding agentcorp and its Python
# dependencies. It never installs into the system Python, so it works where that Python is
# "externally managed" (PEP 668: Debian 12, Ubuntu 24.04) as well as with a user Python.
# Idempotent and quick when everything is already there.
#   bash sandboxes/install.sh          runtime (the demo company)
#   bash sandboxes/install.sh --dev    plus test and lint tools
# Afterwards: .venv/bin/agentcorp and .venv/bin/python (or `source .venv/bin/activate`).
# AGENTCORP_VENV=DIR puts the environment elsewhere; PYTHON=... picks the interpreter it is made from.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
extras="ray,demo"
lists=("$here/apt-packages.txt")
if [ "${1:-}" = "--dev" ]; then
  extras="dev,ray,demo"
  lists+=("$here/apt-packages-dev.txt")
fi

pkgs=()
for f in "${lists[@]}"; do
  [ -f "$f" ] || continue
  mapfile -t -O "${#pkgs[@]}" pkgs < <(grep -v -E '^\s*(#|$)' "$f")
done
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

VENV="${AGENTCORP_VENV:-$root/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "install.sh: creating the virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
# Re-install only when what is asked for changed (pyproject, extras) or agentcorp is missing.
stamp="$VENV/.agentcorp-install"
want="$(cat "$root/pyproject.toml" <(echo "$extras" "$root") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$VENV/bin/python" -c "import agentcorp" 2>/dev/null; then
  echo "install.sh: installing agentcorp[$extras] into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$root[$extras]"
  echo "$want" > "$stamp"
fi
echo "install.sh: ready ($VENV/bin/agentcorp)" >&2
