"""Apps the sample does not use, on real Xvfb desktops: start, environment, the tree, typing.

galculator (GTK 3), featherpad (Qt 5) and xedit (Athena, no accessibility) are real Debian
programs (sandboxes/apt-packages-dev.txt); every check reads what the app itself shows or
saved.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agentcorp.errors import SandboxError
from agentcorp.sandbox._proc import clean_env
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.atspi import Accessible
from agentcorp.sandbox.xvfb import XvfbDesktop

from .conftest import saved_after

pytestmark = pytest.mark.timeout(180)


def _calc_display(desk: XvfbDesktop) -> Accessible:
    snap = desk.accessibility()
    assert snap is not None, desk.a11y_problem
    found = [n for n in snap.nodes if n.app == "galculator" and n.role == "text"]
    assert found, [(n.app, n.role, n.name) for n in snap.nodes]
    return found[0]


def _display_text(desk: XvfbDesktop) -> str:
    node = _calc_display(desk)
    assert desk._a11y is not None
    return (desk._a11y.text_of(node.ref) or "").strip()


def _wait_display(desk: XvfbDesktop, want: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    got = _display_text(desk)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = _display_text(desk)
    return got


def test_apps_never_inherit_our_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", "/nowhere/cv2/qt/plugins")
    monkeypatch.setenv("AGENTCORP_SECRET_TOKEN", "s3cret")
    env = clean_env({"DISPLAY": ":5"})
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in env and "AGENTCORP_SECRET_TOKEN" not in env
    assert env["DISPLAY"] == ":5" and env["PATH"] == os.environ["PATH"]


def test_qt_app_starts_despite_opencv_qt_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What importing cv2 does to our process: Qt apps then abort loading the xcb plugin.
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", "/nowhere/cv2/qt/plugins")
    monkeypatch.setenv("QT_QPA_FONTDIR", "/nowhere/cv2/qt/fonts")
    src = tmp_path / "todo.txt"
    src.write_text("", encoding="utf-8")
    with XvfbDesktop(
        apps=[AppSpec("pad", ["featherpad", "~/todo.txt"], wait_for_window="todo", timeout=60)],
        files={"~/todo.txt": src},
    ) as desk:
        path = desk.home / "todo.txt"
        before = path.stat().st_mtime_ns
        desk.type("qt ok")
        desk.key("ctrl+s")
        assert saved_after(desk, path, before).rstrip("\n") == "qt ok"


def test_app_timeout_from_the_spec_is_honoured(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(SandboxError, match=r"timed out after 1s .*never-there"):
        XvfbDesktop(apps=[AppSpec("calc", ["galculator"], "never-there", timeout=1.0)])
    assert time.monotonic() - t0 < 15  # not the 20 s default


def test_app_mapping_at_once_after_the_wm_is_managed(tmp_path: Path) -> None:
    # xedit maps its window a few ms after start: with the WM not yet managing, it never is.
    for _ in range(3):
        with XvfbDesktop(apps=[AppSpec("ed", ["xedit"], "xedit", timeout=30)]) as desk:
            win = desk.find_window("xedit")
            assert win is not None and win.id in desk._client_ids()


def test_tree_names_calculator_keys_with_screen_boxes(tmp_path: Path) -> None:
    with XvfbDesktop(apps=[AppSpec("calc", ["galculator"], "galculator", timeout=60)]) as desk:
        snap = desk.accessibility()
        assert snap is not None, desk.a11y_problem
        keys = {n.name: n for n in snap.nodes if n.app == "galculator" and "button" in n.role}
        for name in ("7", "+", "*", "=", "%", "+/-", "C"):
            assert name in keys, sorted(keys)
        win = desk.window_box("galculator")
        assert win is not None
        assert all(win.contains(*n.box.center) for n in keys.values())
        # The tree is the app's: clicking the box the tree names presses that key.
        desk.key("Escape")
        # Each click waits for the display: galculator ignores a click during the press
        # animation of the key before (the typing path paces itself the same way).
        for name, shows in (("7", "7"), ("*", "7"), ("6", "6"), ("=", "42")):
            desk.click(*keys[name].box.center)
            desk.settle()
            assert _wait_display(desk, shows) == shows
            time.sleep(0.2)


def test_typing_an_expression_into_a_calculator_loses_no_key(tmp_path: Path) -> None:
    with XvfbDesktop(apps=[AppSpec("calc", ["galculator"], "galculator", timeout=60)]) as desk:
        desk.key("Escape")
        desk.type("1234+4321")
        desk.type("=")
        assert _wait_display(desk, "5555") == "5555"


def test_verified_typing_fails_when_the_field_refuses_the_text(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("one\ntwo\nthree\n", encoding="utf-8")
    with XvfbDesktop(
        apps=[AppSpec("pad", ["featherpad", "~/a.txt"], wait_for_window="a.txt", timeout=60)],
        files={"~/a.txt": src},
    ) as desk:
        desk.type("fine ")  # the editor takes text: verified, no error
        desk.key("ctrl+j")  # the "go to line" spin box takes digits only
        desk.settle()
        focus = desk.focused_element()
        assert focus is not None and focus.editable, focus
        with pytest.raises(SandboxError, match=r"typed 'abc' but the field shows"):
            desk.type("abc")


def test_focus_check_names_what_has_focus(tmp_path: Path) -> None:
    with XvfbDesktop(apps=[AppSpec("calc", ["galculator"], "galculator", timeout=60)]) as desk:
        snap = desk.accessibility()
        assert snap is not None
        keys = {n.name: n for n in snap.nodes if "button" in n.role}
        desk.click(*keys["7"].box.center)
        desk.settle()
        with pytest.raises(SandboxError, match=r"into 'Amount': focus is on .*not an editable"):
            desk.check_editable_focus("Amount")


def test_without_dbus_the_desktop_still_runs(tmp_path: Path) -> None:
    with XvfbDesktop(accessibility=False) as desk:
        assert desk.accessibility() is None and desk.a11y_problem
