"""``agentcorp run --task ID --inputs FILE``: a batch learns first, then fans out from the skill.

Real path, real apps: the web form in Chromium (a service of the company) and the Tk form on
our own Xvfb, each task model-driven (no ``steps``) with the model a loopback fake server.

1. ``--inputs`` with 5 rows: row 1 is learned by the model, the other rows wait for it, then
   run from the skill: every instance is its own ledger entry, session and result line, the
   summary and ``--json`` list each with its inputs and how it ran, and the server gets no
   request after the first episode.
2. A new run with 3 more rows on 2 workers: all from the skill (it lives beside the company),
   no request at all.
3. ``--no-model`` and the Save button moved: the instance fails at once naming the action.
4. Bad rows: one line naming the file, row and column, exit 2, nothing run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.testing.skills_apps import model_script, write_company


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agentcorp(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTCORP_", "XAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "agentcorp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(doc, dict)
    return doc


@pytest.mark.slow
@pytest.mark.parametrize("task_id", ["add-web-customer", "add-customer"])
def test_batch_learns_first_then_fans_out_and_no_model_fails_fast(
    tmp_path: Path, task_id: str
) -> None:
    write_company(tmp_path / "co", free_port())
    (tmp_path / "rows.csv").write_text('name\nAnn\nBob\nZoë Ng\n"Lee, Kim"\n2041\n')
    (tmp_path / "more.jsonl").write_text('{"name": "Mo"}\n{"name": "7"}\n{"name": "Cy Ann"}\n')
    with FakeOpenAIServer(model_script("Ann", task_id)) as srv:
        model = ["--base-url", srv.base_url, "--actor-model", "fake-actor", "--no-plan"]
        batch = ["run", "co", "--task", task_id, *model]
        first = agentcorp([*batch, "--inputs", "rows.csv", "--sessions", "s1", "--json"], tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"{task_id} ×5=model" in first.stderr.splitlines()[0]
        learned = len(srv.chat_requests)
        assert learned == 4
        doc = report(first)
        rows = doc["tasks"]
        assert [r["instance"] for r in rows] == [f"{task_id}#{i}" for i in range(1, 6)]
        assert [r["inputs"]["name"] for r in rows] == ["Ann", "Bob", "Zoë Ng", "Lee, Kim", "2041"]
        assert [r["mode"] for r in rows] == ["model", *["skill"] * 4]
        assert all(r["status"] == "pass" for r in rows)
        assert [r["tokens"] for r in rows][1:] == [0, 0, 0, 0]
        assert len({r["session"] for r in rows}) == 5
        # The trace marks which actions came from the skill.
        trace = Path(str(rows[1]["session"]) + ".html")
        if not trace.is_absolute():
            trace = tmp_path / trace
        html = trace.read_text(encoding="utf-8")
        assert '"source":"skill"' in html and '"source":"model"' not in html

        second = agentcorp([*batch, "--inputs", "more.jsonl", "--workers", "2"], tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"{task_id} ×3=skill" in second.stdout.splitlines()[0]
        for i, name in enumerate(["Mo", "7", "Cy Ann"], start=1):
            assert f"{task_id}#{i}" in second.stdout and f"(name={name})" in second.stdout
        assert len(srv.chat_requests) == learned  # nothing after the first episode

    (tmp_path / "co" / "layout.txt").write_text("moved\n")
    third = agentcorp(
        ["run", "co", "--task", task_id, "--input", "name=Dee", "--no-model", "--json"],
        tmp_path,
    )
    assert third.returncode == 1, third.stdout + third.stderr
    [row] = report(third)["tasks"]
    assert row["status"] == "fail" and row["inputs"]["name"] == "Dee"
    assert "skill diverged at action 3/3" in row["reason"] and "--no-model" in row["reason"]


def test_bad_rows_are_one_line_exit_2_and_nothing_runs(tmp_path: Path) -> None:
    write_company(tmp_path / "co", free_port())
    (tmp_path / "rows.csv").write_text("name,colour\nAnn,red\n")
    proc = agentcorp(["run", "co", "--task", "add-customer", "--inputs", "rows.csv"], tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "rows.csv: row 1: column 'colour': task 'add-customer' has no such input (inputs: name)"
        )
    )
    proc = agentcorp(["run", "co", "--inputs", "rows.csv"], tmp_path)
    assert proc.returncode == 2 and "a batch runs one task, 3 are selected" in proc.stderr
    proc = agentcorp(["run", "co", "--task", "add-customer", "--input", "nmae=x"], tmp_path)
    assert proc.returncode == 2 and "no selected task has an input named 'nmae'" in proc.stderr
    assert not (tmp_path / "co" / ".agentcorp").exists()
