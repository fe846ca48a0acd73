"""Skills: a passed instance's actions, templated by value provenance, replayed for new inputs.

Pure provenance rules first (inputs twice, empty, a substring of other text, numbers, two
inputs with one value, secrets), then whole runs on a ``FakeComputer`` through
``run_task_cached``: learned from a scripted model, replayed for other inputs with no model
call, a changed layout failing at once with ``no_model`` or repaired by the model and grown
as a branch, and skill files that are corrupt, old or hand-edited never clicking wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentcorp.actor import BudgetMeter, Budgets
from agentcorp.actor.cached import run_task_cached
from agentcorp.actor.loop import ActorConfig
from agentcorp.actor.runner import TaskInput, TaskResult
from agentcorp.checks import CheckContext
from agentcorp.grounding.cache import (
    REPEAT_LIMIT,
    ActionCache,
    ActionCacheError,
    Anchor,
    Branch,
    CachedAction,
    Postcondition,
)
from agentcorp.grounding.provenance import (
    Provenance,
    render_entries,
    skill_key,
    templatize,
    unusable_because,
)
from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.scripted import ScriptedLLM, tool_reply
from agentcorp.types import Action, ActionStep, Box, ErrorStep, ModelCallStep, Step


def typed(text: str) -> CachedAction:
    return CachedAction(Action("type", text=text))


def clicked(target: str) -> CachedAction:
    box = Box(10, 10, 100, 20)
    return CachedAction(
        Action("click", x=50, y=20, target=target),
        Anchor(box, "0" * 16, target, None),
        Postcondition(None, None, target),
    )


# --- provenance ---------------------------------------------------------------------------


def test_an_input_typed_twice_is_a_template_everywhere() -> None:
    out, prov = templatize([typed("Ann, dear Ann"), clicked("Ann"), typed("Ann")], {"name": "Ann"})
    assert out[0].action.text == "{inputs.name}, dear {inputs.name}"
    assert out[1].action.target == "{inputs.name}" and out[1].anchor is not None
    assert out[1].anchor.text == "{inputs.name}"
    assert out[1].post is not None and out[1].post.expect_text == "{inputs.name}"
    assert out[2].action.text == "{inputs.name}"
    assert prov.bound == ("name",) and not prov.constants
    again, cut = render_entries(out, {"name": "Bo"}, prov)
    assert cut is None and again[0].action.text == "Bo, dear Bo"
    # The anchor pictured "Ann": it is found again by its rendered text, never by pixels.
    assert again[1].anchor is not None and again[1].anchor.text == "Bo"
    assert again[1].anchor.thumb is None and again[1].anchor.phash == ""


def test_a_substring_of_other_text_is_left_alone() -> None:
    out, prov = templatize(
        [clicked("Annual report"), typed("Ann"), clicked("Save for Ann")], {"name": "Ann"}
    )
    assert out[0].action.target == "Annual report"
    assert out[1].action.text == "{inputs.name}"
    assert out[2].action.target == "Save for {inputs.name}"
    assert prov.bound == ("name",)


def test_longer_values_win_over_values_they_contain() -> None:
    out, _ = templatize([typed("Ann Lee, Ann")], {"first": "Ann", "full": "Ann Lee"})
    assert out[0].action.text == "{inputs.full}, {inputs.first}"


@pytest.mark.parametrize(
    ("value", "text", "want"),
    [
        (4, "4 seats", "{inputs.n} seats"),
        (4, "Row 14 of 40, 4", "Row 14 of 40, {inputs.n}"),
        (4, "1.45 and 4.5", "1.45 and 4.5"),
        (2.5, "2.5 kg", "{inputs.n} kg"),
        (2041, "Invoice 2041.", "Invoice {inputs.n}."),
        (True, "vip=true", "vip={inputs.n}"),
        ("007", "agent 007", "agent {inputs.n}"),
    ],
)
def test_numbers_are_found_only_as_whole_numbers(value: Any, text: str, want: str) -> None:
    out, _ = templatize([typed(text)], {"n": value})
    assert out[0].action.text == want
    back, cut = render_entries(out, {"n": value}, Provenance(("n",)))
    assert cut is None and back[0].action.text == text


def test_empty_inputs_are_never_searched_and_key_apart() -> None:
    out, prov = templatize([typed("Ann"), clicked("Save")], {"name": "Ann", "note": ""})
    assert out[0].action.text == "{inputs.name}" and prov.bound == ("name",)
    assert "note" not in prov.constants
    names = ["name", "note"]
    k1 = skill_key("h", {"name": "Ann", "note": ""}, names)
    assert k1 == skill_key("h", {"name": "Bob", "note": ""}, names)
    assert k1 != skill_key("h", {"name": "Bob", "note": "urgent"}, names)
    assert skill_key("h", {"name": "Bob", "note": "x"}, names) == skill_key(
        "h", {"name": "Al", "note": "y"}, names
    )


def test_two_inputs_with_one_value_diverge_when_they_differ() -> None:
    out, prov = templatize([clicked("Save"), typed("Kim")], {"billing": "Kim", "shipping": "Kim"})
    assert out[1].action.text == "{inputs.billing}"
    assert prov.same == (("billing", "shipping"),)
    ok, cut = render_entries(out, {"billing": "Lu", "shipping": "Lu"}, prov)
    assert cut is None and ok[1].action.text == "Lu"
    part, cut = render_entries(out, {"billing": "Lu", "shipping": "Mo"}, prov)
    assert cut is not None and cut.index == 1 and len(part) == 1
    assert "billing, shipping had one value when learned" in cut.reason


def test_an_input_never_shown_makes_the_skill_hold_for_that_value_only() -> None:
    _, prov = templatize([clicked("Save")], {"name": "Ann"})
    assert prov.constants == {"name": "Ann"}
    assert unusable_because(prov, {"name": "Ann"}) is None
    why = unusable_because(prov, {"name": "Bob"})
    assert why is not None and "only for name='Ann'" in why
    assert Provenance.from_meta(prov.to_meta(), "x") == prov


def test_secret_values_become_placeholders_even_inside_words() -> None:
    out, _ = templatize(
        [typed("pw: hunter2!"), typed("Ahunter2B"), typed("${secrets.PW}")],
        {"name": "hunter"},
        {"PW": "hunter2"},
    )
    assert [e.action.text for e in out] == [
        "pw: ${secrets.PW}!",
        "A${secrets.PW}B",
        "${secrets.PW}",
    ]


def test_an_input_constant_holding_a_secret_is_refused() -> None:
    with pytest.raises(ActionCacheError, match="holds a secret's value"):
        templatize([clicked("Save")], {"name": "x-hunter2"}, {"PW": "hunter2"})


def test_learned_text_that_reads_like_a_template_is_refused() -> None:
    with pytest.raises(ActionCacheError, match="literal"):
        templatize([typed("{inputs.name} Ann")], {"name": "Ann"})


def test_a_skill_grows_branch_by_branch_and_stops_at_a_repeating_step() -> None:
    from agentcorp.grounding.cache import Skill

    skill = Skill("k", [Branch([clicked("Save")])])
    assert skill.grow(Branch([clicked("Store")], None, 0, 0)) is None
    assert skill.grow(Branch([clicked("Store")], None, 0, 0)) == (
        "an identical branch is stored already"
    )
    skill.divergences[0] = REPEAT_LIMIT + 1
    why = skill.grow(Branch([clicked("Keep")], None, 0, 0))
    assert why is not None and "grows no more there" in why
    assert len(skill.branches) == 2


# --- whole runs on a fake screen ----------------------------------------------------------


SAVE_AT = Box(100, 200, 120, 40)


def screen(save: str = "Save", at: Box = SAVE_AT) -> FakeComputer:
    fc = FakeComputer(
        [
            Widget("lbl", "label", Box(40, 100, 120, 30), "Customer"),
            Widget("customer", "field", Box(170, 100, 300, 30), "Customer"),
            Widget("cancel", "button", Box(600, 200, 120, 40), "Cancel"),
        ]
    )

    def saved(fc: FakeComputer) -> None:
        fc.add(
            Widget("saved", "label", Box(400, 400, 300, 30), f"Saved {fc.widget('customer').value}")
        )

    fc.add(Widget("save", "button", at, save, on_click=saved))
    return fc


class AllowAll(ActionGate):
    def check(self, action: Action, context: GateContext) -> GateDecision:
        return GateDecision(True, "allowed")


def learn_script(save_xy: tuple[int, int] = (128, 176)) -> list[Any]:
    return [
        tool_reply("click", x=256, y=92),
        tool_reply("type", text="Ann"),
        tool_reply("click", x=save_xy[0], y=save_xy[1]),
        tool_reply("done", summary="saved"),
    ]


def run(
    fc: FakeComputer,
    cache: ActionCache,
    tmp: Path,
    name: str,
    model: ScriptedLLM | None = None,
    *,
    no_model: bool = False,
    secrets: dict[str, str] | None = None,
    shows: str | None = None,
) -> tuple[list[Step], TaskResult]:
    task = TaskInput(
        "add-customer",
        f"Add the customer {name} and save",
        success={"check": "screen_contains", "text": f"Saved {shows or name}"},
        inputs={"name": name},
    )
    g = fc.widget_grounder()
    key = skill_key("spec", task.inputs, ["name"])
    return drive(
        run_task_cached(
            task,
            fc,
            cache=cache,
            key=key,
            gate=AllowAll(),
            meter=BudgetMeter(Budgets()),
            check_context=CheckContext(home=tmp, computer=fc, grounder=g),
            actor_model=model,
            grounder=g,
            config=ActorConfig(long_side=1024),
            meta={"task": "add-customer"},
            secrets=secrets or {},
            input_names=["name"],
            no_model=no_model,
        )
    )


def learned(tmp: Path) -> ActionCache:
    cache = ActionCache(tmp / "skills")
    model = ScriptedLLM(learn_script())
    _, res = run(screen(), cache, tmp, "Ann", model)
    assert res.status == "pass", res
    assert res.mode == "model" and len(model.calls) == 4
    return cache


def test_learned_from_the_model_then_replayed_for_new_inputs_with_no_model(
    tmp_path: Path,
) -> None:
    cache = learned(tmp_path)
    [info] = cache.entries()
    assert info.meta["inputs_bound"] == ["name"] and info.actions == 3
    text = info.path.read_text(encoding="utf-8")
    assert "Ann" not in text and "{inputs.name}" in text
    for name in ("Bob", "Zoë Ng", "7", "Ann"):
        fc = screen()
        steps, res = run(fc, cache, tmp_path, name, ScriptedLLM([]))
        assert res.status == "pass", res
        assert res.mode == "skill" and res.usage.total_tokens == 0
        assert fc.widget("customer").value == name
        assert not [s for s in steps if isinstance(s, ModelCallStep)]
        assert {s.source for s in steps if isinstance(s, ActionStep)} == {"skill"}


def test_changed_layout_with_no_model_fails_at_once_naming_the_step(tmp_path: Path) -> None:
    cache = learned(tmp_path)
    fc = screen(at=Box(100, 300, 120, 40))  # Save moved down
    _, res = run(fc, cache, tmp_path, "Bob", no_model=True)
    assert res.status == "fail"
    assert "skill diverged at action 3/3" in res.reason and "--no-model" in res.reason
    assert fc.widget("save").clicks == 0 and fc.widget("cancel").clicks == 0


def test_a_divergence_is_repaired_by_the_model_and_grows_a_branch(tmp_path: Path) -> None:
    cache = learned(tmp_path)
    moved = Box(100, 300, 120, 40)
    model = ScriptedLLM([tool_reply("click", x=128, y=256), tool_reply("done", summary="ok")])
    fc = screen(at=moved)
    _, res = run(fc, cache, tmp_path, "Bob", model)
    assert res.status == "pass", res
    assert res.mode == "skill+model" and res.repaired_at == 3
    assert len(model.calls) == 2
    [skill_file] = cache.entries()
    assert skill_file.branches == 2
    # Both layouts now replay with no model: the trunk, and the branch where it forks.
    for layout in (Box(100, 200, 120, 40), moved):
        fc = screen(at=layout)
        _, res = run(fc, cache, tmp_path, "Cy", ScriptedLLM([]))
        assert res.status == "pass" and res.mode == "skill", (layout, res)
        assert fc.widget("save").clicks == 1


def test_a_skill_diverging_again_and_again_is_reported(tmp_path: Path) -> None:
    cache = learned(tmp_path)
    key = skill_key("spec", {"name": "x"}, ["name"])
    skill = cache.load(key)
    assert skill is not None
    skill.divergences[2] = REPEAT_LIMIT
    cache.save(skill)
    model = ScriptedLLM([tool_reply("click", x=128, y=256), tool_reply("done", summary="ok")])
    steps, res = run(screen(at=Box(100, 300, 120, 40)), cache, tmp_path, "Bob", model)
    assert res.status == "pass"
    kinds = [s.error_type for s in steps if isinstance(s, ErrorStep)]
    assert kinds == ["SkillDivergence", "SkillUnstable", "SkillNotGrown"]
    again = cache.load(key)
    assert again is not None and len(again.branches) == 1
    assert again.divergences[2] == REPEAT_LIMIT + 1


def test_a_secret_value_never_lands_in_a_skill_file(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "skills")
    model = ScriptedLLM(
        [
            tool_reply("click", x=256, y=92),
            tool_reply("type", text="Ann s3cr3t-pin"),  # typed literally: the model saw it
            tool_reply("click", x=128, y=176),
            tool_reply("done", summary="saved"),
        ]
    )
    fc = screen()
    _, res = run(
        fc, cache, tmp_path, "Ann", model, secrets={"PIN": "s3cr3t-pin"}, shows="Ann s3cr3t-pin"
    )
    assert res.status == "pass"
    files = list((tmp_path / "skills").glob("*.json"))
    assert files
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "s3cr3t" not in text and "${secrets.PIN}" in text


def _skill_file(cache: ActionCache) -> Path:
    [info] = cache.entries()
    return info.path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t[: len(t) // 2], "not JSON"),
        (lambda t: t.replace('"version": 2', '"version": 1'), "unsupported skill version 1"),
        (lambda t: t.replace('"version": 2', '"version": 3'), "unsupported skill version 3"),
        (lambda t: json.dumps({**json.loads(t), "branches": 5}), "branches: expected a list"),
    ],
)
def test_a_corrupt_or_foreign_skill_is_one_line_and_never_replayed(
    tmp_path: Path, edit: Any, message: str
) -> None:
    cache = learned(tmp_path)
    path = _skill_file(cache)
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ActionCacheError) as info:
        cache.load(path.stem)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)
    # On the run path: reported, and the task runs the normal way (here: the model).
    fc = screen()
    steps, res = run(fc, cache, tmp_path, "Ann", ScriptedLLM(learn_script()))
    assert res.status == "pass" and res.mode == "model"
    [err] = [s for s in steps if isinstance(s, ErrorStep)]
    assert message in err.message


def _edit_click(path: Path, index: int, change: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc["actions"][index])
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_a_click_moved_off_its_anchor_by_hand_is_refused(tmp_path: Path) -> None:
    cache = learned(tmp_path)
    path = _skill_file(cache)
    _edit_click(path, 2, lambda e: e["action"].update(x=660, y=220))  # onto Cancel
    with pytest.raises(
        ActionCacheError, match=r"actions\[2\]\.action: point \(660, 220\) is outside"
    ):
        cache.load(path.stem)


def test_an_anchor_moved_by_hand_diverges_and_never_clicks_wrong(tmp_path: Path) -> None:
    cache = learned(tmp_path)
    path = _skill_file(cache)

    def onto_cancel(e: dict[str, Any]) -> None:
        e["action"].update(x=660, y=220)
        e["anchor"]["box"] = [628, 208, 64, 24]

    _edit_click(path, 2, onto_cancel)
    fc = screen()
    _, res = run(fc, cache, tmp_path, "Bob", no_model=True)
    assert res.status == "fail" and "skill diverged at action 3/3" in res.reason
    assert fc.widget("cancel").clicks == 0 and fc.widget("save").clicks == 0
