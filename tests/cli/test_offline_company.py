"""The main job's acceptance test: the whole sample company offline, as a user runs it.

``python -m agentcorp run tasks/acme --sessions DIR`` in a subprocess, with no model
configured and no secrets in the environment, on real apps (mousepad and gnumeric on their
own Xvfb desktops, the Django back office in headless Chromium). Runs once per module
(about a minute): every test below reads the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.spec import load_company

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    sessions: Path
    task_ids: list[str]


@pytest.fixture(scope="module")
def company_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("offline-company")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_PASSWORD")) and not k.startswith("AGENTCORP_")
    }
    # A fresh action cache: this is the first run on a fresh machine.
    env["AGENTCORP_CACHE_DIR"] = str(tmp / "cache")
    sessions = tmp / "sessions"
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "run", str(ACME), "--sessions", str(sessions)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    ids = [t.id for t in load_company(ACME).task_order()]
    return Run(r.returncode, r.stdout, r.stderr, sessions, ids)


def _session_folders(run: Run) -> list[Path]:
    return sorted(m.parent for m in run.sessions.glob("*/*/manifest.json"))


@pytest.mark.slow
def test_the_company_runs_offline_and_says_how(company_run: Run) -> None:
    r = company_run
    assert r.code == 0, r.out + r.err
    first = r.out.splitlines()[0]
    assert "offline (no model configured)" in first
    for task_id in r.task_ids:
        assert f"{task_id}=" in first
    assert "schedule-follow-up=recording" in first  # the model-driven task, by its recording
    for task_id in r.task_ids:
        assert f"✔ {task_id} pass" in r.err, r.err
    assert "Traceback" not in r.err


@pytest.mark.slow
def test_one_session_per_attempt_each_replays_and_reports(
    company_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = company_run
    folders = _session_folders(r)
    attempts = [ln for ln in r.err.splitlines() if ln.startswith("▶ ")]
    assert len(folders) == len(attempts) >= len(r.task_ids)
    assert {f.parent.name for f in folders} == set(r.task_ids)
    for folder in folders:
        code = main(["replay", str(folder), "--mode", "decision", "--no-sandbox"])
        out, err = capsys.readouterr()
        assert code == 0, f"{folder}: {out}{err}"
        html = tmp_path / f"{folder.parent.name}-{folder.name}.html"
        code = main(["report", str(folder), "-o", str(html)])
        out, err = capsys.readouterr()
        assert code == 0 and html.is_file() and html.stat().st_size > 1000, out + err


@pytest.mark.slow
def test_the_last_line_is_a_trace_that_loads_in_chromium(company_run: Run) -> None:
    from playwright.sync_api import sync_playwright

    last = company_run.out.strip().splitlines()[-1]
    assert last.startswith("trace: ")
    index = Path(last.removeprefix("trace: "))
    assert index.is_file()
    pages = [index, *(f.with_suffix(".html") for f in _session_folders(company_run))]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for page_file in pages:
                assert page_file.is_file(), page_file
                page = browser.new_page()
                errors: list[str] = []
                page.on(
                    "console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.goto(page_file.as_uri())
                page.wait_for_load_state("load")
                assert errors == [], f"{page_file}: {errors}"
                if page_file == index:
                    # one link per task: its (last) attempt's trace
                    assert page.locator("a").count() == len(company_run.task_ids)
                page.close()
        finally:
            browser.close()
