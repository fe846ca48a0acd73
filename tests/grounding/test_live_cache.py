"""Live: a steps-only task on real mousepad (no model), cached, run again, and repaired.

1. The actor runs the task's ``steps`` with the OCR grounder and no model: the file is saved.
2. Its records become a cache entry; a fresh desktop runs it again with no model and no OCR on
   the fast path (anchors match by hash): the same file results.
3. The target line moved down: the cached run relocates it by text and still passes.
4. The target was renamed: the cached run reports the divergence at that action; the loop hands over
   to the (scripted) model from there, which clicks the renamed text; the task passes and the
   repaired sequence is stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcorp.actor import Actor, EpisodeTask
from agentcorp.grounding.cache import ActionCache, entries_from_steps, run_cached
from agentcorp.grounding.ocr_grounder import OcrGrounder
from agentcorp.grounding.provenance import skill_key
from agentcorp.grounding.resolve import resolve
from agentcorp.policy.base import AllowAll
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.coords import ScreenMap
from agentcorp.sandbox.xvfb import XvfbDesktop
from agentcorp.testing.scripted import ScriptedLLM, tool_reply
from agentcorp.types import Step

LINES = "Quarterly report for Acme Corp\nInvoice 2041 approved\nNext review: Monday morning\n"
STEPS = [{"click": "Monday morning"}, {"key": "End"}, {"type": " and lunch"}, {"key": "ctrl+s"}]
EXPECTED = LINES.replace("Monday morning", "Monday morning and lunch")


def desktop(tmp: Path, text: str) -> XvfbDesktop:
    src = tmp / "src-notes.txt"
    src.write_text(text, encoding="utf-8")
    desk = XvfbDesktop(
        apps=[
            AppSpec(
                "notes", ["mousepad", "~/notes.txt"], wait_for_window="notes.txt", maximize=True
            )
        ],
        files={"~/notes.txt": src},
        home=tmp / "home",
    )
    if os.geteuid() == 0:
        # As root, mousepad shows a warning bar a moment after its window: wait for it so
        # every run starts from the same layout.
        probe = OcrGrounder()
        deadline = time.monotonic() + 5
        while not probe.locate(desk.screenshot(), "root account"):
            if time.monotonic() > deadline:
                break
            desk.wait(0.1)
    desk.settle(timeout=1.0)
    return desk


def saved(desk: XvfbDesktop, want: str, timeout: float = 10.0) -> str:
    path = desk.home / "notes.txt"
    desk.settle(timeout=0.5)
    text = path.read_text(encoding="utf-8")
    deadline = time.monotonic() + timeout
    while text != want and time.monotonic() < deadline:
        desk.wait(0.1)
        text = path.read_text(encoding="utf-8")
    return text


def run(gen: Any) -> tuple[list[Step], Any]:
    steps: list[Step] = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        return steps, stop.value


@pytest.fixture(scope="module")
def grounder() -> OcrGrounder:
    return OcrGrounder()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, grounder: OcrGrounder) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("first")
    with desktop(tmp, LINES) as desk:
        grounder.reset()
        actor = Actor(desk, gate=AllowAll(), model=None, grounder=grounder)
        records, res = run(
            actor.run(EpisodeTask("notes", "append to the review line", steps=STEPS))
        )
        assert res.status == "done", res
        assert saved(desk, EXPECTED) == EXPECTED
        grounder.reset()
        entries = entries_from_steps(records, grounder)
    cache = ActionCache(tmp / "cache")
    key = skill_key("notes-spec", {"who": "lunch"}, ["who"])
    cache.store(key, entries, {"task": "notes"})
    yield cache, key


def test_steps_task_passes_without_model_and_is_cached(recorded: Any) -> None:
    cache, key = recorded
    entries = cache.lookup(key)
    assert entries is not None and [e.action.kind for e in entries] == [
        "click",
        "key",
        "type",
        "key",
    ]
    assert entries[0].anchor is not None and entries[0].anchor.text == "Monday morning"
    assert all(e.post is not None for e in entries)


def test_cached_run_reproduces_the_task(
    recorded: Any, tmp_path: Path, grounder: OcrGrounder
) -> None:
    cache, key = recorded
    with desktop(tmp_path, LINES) as desk:
        grounder.reset()
        res = run_cached(desk, cache.lookup(key) or [], grounder)
        assert res.ok, res.divergence
        assert res.how[0] == "hash"  # no OCR needed on the fast path
        assert saved(desk, EXPECTED) == EXPECTED
        print(f"cached run: {res.done} actions in {res.elapsed_s * 1000:.0f} ms")


def test_moved_target_is_relocated_by_text(
    recorded: Any, tmp_path: Path, grounder: OcrGrounder
) -> None:
    cache, key = recorded
    moved = "A new first line\n\n" + LINES
    with desktop(tmp_path, moved) as desk:
        grounder.reset()
        res = run_cached(desk, cache.lookup(key) or [], grounder)
        assert res.ok, res.divergence
        assert res.how[0] == "text"
        want = moved.replace("Monday morning", "Monday morning and lunch")
        assert saved(desk, want) == want


def test_renamed_target_diverges_then_the_model_takes_over(
    recorded: Any, tmp_path: Path, grounder: OcrGrounder
) -> None:
    cache, key = recorded
    renamed = LINES.replace("Monday morning", "Monday at nine")
    with desktop(tmp_path, renamed) as desk:
        grounder.reset()
        res = run_cached(desk, cache.lookup(key) or [], grounder)
        assert not res.ok and res.divergence is not None
        assert res.divergence.index == 0 and not res.divergence.acted
        assert "Monday morning" in res.divergence.reason
        # Hand over from the divergent step: the scripted model clicks what a person would.
        frame = desk.screenshot()
        where = resolve(grounder.locate(frame, "Monday at nine"))
        assert hasattr(where, "box")
        smap = ScreenMap.fit(desk.size, 1024)
        mx, my = smap.to_model(*where.box.center)  # type: ignore[union-attr]
        llm = ScriptedLLM([tool_reply("click", x=mx, y=my), tool_reply("done", summary="ok")])
        grounder.reset()
        actor = Actor(desk, gate=AllowAll(), model=llm, grounder=grounder)
        records, out = run(
            actor.run(
                EpisodeTask(
                    "notes",
                    "append to the review line",
                    steps=[{"click": "Monday morning"}, *STEPS[res.divergence.index + 1 :]],
                )
            )
        )
        assert out.status == "done", out
        llm.assert_complete()
        want = renamed.replace("Monday at nine", "Monday at nine and lunch")
        assert saved(desk, want) == want
        # The repaired sequence replaces the cached one.
        repaired = entries_from_steps(records, grounder)
        assert [e.action.kind for e in repaired] == ["click", "key", "type", "key"]
        cache.store(key, repaired)
        assert cache.lookup(key) == repaired
