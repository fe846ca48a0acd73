"""The action cache on ``agentcorp run``'s real path, on real mousepad in our own Xvfb.

1. A steps-only task passes offline and its grounded actions are cached.
2. The same task again replays from its skill: every action has source ``skill``, no
   scripted step is grounded and no model is called; the output says ``via skill``.
3. The target text renamed: the replay diverges at that action and the (fake, loopback)
   model takes over from that step; the task passes and the cache is repaired.
4. The repaired cache runs the renamed case with no model at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcorp.actor.cached import cache_sequence, script_positions
from agentcorp.actor.script import parse_step
from agentcorp.app.attempt import path_taken
from agentcorp.app.config import resolve_config
from agentcorp.cli import main
from agentcorp.errors import ConfigError
from agentcorp.grounding.cache import CachedAction
from agentcorp.record.session import open_session
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import Action, ActionStep, ModelCallStep

LINES = "Quarterly report for Acme Corp\nInvoice 2041 approved\nNext review: Monday morning\n"

COMPANY = """\
version: 1
company: cache-co
roles:
  writer: {title: Writer, sandbox: notes}
sandboxes:
  notes:
    kind: desktop
    screen: [1280, 800]
    apps:
      - {name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}
    files: {"~/notes.txt": notes.txt}
tasks:
  - id: extend-review
    role: writer
    description: Append " and lunch" to the line of the next review, and save.
    steps:
      - click: Monday morning
      - key: End
      - type: " and lunch"
      - key: ctrl+s
    success:
      check: file_contains
      path: "~/notes.txt"
      regex: 'Next review: Monday (morning|at nine) and lunch\\n'
    budgets: {steps: 20, wall_clock: 5m}
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "XAI_API_KEY",
        "OPENAI_API_KEY",
        "AGENTCORP_API_KEY",
        "AGENTCORP_PROVIDER",
        "AGENTCORP_BASE_URL",
        "AGENTCORP_SESSIONS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _session(root: Path) -> Path:
    [m] = list(root.glob("*/*/manifest.json"))
    return m.parent


