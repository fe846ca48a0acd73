"""Ray stays optional: nothing but the Ray backend's functions imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_and_cli_import_without_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # any 'import ray' now fails
        "import agentcorp.cli, agentcorp.fleet.local, agentcorp.fleet.sim\n"
        "import agentcorp.fleet.ray_backend, agentcorp.fleet._worker\n"
        "from agentcorp.cli import main\n"
        "sys.exit(main(['fleet', 'simulate', '--nodes', '5', '--tasks', '20']))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "simulated 5 nodes, 20 tasks" in r.stdout


def test_ray_backend_without_ray_is_a_setup_error_with_the_hint(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from agentcorp.cli import main\n"
        "sys.exit(main(['run', 'tasks/acme', '--ray', 'auto', '--sessions', sys.argv[1]]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "agentcorp[ray]"' in lines[0], r.stderr
    assert not (tmp_path / "run").exists()
