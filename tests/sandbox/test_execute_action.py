"""The one Action → Computer dispatch used by the loop and by action replay."""

from __future__ import annotations

import pytest

from agentcorp.errors import UnsupportedAction
from agentcorp.sandbox.base import COMPUTER_ACTIONS, execute_action
from agentcorp.testing.fake_computer import FakeComputer
from agentcorp.types import Action


def test_each_computer_action_reaches_the_computer() -> None:
    fc = FakeComputer([])
    execute_action(fc, Action("click", x=10, y=20))
    execute_action(fc, Action("right_click", x=11, y=21))
    execute_action(fc, Action("type", text="hello"))
    execute_action(fc, Action("key", keys="ctrl+s"))
    kinds = [a[0] for a in fc.actions]
    assert kinds == ["click", "click", "type", "key"]
    assert fc.actions[1] == ("click", 11, 21, "right")


class _Desktop(FakeComputer):
    goto = None  # a desktop sandbox has no browser to navigate


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (Action("open_url", url="http://127.0.0.1/"), "open_url needs a browser sandbox"),
        (Action("done", summary="ok"), "action 'done' cannot be executed"),
        (Action("click"), "click needs x and y"),
    ],
)
def test_unsupported_actions_are_one_line_errors(action: Action, message: str) -> None:
    fc = _Desktop([])
    with pytest.raises(UnsupportedAction, match=message) as info:
        execute_action(fc, action)
    assert "\n" not in str(info.value)
    assert fc.actions == []


def test_open_url_goes_to_a_browser() -> None:
    fc = FakeComputer([])
    execute_action(fc, Action("open_url", url="http://127.0.0.1/"))
    assert fc.actions == [("goto", "http://127.0.0.1/")]


def test_loop_only_kinds_are_not_computer_actions() -> None:
    assert not {"done", "fail", "wait_for"} & COMPUTER_ACTIONS
