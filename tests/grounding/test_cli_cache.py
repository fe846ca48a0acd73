import subprocess
import sys
from pathlib import Path

from agentcorp.cli import main
from agentcorp.grounding.cache import ActionCache, CachedAction, anchor_for
from agentcorp.types import Action
from tests.grounding._data import frame


def fill(d: Path) -> ActionCache:
    c = ActionCache(d)
    c.store(
        "task1",
        [
            CachedAction(
                Action("click", x=5, y=6, target="Save"),
                anchor_for(frame("form.png"), 5, 6, "Save"),
            ),
            CachedAction(Action("key", keys="ctrl+s")),
        ],
        {"task": "save-report"},
    )
    return c


def test_ls_show_clear(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    fill(tmp_path)
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "task1" in out and "2 actions" in out and "save-report" in out
    assert main(["cache", "show", "task1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "click" in out and "anchor='Save'" in out and "ctrl+s" in out
    assert main(["cache", "clear", "task1", "--dir", str(tmp_path)]) == 0
    assert "removed 1 cached sequence" in capsys.readouterr().out
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 0
    assert "no cached action sequences" in capsys.readouterr().out


def test_garbage_gives_one_line_and_exit_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    fill(tmp_path)
    (tmp_path / "bad.json").write_text('{"version": 1, "actions": [{"action": 3}]}')
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json" in err and "actions[0]" in err
    assert main(["cache", "show", "nope", "--dir", str(tmp_path)]) == 2
    assert "cache key 'nope': not in" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["cache", "ls", "--dir", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert (tmp_path / "task1.json").exists()  # nothing lost


def test_env_dir_and_real_subprocess(tmp_path: Path) -> None:
    fill(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "cache", "clear"],
        env={"AGENTCORP_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "removed 1 cached sequence" in r.stdout
    assert not list(tmp_path.glob("*.json"))
