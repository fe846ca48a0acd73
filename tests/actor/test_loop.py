"""Unit tests of the actor loop on a FakeComputer with a ScriptedLLM."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from agentcorp.actor import Actor, ActorConfig, BudgetMeter, Budgets, EpisodeTask
from agentcorp.errors import LLMUnavailable
from agentcorp.grounding.base import Grounder
from agentcorp.policy.base import ActionGate, AllowAll, GateContext, GateDecision
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.scripted import ScriptedLLM, raw_tool_reply, text_reply, tool_reply
from agentcorp.types import (
    Action,
    ActionResultStep,
    ActionStep,
    BudgetStep,
    ModelCallStep,
    ObservationStep,
    PolicyStep,
    Usage,
)


def desk() -> FakeComputer:
    def saved(fc: FakeComputer) -> None:
        fc.add(
            Widget("saved", "label", fc.widget("save").box.__class__(400, 300, 200, 30), "Saved")
        )

    from agentcorp.types import Box

    return FakeComputer(
        [
            Widget("lbl", "label", Box(40, 100, 120, 30), "Customer"),
            Widget("customer", "field", Box(170, 100, 300, 30), "Customer"),
            Widget("save", "button", Box(100, 200, 120, 40), "Save", on_click=saved),
        ],
        size=(1280, 800),
    )


def actor(fc: FakeComputer, model: Any = None, **kw: Any) -> Actor:
    cfg = kw.pop("config", ActorConfig(model="m", find_timeout=0.0))
    return Actor(
        fc,
        gate=kw.pop("gate", AllowAll()),
        model=model,
        grounder=kw.pop("grounder", fc.widget_grounder()),
        config=cfg,
        **kw,
    )


TASK = EpisodeTask("t1", "Save the customer", role="clerk", sandbox="office")


def test_scripted_steps_run_without_model() -> None:
    fc = desk()
    steps, res = drive(
        actor(fc).run(
            EpisodeTask(
                "t1",
                "x",
                steps=[
                    {"type": "ACME ${secrets.PW}", "into": "Customer"},
                    {"click": "Save"},
                    {"wait_for": "Saved", "timeout": 1},
                    {"key": "ctrl+s"},
                ],
            )
        )
    )
    assert res.status == "done", res
    assert fc.actions == [
        ("click", 320, 115, "left"),
        ("type", "ACME ${secrets.PW}"),
        ("click", 160, 220, "left"),
        ("key", "ctrl+s"),
    ]
    assert fc.widget("customer").value == "ACME ${secrets.PW}"
    obs = [s for s in steps if isinstance(s, ObservationStep)]
    assert obs[0].frame is not None and obs[0].image and obs[0].image[:8] == b"\x89PNG\r\n\x1a\n"
    acts = [s for s in steps if isinstance(s, ActionStep)]
    assert all(s.source == "script" for s in acts)
    assert acts[2].reasoning == "'Save' found by ocr at (100, 200, 120x40), score 1"
    assert acts[3].reasoning is None


def test_scripted_step_not_found_without_model_fails_clearly() -> None:
    fc = desk()
    _, res = drive(actor(fc).run(EpisodeTask("t1", "x", steps=[{"click": "Delete"}])))
    assert res.status == "failed" and res.failed_step == 0
    assert res.reason == "click 'Delete': 'Delete' not found on screen (no model configured)"
    assert fc.actions == []


def test_a_target_with_no_visible_character_fails_its_step_naming_it() -> None:
    # A zero-width space draws nothing: no grounder and no model can find it, so the step
    # fails as bad input (the model is not asked) and the steps before it stay done.
    fc = desk()
    llm = ScriptedLLM([])
    task = EpisodeTask(
        "t1",
        "x",
        steps=[{"type": "ACME", "into": "Customer"}, {"click": "\u200b"}, {"click": "Save"}],
    )
    _, res = drive(actor(fc, llm).run(task))
    assert res.status == "failed" and res.failed_step == 1 and res.steps_done == 1
    assert res.reason == (
        "steps[1] (click '\\u200b'): the target '\\u200b' has no visible character: no source"
        " (accessibility tree, DOM or OCR) can match it"
    )
    assert llm.calls == []
    assert fc.actions == [("click", 320, 115, "left"), ("type", "ACME")]
    for label in ("\u2060", "\u00ad\u200c"):
        _, res = drive(
            actor(desk()).run(EpisodeTask("t1", "x", steps=[{"type": "x", "into": label}]))
        )
        assert res.status == "failed" and "has no visible character" in res.reason, res


def test_ambiguous_target_goes_to_model() -> None:
    fc = desk()
    from agentcorp.types import Box

    fc.add(Widget("save2", "button", Box(600, 200, 120, 40), "Save"))
    llm = ScriptedLLM([tool_reply("click", x=128, y=176), tool_reply("done", summary="ok")])
    steps, res = drive(actor(fc, llm).run(EpisodeTask("t1", "x", steps=[{"click": "Save"}])))
    assert res.status == "done"
    # model frame is 1024x640 for a 1280x800 screen: (128, 176) -> screen (160, 220)
    assert fc.actions == [("click", 160, 220, "left")]
    first = llm.calls[0].messages[1]["content"][0]["text"]
    assert "ambiguous: 2 matches" in first
    act = next(s for s in steps if isinstance(s, ActionStep))
    assert act.source == "model" and act.action.model_xy == (128, 176)


@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        (raw_tool_reply("click", "{x: 1"), "arguments are not valid JSON"),
        (tool_reply("teleport", x=1, y=2), "unknown tool 'teleport'"),
        (tool_reply("click", x=5), "missing argument 'y'"),
        (tool_reply("click", x=5000, y=10), "point (5000, 10) is off-screen"),
        (text_reply("I will click save"), "reply with at least one tool call"),
        (tool_reply("scroll", x=1, y=1, direction="sideways"), "direction must be one of"),
        (tool_reply("key", keys="Return", extra=1), "unknown argument(s) ['extra']"),
    ],
)
def test_malformed_output_is_returned_to_model_and_recovered(bad: Any, expect: str) -> None:
    fc = desk()
    llm = ScriptedLLM([bad, tool_reply("click", x=128, y=176), tool_reply("done", summary="ok")])
    _, res = drive(actor(fc, llm).run(TASK))
    assert res.status == "done", res
    assert fc.actions == [("click", 160, 220, "left")]
    second = llm.calls[1].messages
    fed_back = " ".join(str(m.get("content")) for m in second[2:])
    assert expect in fed_back


def test_three_malformed_in_a_row_end_the_task_not_the_loop() -> None:
    fc = desk()
    llm = ScriptedLLM([tool_reply("nope")] * 3)
    _, res = drive(actor(fc, llm).run(TASK))
    assert res.status == "failed"
    assert "3 unusable replies in a row" in res.reason and "unknown tool 'nope'" in res.reason
    assert fc.actions == []


def test_image_history_keeps_last_n_images() -> None:
    fc = desk()
    replies = [tool_reply("key", keys=f"F{i}") for i in range(1, 6)]
    llm = ScriptedLLM([*replies, tool_reply("done", summary="ok")])
    cfg = ActorConfig(model="m", image_history=2)
    _, res = drive(actor(fc, llm, config=cfg).run(TASK))
    assert res.status == "done"

    def images(msgs: list[dict[str, Any]]) -> int:
        return sum(
            1
            for m in msgs
            if isinstance(m.get("content"), list)
            for p in m["content"]
            if p.get("type") == "image_url"
        )

    # Never more than the last 2 screenshots as images, the first one included.
    assert [images(c.messages) for c in llm.calls] == [1, 2, 2, 2, 2, 2]
    first = llm.calls[0].messages
    last = llm.calls[-1].messages
    assert last[1]["content"][1] == {"type": "text", "text": "(first screenshot omitted)"}
    notes = [m["content"] for m in last if m["role"] == "user" and isinstance(m["content"], str)]
    assert notes == [
        "(screenshot after step 1 omitted)",
        "(screenshot after step 2 omitted)",
        "(screenshot after step 3 omitted)",
    ]
    # The two images kept are the newest: after steps 4 and 5.
    kept = [
        p["image_url"]["url"]
        for m in last
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if p.get("type") == "image_url"
    ]
    assert kept == [
        llm.calls[-2].messages[-1]["content"][1]["image_url"]["url"],
        last[-1]["content"][1]["image_url"]["url"],
    ]
    url = first[1]["content"][1]["image_url"]["url"]
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (1024, 640)


def test_budget_overrun_stops_with_budget_exceeded() -> None:
    fc = desk()
    llm = ScriptedLLM([tool_reply("key", keys="a", usage=Usage(600, 10))] * 5)
    company = BudgetMeter(Budgets(tokens=10_000), name="company")
    meter = company.child(Budgets(tokens=1000), "task")
    steps, res = drive(actor(fc, llm, meter=meter).run(TASK))
    assert res.status == "budget_exceeded"
    assert res.reason == "task token budget of 1000 exceeded (1220)"
    assert len(llm.calls) == 2 and company.usage.total_tokens == 1220
    b = [s for s in steps if isinstance(s, BudgetStep)]
    assert b[-1].exceeded == res.reason and b[-1].tokens == 1220


def test_company_budget_is_shared_between_tasks() -> None:
    company = BudgetMeter(Budgets(steps=3), name="company")
    fc = desk()
    _, r1 = drive(
        actor(fc, meter=company.child(Budgets(), "a")).run(
            EpisodeTask("a", "x", steps=[{"key": "a"}, {"key": "b"}])
        )
    )
    _, r2 = drive(
        actor(fc, meter=company.child(Budgets(), "b")).run(
            EpisodeTask("b", "x", steps=[{"key": "c"}, {"key": "d"}])
        )
    )
    assert r1.status == "done"
    assert r2.status == "budget_exceeded" and r2.reason == "company step budget of 3 used up"
    assert [a[1] for a in fc.actions] == ["a", "b", "c"]


def test_step_budget_counts_actions() -> None:
    fc = desk()
    llm = ScriptedLLM([tool_reply("key", keys="a")] * 3)
    _, res = drive(actor(fc, llm, meter=BudgetMeter(Budgets(steps=2))).run(TASK))
    assert res.status == "budget_exceeded" and "step budget of 2" in res.reason
    assert len(fc.actions) == 2


class DenyTyping(ActionGate):
    def __init__(self) -> None:
        self.seen: list[tuple[Action, GateContext]] = []

    def check(self, action: Action, context: GateContext) -> GateDecision:
        self.seen.append((action, context))
        if action.kind == "type":
            return GateDecision(False, "denied", rule="no-typing", message="typing is forbidden")
        return GateDecision(True, "allowed")


def test_denied_action_never_reaches_computer() -> None:
    fc = desk()
    gate = DenyTyping()
    llm = ScriptedLLM([tool_reply("type", text="rm -rf /"), tool_reply("done", summary="gave")])
    steps, res = drive(actor(fc, llm, gate=gate).run(TASK))
    assert res.status == "done"
    assert fc.actions == []
    pol = [s for s in steps if isinstance(s, PolicyStep)]
    # The model's done(summary) passes the gate too.
    assert [p.decision for p in pol] == ["denied", "allowed"] and pol[0].rule == "no-typing"
    fed = llm.calls[1].messages[-1]
    assert fed["role"] == "tool" and "typing is forbidden" in fed["content"]
    ctx = gate.seen[0][1]
    assert (ctx.task_id, ctx.role, ctx.sandbox, ctx.source) == ("t1", "clerk", "office", "model")


def test_denied_scripted_action_fails_step() -> None:
    fc = desk()
    _, res = drive(
        actor(fc, gate=DenyTyping()).run(EpisodeTask("t1", "x", steps=[{"type": "hello"}]))
    )
    assert res.status == "failed" and "typing is forbidden" in res.reason
    assert fc.actions == []


def test_model_sees_only_placeholders_and_records_model_calls() -> None:
    fc = desk()
    llm = ScriptedLLM(
        [
            tool_reply("type", text="${secrets.PW}"),
            tool_reply("done", summary="ok", usage=Usage(10, 2, cost_usd=0.01)),
        ]
    )
    steps, _res = drive(actor(fc, llm).run(TASK))
    assert fc.actions == [("type", "${secrets.PW}")]
    calls = [s for s in steps if isinstance(s, ModelCallStep)]
    assert len(calls) == 2 and len(calls[0].request_sha256) == 64
    assert calls[1].usage.cost_usd == 0.01
    res_steps = [s for s in steps if isinstance(s, ActionResultStep)]
    assert res_steps and res_steps[0].ok


def test_setup_error_from_model_propagates() -> None:
    fc = desk()
    llm = ScriptedLLM([LLMUnavailable("quota exhausted")])
    with pytest.raises(LLMUnavailable):
        drive(actor(fc, llm).run(TASK))


def test_model_fail_tool_ends_failed() -> None:
    fc = desk()
    _, res = drive(actor(fc, ScriptedLLM([tool_reply("fail", reason="no button")])).run(TASK))
    assert res.status == "failed" and res.reason == "model gave up: no button"


def test_no_steps_no_model() -> None:
    _, res = drive(actor(desk()).run(TASK))
    assert res.status == "failed" and "no model" in res.reason


def test_bad_scripted_step_is_clear() -> None:
    _, res = drive(actor(desk()).run(EpisodeTask("t", "x", steps=[{"klick": "Save"}])))
    assert res.status == "error"
    assert res.reason.startswith("steps[0]: expected exactly one of click")


def test_drag_and_scroll_mapping() -> None:
    fc = desk()
    llm = ScriptedLLM(
        [
            tool_reply("drag", path=[[0, 0], [512, 320]]),
            tool_reply("scroll", x=512, y=320, direction="up", amount=2),
            tool_reply("done", summary="ok"),
        ]
    )
    drive(actor(fc, llm).run(TASK))
    assert fc.actions == [("drag", ((0, 0), (640, 400))), ("scroll", 640, 400, 0, -2)]


def test_open_url_on_browser_like_computer() -> None:
    fc = desk()
    _, res = drive(actor(fc).run(EpisodeTask("t", "x", steps=[{"open_url": "http://x/"}])))
    assert res.status == "done" and fc.url == "http://x/"


class _PollBlind(Grounder):
    """A grounder whose quick looks (polls) miss what its thorough look finds.

    OCR that merged partial re-reads can lose a line until the frame is read whole.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.looks: list[bool] = []

    def locate(self, frame: object, target: str, hint: Any = None) -> Any:
        thorough = hint is None or hint.thorough
        self.looks.append(thorough)
        return self.inner.locate(frame, target, hint) if thorough else []


