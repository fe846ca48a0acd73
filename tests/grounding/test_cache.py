import json
import threading
from pathlib import Path

import pytest

from agentcorp.grounding.cache import (
    ActionCache,
    ActionCacheError,
    CachedAction,
    CacheRunner,
    Divergence,
    Postcondition,
    anchor_for,
    entries_from_steps,
    hamming,
    perceptual_hash,
    postcondition_for,
)
from agentcorp.grounding.ocr_grounder import OcrGrounder
from agentcorp.grounding.provenance import skill_key
from agentcorp.types import Action, Box
from tests.grounding._data import frame, labels


def sample() -> list[CachedAction]:
    form = frame("form.png")
    return [
        CachedAction(
            Action("click", x=200, y=165, target="Customer"),
            anchor_for(form, 200, 165, "Customer"),
            Postcondition(Box(144, 152, 232, 27), "AAEC", "Acme"),
        ),
        CachedAction(Action("type", text="Acme ${secrets.PIN} ÀÉ€ 你好")),
        CachedAction(Action("drag", path=((1, 2), (3, 4)))),
        CachedAction(Action("key", keys="ctrl+s")),
        CachedAction(Action("click", x=0, y=0)),
        CachedAction(Action("wait", seconds=0.0)),
    ]


def test_store_lookup_roundtrip_and_listing(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "c")
    names = ["customer", "n"]
    key = skill_key("spec-sha", {"customer": "Acme", "n": 3}, names)
    assert key == skill_key("spec-sha", {"n": 3, "customer": "Acme"}, names)
    assert key == skill_key("spec-sha", {"customer": "Globex", "n": 4}, names)  # values: no
    assert key != skill_key("other-sha", {"customer": "Acme", "n": 3}, names)
    assert cache.lookup(key) is None
    cache.store(key, sample(), {"task": "new-order"})
    assert cache.lookup(key) == sample()
    [info] = cache.entries()
    assert (info.key, info.actions, info.meta["task"]) == (key, 6, "new-order")
    assert [p.name for p in (tmp_path / "c").iterdir()] == [f"{key}.json"]  # no temp left
    assert cache.clear(key) == 1 and cache.lookup(key) is None and cache.clear(key) == 0
    cache.store("a", sample())
    cache.store("b", [])
    assert cache.clear() == 2 and cache.entries() == []


def test_concurrent_stores_never_leave_a_torn_file(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path)
    big = sample() * 200
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                cache.store("k", big)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(30):
        got = cache.lookup("k")
        assert got is None or got == big
    for t in threads:
        t.join()
    assert not errors and cache.lookup("k") == big


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("{not json", "line 1: not JSON"),
        ("[]", "expected a JSON object"),
        ('{"version": 9, "actions": []}', "unsupported skill version 9"),
        ('{"version": 2}', "actions: missing or not a list"),
        (
            '{"version": 2, "actions": [{"action": {"kind": "teleport"}}]}',
            "actions[0].action.kind: unknown action kind 'teleport'",
        ),
        (
            '{"version": 2, "actions": [{"action": {"kind": "click", "x": "1"}}]}',
            "actions[0].action.x: expected an integer",
        ),
        (
            '{"version": 2, "actions": [{"action": {"kind": "key", "bogus": 1}}]}',
            "actions[0].action.bogus: unknown field",
        ),
        (
            '{"version": 2, "actions": [{"action": {"kind": "click"}, "anchor": {"box": [1]}}]}',
            "actions[0].anchor.box: expected a box",
        ),
        (
            '{"version": 2, "actions": [{"action": {"kind": "click"}, "post": {"changed": null,'
            ' "thumb": 5}}]}',
            "actions[0].post.thumb: expected a string",
        ),
    ],
)
def test_garbage_cache_files_fail_with_one_line_naming_file_and_field(
    tmp_path: Path, content: str, where: str
) -> None:
    (tmp_path / "k.json").write_text(content)
    with pytest.raises(ActionCacheError) as err:
        ActionCache(tmp_path).lookup("k")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "k.json") in msg and where in msg
    assert (tmp_path / "k.json").read_text() == content  # nothing lost


def test_bad_keys_are_refused(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path)
    for key in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ActionCacheError, match="cache key"):
            cache.lookup(key)


def test_perceptual_hash_tells_same_from_different() -> None:
    form = frame("form.png")
    save = perceptual_hash(form, Box(40, 260, 110, 30))
    assert hamming(save, perceptual_hash(form, Box(40, 260, 110, 30))) == 0
    assert hamming(save, perceptual_hash(form, Box(40, 300, 110, 30))) > 10
    assert perceptual_hash(form, Box(900, 700, 40, 20)) != save  # blank area
    assert hamming("zz", save) == 64


