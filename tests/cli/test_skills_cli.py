"""``agentcorp skills list | show | forget``, in process and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.grounding.cache import ActionCache, Branch, CachedAction, Skill, anchor_for
from agentcorp.types import Action
from tests.grounding._data import frame


def fill(d: Path) -> ActionCache:
    c = ActionCache(d)
    click = CachedAction(
        Action("click", x=5, y=6, target="Save"), anchor_for(frame("form.png"), 5, 6, "Save")
    )
    typed = CachedAction(Action("type", text="{inputs.name}"))
    skill = Skill(
        "k1",
        [
            Branch([typed, click]),
            Branch([typed, CachedAction(Action("key", keys="Return"))], None, 0, 1),
        ],
        {"task": "add-customer", "inputs_bound": ["name"]},
        {1: 2},
    )
    c.save(skill)
    c.store("k2", [CachedAction(Action("key", keys="ctrl+s"))], {"task": "save-report"})
    return c


def test_list_show_forget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path)
    assert main(["skills", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "add-customer  2 actions  2 branches  inputs: name" in out
    assert "save-report  1 actions  1 branch  inputs: -" in out
    assert main(["skills", "show", "add-customer", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trunk: 2 actions" in out and "branch 1 (from 0 at 2): 2 actions" in out
    assert '{"text": "{inputs.name}"}' in out and "anchor='Save'" in out
    assert "diverged at action 2: 2 times" in out
    assert main(["skills", "forget", "add-customer", "--dir", str(tmp_path)]) == 0
    assert "forgot 1 skill" in capsys.readouterr().out
    assert [p.stem for p in tmp_path.glob("*.json")] == ["k2"]


def test_show_unknown_and_garbage_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(tmp_path)
    assert main(["skills", "show", "nope", "--dir", str(tmp_path)]) == 2
    assert "no skill for 'nope'" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"version": 2, "actions": [{"action": 3}]}')
    assert main(["skills", "list", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json" in err and "actions[0].action" in err
    (tmp_path / "old.json").write_text('{"version": 1, "actions": []}')
    (tmp_path / "bad.json").unlink()
    assert main(["skills", "list", "--dir", str(tmp_path)]) == 2
    assert "unsupported skill version 1" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["skills", "list", "--dir", str(f)]) == 2


def test_forget_all_asks_first_and_defaults_to_the_company_folder(tmp_path: Path) -> None:
    co = tmp_path / "co"
    fill(co / ".agentcorp" / "skills")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCORP_")}
    cmd = [sys.executable, "-m", "agentcorp", "skills", "forget", "--company", str(co)]
    no = subprocess.run(cmd, input="n\n", capture_output=True, text=True, env=env, timeout=120)
    assert no.returncode == 1 and "nothing forgotten" in no.stdout
    assert len(list((co / ".agentcorp" / "skills").glob("*.json"))) == 2
    yes = subprocess.run([*cmd, "--yes"], capture_output=True, text=True, env=env, timeout=120)
    assert yes.returncode == 0 and "forgot 2 skills" in yes.stdout
    assert not list((co / ".agentcorp" / "skills").glob("*.json"))
