"""The desktop backend on a real Xvfb with real apps; every check reads the app's own state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentcorp.errors import SandboxError, SandboxUnavailable
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop
from agentcorp.types import Box
from tests.sandbox.conftest import mousepad_desktop, saved_after, text_rows

UNICODE = 'ÀÉ€ ñ 你好 "quotes" & symbols'


def _mtime(p: Path) -> int:
    return p.stat().st_mtime_ns


def test_unicode_typing_and_ctrl_s_reach_the_saved_file(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    with mousepad_desktop(tmp_path, text="tail\n") as desk:
        path = desk.home / "notes.txt"
        before = _mtime(path)
        desk.key("ctrl+Home")
        desk.type(UNICODE + "\n")
        desk.key("ctrl+s")
        assert saved_after(desk, path, before) == UNICODE + "\ntail\n"


def test_click_lands_on_the_intended_line(notes_desktop: XvfbDesktop) -> None:
    desk = notes_desktop
    rows = text_rows(desk.settle().frame)
    assert len(rows) >= 20, rows
    top, bottom = rows[9]  # line 010
    # Far right of the text on that line: the caret goes to the end of line 010.
    desk.click(600, (top + bottom) // 2)
    desk.settle()  # as the actor does after every action
    desk.type("<X>")
    path = desk.home / "notes.txt"
    before = _mtime(path)
    desk.key("ctrl+s")
    lines = saved_after(desk, path, before).splitlines()
    assert lines[9] == "line 010 alpha<X>"
    assert lines[8] == "line 009 alpha" and lines[10] == "line 011 alpha"


def test_scroll_changes_what_a_click_hits(notes_desktop: XvfbDesktop) -> None:
    desk = notes_desktop
    first_top, first_bottom = text_rows(desk.settle().frame)[0]
    y = (first_top + first_bottom) // 2
    before_frame = desk.screenshot()
    desk.scroll(400, 300, 0, 5)
    moved = desk.settle(since=before_frame)
    assert moved.changed is not None
    desk.click(600, y)
    desk.settle()
    desk.type("<S>")
    path = desk.home / "notes.txt"
    before = _mtime(path)
    desk.key("ctrl+s")
    lines = saved_after(desk, path, before).splitlines()
    marked = [i for i, line in enumerate(lines) if line.endswith("<S>")]
    assert len(marked) == 1 and marked[0] > 0, marked  # not line 001: the view scrolled


def test_drag_selects_text_that_typing_replaces(notes_desktop: XvfbDesktop) -> None:
    desk = notes_desktop
    rows = text_rows(desk.settle().frame)
    y5 = (rows[4][0] + rows[4][1]) // 2
    y7 = (rows[6][0] + rows[6][1]) // 2
    desk.drag([(2, y5), (300, (y5 + y7) // 2), (600, y7)])
    desk.settle()
    desk.type("D")
    path = desk.home / "notes.txt"
    before = _mtime(path)
    desk.key("ctrl+s")
    lines = saved_after(desk, path, before).splitlines()
    assert lines[3] == "line 004 alpha"
    assert lines[4] == "D"
    assert lines[5] == "line 008 alpha"


def test_two_desktops_do_not_see_each_others_input(tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    for d in (a_dir, b_dir):
        (d / "home").mkdir(parents=True)
    with mousepad_desktop(a_dir, "A\n") as a, mousepad_desktop(b_dir, "B\n") as b:
        assert a.display != b.display
        pa, pb = a.home / "notes.txt", b.home / "notes.txt"
        ta, tb = _mtime(pa), _mtime(pb)
        a.key("ctrl+End")
        b.key("ctrl+End")
        a.type("only-a")
        b.type("only-b")
        a.key("ctrl+s")
        b.key("ctrl+s")
        assert saved_after(a, pa, ta) == "A\nonly-a"
        assert saved_after(b, pb, tb) == "B\nonly-b"


def test_window_queries_and_region_capture(notes_desktop: XvfbDesktop) -> None:
    desk = notes_desktop
    title = desk.window_title()
    assert title is not None and "notes.txt" in title
    assert desk.window_class() == "Mousepad"
    # xprop (a separate X client) agrees on the active window: this is the app's state.
    out = subprocess.run(
        ["xprop", "-display", desk.display, "-root", "_NET_ACTIVE_WINDOW"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    active = int(out.split()[-1], 16)
    name = subprocess.run(
        ["xprop", "-display", desk.display, "-id", str(active), "WM_CLASS"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Mousepad" in name
    frame = desk.screenshot(Box(10, 20, 30, 40))
    assert frame.size == (30, 40) and frame.origin == (10, 20)
    win = desk.window_box("notes.txt")
    assert win is not None and win.w > 600 and win.h > 400
    assert desk.screenshot_window("notes.txt").size == (win.w, win.h)
    with pytest.raises(SandboxError, match="not inside"):
        desk.screenshot(Box(1270, 0, 20, 20))


def test_settle_reports_the_changed_region(notes_desktop: XvfbDesktop) -> None:
    desk = notes_desktop
    rows = text_rows(desk.settle().frame)
    desk.click(600, (rows[2][0] + rows[2][1]) // 2)
    since = desk.settle().frame
    desk.type("WWWWWWWWWW")
    result = desk.settle(since=since)
    assert result.stable
    assert result.changed is not None
    # The change is on line 003 (plus possibly the title's "*" modified mark).
    assert (
        result.changed.contains(160, (rows[2][0] + rows[2][1]) // 2)
        or result.changed.bottom >= rows[2][1]
    )


def test_key_combo_and_input_errors_are_one_line(notes_desktop: XvfbDesktop) -> None:
    desk = notes_desktop
    for bad in ("", "ctrl+", "ctrl+nosuchkey", "ctrl++shift", "  "):
        with pytest.raises(SandboxError) as info:
            desk.key(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(SandboxError, match="outside"):
        desk.click(5000, 10)
    with pytest.raises(SandboxError, match="outside"):
        desk.drag([(1, 1), (99999, 1)])
    with pytest.raises(SandboxError, match="unknown secret 'nope'"):
        desk.type("${secrets.nope}")


def test_secrets_are_typed_but_only_by_placeholder(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    src = tmp_path / "s.txt"
    src.write_text("", encoding="utf-8")
    with XvfbDesktop(
        apps=[AppSpec("notes", ["mousepad", "~/s.txt"], wait_for_window="s.txt")],
        files={"~/s.txt": src},
        home=tmp_path / "home",
        secrets={"pw": "hunter2€"},
    ) as desk:
        path = desk.home / "s.txt"
        before = _mtime(path)
        desk.type("pw=${secrets.pw}")
        desk.key("ctrl+s")
        assert saved_after(desk, path, before) == "pw=hunter2€"


def test_pyautogui_backend_types_and_saves(tmp_path: Path) -> None:
    # pyautogui binds to one display per process, so it gets its own interpreter.
    script = f"""