def _cache_doc(folder: Path) -> dict[str, object]:
    [f] = list(folder.glob("*.json"))
    doc = json.loads(f.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.mark.slow
def test_run_caches_runs_diverges_and_repairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text(LINES, encoding="utf-8")
    cache = tmp_path / "cache"
    base = ["run", str(co), "--cache-dir", str(cache)]

    # 1. steps, then stored
    code, out, err = _run([*base, "--sessions", str(tmp_path / "s1")], capsys)
    assert code == 0, out + err
    assert "extend-review=steps" in out.splitlines()[0]
    assert "✔ extend-review pass (via steps)" in err
    doc = _cache_doc(cache)
    kinds = [a["action"]["kind"] for a in doc["actions"]]  # type: ignore[index,union-attr]
    assert kinds == ["click", "key", "type", "key"]
    assert doc["meta"]["script_positions"] == [0, 1, 2, 3]  # type: ignore[index]

    # 2. from the cache: no grounding by steps, no model
    code, out, err = _run([*base, "--sessions", str(tmp_path / "s2")], capsys)
    assert code == 0, out + err
    assert "extend-review=skill" in out.splitlines()[0]
    assert "✔ extend-review pass (via skill)" in err
    s = open_session(_session(tmp_path / "s2"))
    acts = [st for st in s.steps() if isinstance(st, ActionStep)]
    assert [a.action.kind for a in acts] == ["click", "key", "type", "key"]
    assert {a.source for a in acts} == {"skill"}
    assert not any(isinstance(st, ModelCallStep) for st in s.steps())
    assert s.manifest["outcome"]["status"] == "pass"
    # A cached run is a replayable session too: the cached actions are redone on its frames.
    code, out, err = _run(["replay", str(s.folder), "--mode", "decision", "--no-sandbox"], capsys)
    assert code == 0, out + err
    # Sessions recorded before "cached_run" was named so keep the sequence under its old key.
    manifest_path = s.folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["cache_replay"] = manifest.pop("cached_run")
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    code, out, err = _run(["replay", str(s.folder), "--mode", "decision", "--no-sandbox"], capsys)
    assert code == 0, out + err

    # 3. renamed target: diverges at the click, the model takes over from that step
    (co / "notes.txt").write_text(
        LINES.replace("Monday morning", "Monday at nine"), encoding="utf-8"
    )
    script = [
        {
            "when": {"purpose": "act"},
            "tool_calls": [{"name": "key", "arguments": {"keys": "ctrl+End"}}],
        },
        {"when": {"purpose": "act"}, "tool_calls": [{"name": "key", "arguments": {"keys": "Up"}}]},
        {
            "when": {"purpose": "act"},
            "tool_calls": [{"name": "done", "arguments": {"summary": "caret on the review line"}}],
        },
    ]
    with FakeOpenAIServer(script) as srv:
        code, out, err = _run(
            [
                *base,
                "--sessions",
                str(tmp_path / "s3"),
                "--base-url",
                srv.base_url,
                "--actor-model",
                "a",
                "--no-plan",
            ],
            capsys,
        )
        calls = len(srv.chat_requests)
    assert code == 0, out + err
    assert "✔ extend-review pass (via model (skill repaired at step 1))" in err
    assert calls == 3
    s = open_session(_session(tmp_path / "s3"))
    errors = [st for st in s.steps() if type(st).__name__ == "ErrorStep"]
    assert any("skill diverged at action 1/4" in str(getattr(e, "message", "")) for e in errors), (
        errors
    )
    doc = _cache_doc(cache)
    # The repair is a branch beside the trunk, forking at the first action.
    trunk = [a["action"]["kind"] for a in doc["actions"]]  # type: ignore[index,union-attr]
    assert trunk == ["click", "key", "type", "key"]
    [branch] = doc["branches"]  # type: ignore[misc]
    assert (branch["parent"], branch["at"]) == (0, 0)
    kinds = [a["action"]["kind"] for a in branch["actions"]]
    keys = [a["action"].get("keys") for a in branch["actions"]]
    assert kinds == ["key", "key", "key", "type", "key"], kinds
    assert keys[:2] == ["ctrl+End", "Up"]
    assert branch["positions"] == [0, 0, 1, 2, 3]
    # ... and so is one where the model took over from the cache.
    code, out, err = _run(["replay", str(s.folder), "--mode", "decision", "--no-sandbox"], capsys)
    assert code == 0, out + err

    # 4. the repaired cache runs the renamed case offline
    code, out, err = _run([*base, "--sessions", str(tmp_path / "s4")], capsys)
    assert code == 0, out + err
    assert "✔ extend-review pass (via skill)" in err


@pytest.mark.slow
def test_no_cache_flag_neither_reads_nor_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text(LINES, encoding="utf-8")
    cache = tmp_path / "cache"
    code, out, err = _run(["run", str(co), "--cache-dir", str(cache), "--no-cache"], capsys)
    assert code == 0, out + err
    assert "(via steps)" in err
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_cache_dir_garbage_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve_config(cache_dir=f, environ={})
    assert str(info.value) == f"--cache-dir: {f} exists and is not a folder"
    with pytest.raises(ConfigError) as info:
        resolve_config(environ={"AGENTCORP_CACHE_DIR": str(f)})
    assert "--cache-dir" in str(info.value) and "\n" not in str(info.value)
    cfg = resolve_config(environ={"AGENTCORP_CACHE_DIR": str(tmp_path / "c")}, no_cache=True)
    assert cfg.cache is False and cfg.cache_dir == tmp_path / "c"


def test_path_names() -> None:
    assert path_taken("scripted") == "steps"
    assert path_taken("planned") == "model"
    assert path_taken("skill+scripted", 3) == "steps (skill repaired at step 3)"
    assert path_taken("skill") == "skill"
    assert path_taken("recording") == "recording"


def test_script_positions_and_wait_for_entries() -> None:
    script = [
        parse_step(s)
        for s in (
            {"open_url": "http://x/"},
            {"type": "admin", "into": "Username"},
            {"wait_for": "Site administration"},
            {"click": "Save"},
            {"key": "Return"},
        )
    ]
    # the click on "Save" could not be grounded: the model did it in two actions
    sources = ["script", "script", "script", "model", "model", "script"]
    pos = script_positions(script, sources)
    assert pos == [0, 1, 1, 3, 3, 4]
    entries = [CachedAction(Action("key", keys=str(i))) for i in range(6)]
    seq, seq_pos = cache_sequence(script, entries, pos)
    assert [e.action.kind for e in seq] == ["key", "key", "key", "wait_for", "key", "key", "key"]
    assert seq[3].action.target == "Site administration"
    assert seq_pos == [0, 1, 1, 2, 3, 3, 4]
    # records that do not fit the script are not guessed at
    assert script_positions(script, ["script", "model"]) is None


@pytest.mark.slow
def test_regrade_of_a_real_run_reevaluates_its_file_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text(LINES, encoding="utf-8")
    code, out, err = _run(["run", str(co), "--no-cache", "--sessions", str(tmp_path / "s")], capsys)
    assert code == 0, out + err
    folder = _session(tmp_path / "s")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["company_file"] == str((co / "company.yaml").resolve())
    files = manifest["final_state"]["files"]
    assert list(files) == ["~/notes.txt"]
    kept = (folder / "blobs" / files["~/notes.txt"]).read_text(encoding="utf-8")
    assert "Monday morning and lunch" in kept
    code, out, err = _run(["replay", str(folder), "--mode", "regrade"], capsys)
    assert code == 0, out + err
    # The kept file changed (a valid blob, so not a damaged recording): the check now fails.
    changed = kept.replace(" and lunch", "").encode()
    sha = hashlib.sha256(changed).hexdigest()
    (folder / "blobs" / sha).write_bytes(changed)
    manifest["final_state"]["files"]["~/notes.txt"] = sha
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, out, err = _run(["replay", str(folder), "--mode", "regrade"], capsys)
    assert code == 1, out + err
    assert "now fail, recorded pass" in out + err
    # A live replay starts apps only from the company named with --company, never from the
    # one the recording names. (Whether the live screen then matches is action replay's own
    # business, tested in tests/record.)
    code, out, err = _run(["replay", str(folder), "--mode", "action"], capsys)
    assert code == 2 and "--company" in err, out + err
    code, out, err = _run(["replay", str(folder), "--mode", "action", "--company", str(co)], capsys)
    assert code != 2, out + err
    assert "action replay" in out + err
