"""Keys on a real Xvfb desktop go to a window, or the step fails saying they would not.

A click outside every window (or an app that closed) leaves no window with the keyboard
focus; a key then reaches no app, and a ``key`` step used to report ok all the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcorp.actor import Actor, EpisodeTask
from agentcorp.errors import SandboxError
from agentcorp.policy.base import AllowAll
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop
from agentcorp.testing.drive import drive
from agentcorp.types import ActionResultStep

FORM = Path(__file__).resolve().parents[1] / "grounding" / "apps" / "labelled_form.py"

pytestmark = pytest.mark.timeout(120)


def _desk() -> XvfbDesktop:
    # The system Python runs the fixture app (python3-gi); a bare "python3" would be ours.
    return XvfbDesktop(apps=[AppSpec("form", ["/usr/bin/python3", str(FORM)], "Labelled form")])


def test_a_key_with_no_window_focused_fails_the_step() -> None:
    with _desk() as desk:
        actor = Actor(desk, gate=AllowAll())
        # (5, 5) is the bare desktop: the window manager takes the focus from the form.
        steps, res = drive(
            actor.run(EpisodeTask("t", "x", steps=[{"click": [5, 5]}, {"key": "Return"}]))
        )
        assert res.status == "failed" and res.failed_step == 1, res
        assert "press Return" in res.reason and "no window has the keyboard focus" in res.reason
        assert [r.ok for r in steps if isinstance(r, ActionResultStep)] == [True, False]


def test_window_manager_combos_go_and_keys_go_again_once_a_window_has_focus() -> None:
    with _desk() as desk:
        form = desk._active_id()
        box = desk.window_box("Labelled form")
        assert box is not None and form
        desk.click(5, 5)
        desk.settle()
        with pytest.raises(SandboxError, match="no window has the keyboard focus"):
            desk.key("ctrl+a")
        # A combo with alt may be the window manager's own binding: it is never refused
        # (alt+F4 closes the focused window: with none focused it closes nothing).
        desk.key("alt+F4")
        desk.settle()
        # A click on the form gives it the focus back, and keys go through again.
        desk.click(*box.center)
        desk.settle()
        assert desk._active_id() == form
        desk.key("Tab")