class _DrawnLate(Grounder):
    """A tree that knows the target before the app has drawn it (``drawn`` after N asks)."""

    def __init__(self, inner: Any, drawn_after: int | None) -> None:
        self.inner = inner
        self.drawn_after = drawn_after
        self.asked = 0

    def locate(self, frame: object, target: str, hint: Any = None) -> Any:
        return [replace(c, source="a11y") for c in self.inner.locate(frame, target, hint)]

    def drawn(self, frame: object, target: str, found: Any) -> bool:
        self.asked += 1
        return self.drawn_after is not None and self.asked > self.drawn_after


def test_wait_for_ends_on_a_frame_that_shows_what_the_tree_knows() -> None:
    fc = desk()
    g = _DrawnLate(fc.widget_grounder(), drawn_after=1)
    steps = [{"click": "Save"}, {"wait_for": "Saved", "timeout": 60}]
    _, res = drive(actor(fc, grounder=g).run(EpisodeTask("t1", "x", steps=steps)))
    assert res.status == "done", res
    assert g.asked == 2
    assert [a for a in fc.actions if a[0] == "wait"] == [("wait", 0.2)]


def test_wait_for_takes_the_tree_s_word_after_a_grace_or_at_the_timeout() -> None:
    fc = desk()
    g = _DrawnLate(fc.widget_grounder(), drawn_after=None)  # OCR never reads it
    steps = [{"click": "Save"}, {"wait_for": "Saved", "timeout": 60}]
    t0 = time.monotonic()
    _, res = drive(actor(fc, grounder=g).run(EpisodeTask("t1", "x", steps=steps)))
    assert res.status == "done", res
    assert 1.0 <= time.monotonic() - t0 < 30  # the grace, far from the timeout
    fc = desk()
    g = _DrawnLate(fc.widget_grounder(), drawn_after=None)
    steps = [{"click": "Save"}, {"wait_for": "Saved", "timeout": 0.3}]
    _, res = drive(actor(fc, grounder=g).run(EpisodeTask("t1", "x", steps=steps)))
    assert res.status == "done", res


def test_wait_for_on_a_still_screen_looks_thoroughly_at_once_not_at_the_timeout() -> None:
    fc = desk()
    g = _PollBlind(fc.widget_grounder())
    steps = [{"click": "Save"}, {"wait_for": "Saved", "timeout": 60}]
    _, res = drive(actor(fc, grounder=g).run(EpisodeTask("t1", "x", steps=steps)))
    assert res.status == "done", res
    # The first look at the settled screen is a poll; the screen then stays the same, so
    # the next look is the thorough one, after one pause, not after 60 s of pauses.
    assert [a for a in fc.actions if a[0] == "wait"] == [("wait", 0.2)]
    assert g.looks[-2:] == [False, True]


def test_wait_for_says_not_there_only_after_a_thorough_look() -> None:
    fc = desk()
    g = _PollBlind(fc.widget_grounder())
    steps = [{"wait_for": "Nowhere", "timeout": 0.5}]
    _, res = drive(actor(fc, grounder=g).run(EpisodeTask("t1", "x", steps=steps)))
    assert res.status == "failed"
    assert True in g.looks and g.looks[0] is False