def test_cache_runner_relocates_a_moved_target_and_reports_a_renamed_one() -> None:
    form = frame("form.png")
    g = OcrGrounder()
    # Cached where "Reports" was; pretend the cache came from a layout 40 px higher.
    real = g.locate(form, "Reports")[0].box
    old_box = Box(real.x, real.y - 40, real.w, real.h)
    entry = CachedAction(
        Action("click", x=old_box.center[0], y=old_box.center[1], target="Reports"),
        anchor_for(frame("gnumeric.png"), 0, 0, "Reports", old_box),
    )
    rep = CacheRunner([entry], g)
    moved = rep.prepare(0, form)
    assert isinstance(moved, Action) and rep.how[0] == "text"
    assert real.contains(moved.x or 0, moved.y or 0)
    assert rep.entries[0].anchor is not None and rep.entries[0].anchor.box == real
    renamed = CachedAction(entry.action, entry.anchor.__class__(old_box, "0" * 16, "Analytics"))
    div = CacheRunner([renamed], g).prepare(0, form)
    assert isinstance(div, Divergence) and div.index == 0 and "not found" in div.reason
    same = CachedAction(entry.action, anchor_for(form, 0, 0, "Reports", real))
    rep2 = CacheRunner([same], g)
    assert rep2.prepare(0, form) == entry.action and rep2.how[0] == "hash"


def test_cache_runner_postconditions() -> None:
    inc = labels()["incremental"][0]
    before, after = frame(inc["before"]), frame(inc["after"])
    changed = Box(*inc["changed"])
    e = CachedAction(
        Action("type", text="Shipped to Globex"),
        None,
        postcondition_for(after, changed, "Shipped to Globex"),
    )
    rep = CacheRunner([e], OcrGrounder())
    assert rep.verify(0, after, changed) is None
    div = rep.verify(0, before, None)
    assert isinstance(div, Divergence) and div.acted and "Shipped to Globex" in div.reason
    no_text = CacheRunner([CachedAction(e.action, None, postcondition_for(after, changed))])
    assert isinstance(no_text.verify(0, before, None), Divergence)
    # Other pixels, but the same region changed: the same effect (a path in a title).
    assert no_text.verify(0, before, Box(6, 8, 770, 150)) is None
    far = no_text.verify(0, before, Box(900, 600, 50, 50))
    assert isinstance(far, Divergence) and "instead of" in far.reason
    small_post = postcondition_for(after, Box(4, 140, 150, 20))
    small = CacheRunner([CachedAction(e.action, None, small_post)])
    assert small.verify(0, before, Box(900, 600, 5, 5)) is None  # a caret-sized change: any
    assert isinstance(small.verify(0, before, None), Divergence)
    # A click's small effect must show near its target.
    anchored = CacheRunner(
        [
            CachedAction(
                Action("click", x=80, y=150), anchor_for(after, 80, 150, "Shipped"), small_post
            )
        ]
    )
    assert anchored.verify(0, after, Box(70, 145, 2, 16)) is None
    far_click = anchored.verify(0, before, Box(900, 600, 2, 16))
    assert isinstance(far_click, Divergence) and "nothing changed near" in far_click.reason


def test_written_file_is_plain_inspectable_json(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path)
    path = cache.store("k", sample())
    doc = json.loads(path.read_text())
    assert doc["version"] == 2 and doc["actions"][0]["anchor"]["text"] == "Customer"
    assert doc["actions"][1]["action"] == {"kind": "type", "text": "Acme ${secrets.PIN} ÀÉ€ 你好"}


def test_entries_from_steps_keeps_only_actions_that_ran() -> None:
    from agentcorp.types import ActionResultStep, ActionStep, ObservationStep

    inc = labels()["incremental"][0]
    before, after = frame(inc["before"]), frame(inc["after"])

    def obs(n: int, fr, changed=None):  # type: ignore[no-untyped-def]
        return ObservationStep(n, 0.0, fr.sha256, (1280, 800), (1024, 640), changed, frame=fr)

    click = Action("click", x=160, y=135, target="Monday morning")
    records = [
        obs(0, before),
        ActionStep(1, 0.0, click, "script"),
        ActionResultStep(1, 0.0, True),
        obs(1, after, Box(*inc["changed"])),
        ActionStep(2, 0.0, Action("key", keys="ctrl+q"), "model"),
        ActionResultStep(2, 0.0, False, "denied by policy"),
        ActionStep(3, 0.0, Action("done", summary="ok"), "model"),
    ]
    [entry] = entries_from_steps(records, OcrGrounder())
    assert entry.action == click
    assert entry.anchor is not None and entry.anchor.text == "Monday morning"
    assert entry.anchor.box.w > 64  # the grounded text box, not the default 64x24
    assert entry.post is not None and entry.post.changed == Box(*inc["changed"])