import sys
from pathlib import Path
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop
src = Path({str(tmp_path / "p.txt")!r}); src.write_text("x\\n")
with XvfbDesktop(apps=[AppSpec("n", ["mousepad", "~/p.txt"], wait_for_window="p.txt")],
                 files={{"~/p.txt": src}}, input_backend="pyautogui") as d:
    d.key("ctrl+End")
    d.type("via pyautogui ñ")
    d.key("ctrl+s")
    import time
    p = d.home / "p.txt"
    for _ in range(500):
        if p.read_text() != "x\\n":
            break
        time.sleep(0.02)
    print(repr(p.read_text()))
"""
    out = subprocess.run(
        [os.environ.get("PYTHON", "python3"), "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr("x\nvia pyautogui ñ")


def test_gnumeric_opens_the_books(tmp_path: Path) -> None:
    books = tmp_path / "books.csv"
    books.write_text("date,item,amount\n2026-01-02,paper,12.50\n", encoding="utf-8")
    with XvfbDesktop(
        apps=[AppSpec("office", ["gnumeric", "~/books.csv"], wait_for_window="books.csv")],
        files={"~/books.csv": books},
    ) as desk:
        assert "books.csv" in (desk.window_title() or "")
        assert desk.window_class() == "Gnumeric"
        assert set(desk.pids) == {"Xvfb", "window manager", "session bus", "at-spi bus", "office"}


def test_missing_binaries_name_the_package(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match=r"apt-get install xvfb"):
        XvfbDesktop(xvfb=str(tmp_path / "no-Xvfb"))
    with pytest.raises(SandboxUnavailable, match=r"apt-get install gnumeric"):
        XvfbDesktop(apps=[AppSpec("office", [str(tmp_path / "gnumeric"), "x"])])
    with pytest.raises(SandboxUnavailable, match=r"apt-get install openbox"):
        XvfbDesktop(window_manager_command=["/nonexistent/openbox"])


def test_exit_code_of_unavailable_is_3() -> None:
    assert SandboxUnavailable("x").exit_code == 3


def test_refuses_a_display_it_did_not_start() -> None:
    with pytest.raises(SandboxError, match="allow_real_display"):
        XvfbDesktop(display=":0")


@pytest.mark.parametrize("dest", ["/etc/passwd", "~/../escape", "", "~/"])
def test_file_destinations_must_stay_in_home(tmp_path: Path, dest: str) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(SandboxError, match="destination"):
        XvfbDesktop(files={dest: src}, window_manager=False)


def test_missing_source_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="is not a file"):
        XvfbDesktop(files={"~/x.csv": tmp_path / "missing.csv"}, window_manager=False)


def test_app_that_exits_before_its_window_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="exited"):
        XvfbDesktop(
            apps=[AppSpec("quitter", ["true"], wait_for_window="never")], window_manager=False
        )


def test_close_stops_everything_it_started(tmp_path: Path) -> None:
    desk = mousepad_desktop(tmp_path)
    pids = list(desk.pids.values())
    display = desk.display
    desk.close()
    desk.close()
    for pid in pids:
        assert not _alive(pid), pid
    assert not Path(f"/tmp/.X11-unix/X{display[1:]}").exists()
    with pytest.raises(SandboxError, match="closed"):
        desk.screenshot()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
