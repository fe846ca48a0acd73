"""Skills: replay what a task did when it passed, for any new inputs, without any model.

After a task instance passes, its grounded actions are stored with, for each one, the
*anchor* it aimed at (the target's text, its box, a 64-bit perceptual hash of the pixels
there) and its *postcondition* (the region that changed after it, a hash of that region
afterwards, and optionally a text expected there). Input values and secrets in what was
typed or aimed at are stored as ``{inputs.NAME}`` / ``${secrets.NAME}`` templates
(``agentcorp.grounding.provenance``), so the skill is keyed by the task's spec without its
input values and serves every row of a batch. A replay checks each anchor on the current
frame before the action (the hash at the stored box; if it differs, the target is found
again by its text and the action moved with it) and the postcondition after it. The first
divergence hands control back, with the index and reason, so the loop lets the steps or the
model take over from there; the repaired sequence is stored as a *branch* forked at that
action, and later replays take whichever branch fits the screen. A skill that keeps
diverging at one action stops growing there (``REPEAT_LIMIT``) and says so.

On disk: one JSON file per skill key in a folder, written atomically (temp file + rename);
plain data, never code. A file that is corrupt, from another version or edited so that a
click no longer lies in its anchor is a one-line ``ActionCacheError`` naming the field.

Two ways to replay:

- ``CacheRunner(entries, grounder, forks=...)`` for a loop that acts itself (through its
  policy gate and recorder): ``prepare(i, frame)`` gives the action to do or a
  ``Divergence``; ``verify(i, frame_after, changed)`` checks the postcondition.
- ``run_cached(computer, entries, grounder)`` does it all on a ``Computer``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np

from agentcorp._io import UnsafeRead, read_text_bounded
from agentcorp.errors import ConfigError
from agentcorp.grounding.base import Grounder, Hint
from agentcorp.grounding.ocr_grounder import frame_array
from agentcorp.grounding.resolve import Ambiguous, NotFound, resolve
from agentcorp.sandbox.base import Computer, Frame
from agentcorp.types import (
    Action,
    ActionKind,
    ActionResultStep,
    ActionStep,
    Box,
    ObservationStep,
    Step,
)

__all__ = [
    "ActionCache",
    "ActionCacheError",
    "Anchor",
    "Branch",
    "CacheInfo",
    "CacheRunResult",
    "CacheRunner",
    "CachedAction",
    "Divergence",
    "Postcondition",
    "Skill",
    "anchor_for",
    "default_skills_dir",
    "describe",
    "entries_from_steps",
    "hamming",
    "perceptual_hash",
    "postcondition_for",
    "run_cached",
    "skill_from_json",
    "thumb_diff",
    "thumbnail",
]

#: Version of skill files and of the action sequences sessions keep (``cached_run``).
#: Version 2 added branches and input templates; version 1 sequences (no templates) are
#: still read from old sessions, never from skill files.
FORMAT_VERSION = 2
#: A skill that diverged this many times at one step is reported and grows no more there.
REPEAT_LIMIT = 3
#: Most branches one skill keeps (the trunk included).
MAX_BRANCHES = 16
#: Bits (of 64) two perceptual hashes may differ by and still be "the same picture".
HASH_TOLERANCE = 10
#: Largest thumbnail cell change (0-255) a postcondition tolerates (a caret blink is ~10).
THUMB_TOLERANCE = 24
#: A postcondition region smaller than this (px²) only needs *some* change after the action.
SMALL_CHANGE_PX = 20_000

# A cached sequence is a few kilobytes; anything this big is not one of ours.
MAX_CACHE_FILE_BYTES = 8 << 20


class ActionCacheError(ConfigError):
    """A cache file or entry is unreadable; the message names the file and the field."""


# --- hashing -----------------------------------------------------------------------------


def perceptual_hash(frame: Any, box: Box) -> str:
    """A 64-bit difference hash of ``frame`` inside ``box``, as 16 hex digits.

    Robust to a caret blink or anti-aliasing, sensitive to other text or a moved widget.
    """
    px = frame_array(frame)
    h, w = px.shape[:2]
    b = box.expand(0, w, h)
    if b.w < 2 or b.h < 2:
        return "0" * 16
    crop = px[b.y : b.bottom, b.x : b.right].astype(np.float32).mean(axis=2)
    # Area-average down to 9x8 (cheap, numpy only), then compare neighbours.
    ys = np.linspace(0, crop.shape[0], 9).astype(int)
    xs = np.linspace(0, crop.shape[1], 10).astype(int)
    small = np.array(
        [
            [
                crop[ys[r] : max(ys[r + 1], ys[r] + 1), xs[c] : max(xs[c + 1], xs[c] + 1)].mean()
                for c in range(9)
            ]
            for r in range(8)
        ]
    )
    bits = (small[:, 1:] > small[:, :-1] + 1.0).flatten()
    # A flat area has no gradient: name its brightness instead, so "blank" is not "text".
    if not bits.any():
        return f"flat:{int(crop.mean())}"
    return f"{int(''.join('1' if b_ else '0' for b_ in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    """Bits differing between two hashes; 64 (all) when they are not comparable."""
    if a.startswith("flat:") or b.startswith("flat:"):
        if a.startswith("flat:") and b.startswith("flat:"):
            try:
                return 0 if abs(int(a[5:]) - int(b[5:])) <= 8 else 64
            except ValueError:
                return 64
        return 64
    try:
        return bin(int(a, 16) ^ int(b, 16)).count("1")
    except ValueError:
        return 64


THUMB = (32, 16)


def thumbnail(frame: Any, box: Box) -> str:
    """A 32x16 grey thumbnail of ``frame`` inside ``box``, base64: a postcondition's picture.

    Finer than the 64-bit hash, so one new line of text in a large region shows, while a
    blinking caret (a 1 px column) does not.
    """
    px = frame_array(frame)
    h, w = px.shape[:2]
    b = box.expand(0, w, h)
    if b.w < 1 or b.h < 1:
        return ""
    crop = px[b.y : b.bottom, b.x : b.right].astype(np.float32).mean(axis=2)
    tw, th = THUMB
    ys = np.linspace(0, crop.shape[0], th + 1).astype(int)
    xs = np.linspace(0, crop.shape[1], tw + 1).astype(int)
    cells = np.array(
        [
            [
                crop[ys[r] : max(ys[r + 1], ys[r] + 1), xs[c] : max(xs[c + 1], xs[c] + 1)].mean()
                for c in range(tw)
            ]
            for r in range(th)
        ]
    )
    return base64.b64encode(np.clip(cells, 0, 255).astype(np.uint8).tobytes()).decode()


def thumb_diff(a: str, b: str) -> int:
    """The largest brightness change of any thumbnail cell (255 when not comparable)."""
    try:
        x = np.frombuffer(base64.b64decode(a, validate=True), np.uint8).astype(np.int16)
        y = np.frombuffer(base64.b64decode(b, validate=True), np.uint8).astype(np.int16)
    except (ValueError, TypeError):
        return 255
    if x.size != y.size or x.size == 0:
        return 255
    return int(np.abs(x - y).max())


# --- entries -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the action aimed at: visible text (if any), its box, a hash of its pixels.

    ``thumb`` (a 32x16 thumbnail) makes the check strict enough to tell "Monday morning"
    from "Monday at nine", which a 64-bit hash of two similar text runs cannot.
    """

    box: Box
    phash: str
    text: str | None = None
    thumb: str | None = None


@dataclass(frozen=True, slots=True)
class Postcondition:
    """What the action changed: the region, a thumbnail of it afterwards, a text expected."""

    changed: Box | None
    thumb: str | None = None
    expect_text: str | None = None


@dataclass(frozen=True, slots=True)
class CachedAction:
    """One cached action with its anchor (None for keys and typing) and postcondition."""

    action: Action
    anchor: Anchor | None = None
    post: Postcondition | None = None


def anchor_for(
    frame: Any, x: int, y: int, text: str | None = None, box: Box | None = None
) -> Anchor:
    """The anchor of an action at (x, y): ``box`` (the grounded target) or 64x24 around it."""
    px = frame_array(frame)
    h, w = px.shape[:2]
    b = box if box is not None else Box(x - 32, y - 12, 64, 24).expand(0, w, h)
    return Anchor(b, perceptual_hash(px, b), text, thumbnail(px, b))


def postcondition_for(
    frame_after: Any, changed: Box | None, expect_text: str | None = None
) -> Postcondition:
    """The postcondition of an action from its settled frame and changed region."""
    if changed is None or changed.w <= 3 or changed.h <= 3:
        # Nothing, or only a caret moved/blinked: nothing checkable beyond the text.
        return Postcondition(None, None, expect_text)
    return Postcondition(changed, thumbnail(frame_after, changed), expect_text)


def _box_json(b: Box | None) -> list[int] | None:
    return None if b is None else [b.x, b.y, b.w, b.h]


def _entry_json(e: CachedAction) -> dict[str, Any]:
    a = {
        k: v
        for k, v in dataclasses.asdict(e.action).items()
        if v is not None and v != () and not (k in ("dx", "dy") and v == 0)
    }
    a["kind"] = e.action.kind
    if e.action.path:
        a["path"] = [list(p) for p in e.action.path]
    if e.action.model_xy:
        a["model_xy"] = list(e.action.model_xy)
    out: dict[str, Any] = {"action": a}
    if e.anchor is not None:
        out["anchor"] = {
            "box": _box_json(e.anchor.box),
            "phash": e.anchor.phash,
            "text": e.anchor.text,
            "thumb": e.anchor.thumb,
        }
    if e.post is not None:
        out["post"] = {
            "changed": _box_json(e.post.changed),
            "thumb": e.post.thumb,
            "expect_text": e.post.expect_text,
        }
    return out


_KINDS = set(get_args(ActionKind))
#: A look a later one repeats (``wait_for`` polling): no costly "not found" checks.
_POLL = Hint(thorough=False)
_ACTION_FIELDS = {f.name: f for f in dataclasses.fields(Action)}


def _bad(where: str, msg: str) -> ActionCacheError:
    return ActionCacheError(f"{where}: {msg}")


def _box_from(v: Any, where: str) -> Box | None:
    if v is None:
        return None
    if (
        not isinstance(v, list)
        or len(v) != 4
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in v)
    ):
        raise _bad(where, f"expected a box [x, y, w, h] of integers, got {v!r}")
    return Box(*v)


def _str_or_none(v: Any, where: str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise _bad(where, f"expected a string, got {type(v).__name__}")
    return v


def _action_value(k: str, v: Any, where: str) -> Any:
    """One field of a stored action, type-checked (``where`` names it in the error)."""
    if k not in _ACTION_FIELDS:
        raise _bad(where, "unknown field")
    if k in ("x", "y", "dx", "dy"):
        if not isinstance(v, int) or isinstance(v, bool):
            raise _bad(where, f"expected an integer, got {v!r}")
        return v
    if k == "seconds":
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise _bad(where, f"expected a number, got {v!r}")
        return v
    if k == "path":
        if not isinstance(v, list) or not all(_is_point(p) for p in v):
            raise _bad(where, "expected a list of [x, y] points")
        return tuple((p[0], p[1]) for p in v)
    if k == "model_xy":
        if not _is_point(v):
            raise _bad(where, "expected [x, y]")
        return (v[0], v[1])
    if k == "kind":
        return v
    return _str_or_none(v, where)


def _is_point(p: Any) -> bool:
    return (
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in p)
    )


def _action_from(a: Any, where: str) -> Action:
    if not isinstance(a, dict):
        raise _bad(where, "missing or not an object")
    kind = a.get("kind")
    if kind not in _KINDS:
        raise _bad(f"{where}.kind", f"unknown action kind {kind!r}")
    return Action(**{k: _action_value(k, v, f"{where}.{k}") for k, v in a.items()})


def _anchor_from(an: Any, where: str) -> Anchor | None:
    if an is None:
        return None
    if not isinstance(an, dict):
        raise _bad(where, "expected an object")
    box = _box_from(an.get("box"), f"{where}.box")
    if box is None:
        raise _bad(f"{where}.box", "missing")
    ph = _str_or_none(an.get("phash"), f"{where}.phash")
    if ph is None:
        raise _bad(f"{where}.phash", "missing")
    return Anchor(
        box,
        ph,
        _str_or_none(an.get("text"), f"{where}.text"),
        _str_or_none(an.get("thumb"), f"{where}.thumb"),
    )


def _post_from(po: Any, where: str) -> Postcondition | None:
    if po is None:
        return None
    if not isinstance(po, dict):
        raise _bad(where, "expected an object")
    return Postcondition(
        _box_from(po.get("changed"), f"{where}.changed"),
        _str_or_none(po.get("thumb"), f"{where}.thumb"),
        _str_or_none(po.get("expect_text"), f"{where}.expect_text"),
    )


def _entry_from(d: Any, where: str) -> CachedAction:
    if not isinstance(d, dict):
        raise _bad(where, f"expected an object, got {type(d).__name__}")
    action = _action_from(d.get("action"), f"{where}.action")
    anchor = _anchor_from(d.get("anchor"), f"{where}.anchor")
    # The anchor is what is checked before the click: a point outside it (a hand edit, a
    # mix of two files) would click something never checked.
    if (
        anchor is not None
        and action.x is not None
        and action.y is not None
        and not anchor.box.expand(8, 1 << 30, 1 << 30).contains(action.x, action.y)
    ):
        box = _box_json(anchor.box)
        raise _bad(
            f"{where}.action", f"point ({action.x}, {action.y}) is outside its anchor box {box}"
        )
    return CachedAction(action, anchor, _post_from(d.get("post"), f"{where}.post"))


def entries_from_json(
    data: Any, where: str, versions: tuple[int, ...] = (FORMAT_VERSION,)
) -> tuple[list[CachedAction], dict[str, Any]]:
    """A skill document's trunk; raises ``ActionCacheError`` naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise _bad(where, f"expected a JSON object, got {type(data).__name__}")
    if data.get("version") not in versions:
        raise _bad(
            f"{where}: version",
            f"unsupported skill version {data.get('version')!r} (this agentcorp reads "
            f"{', '.join(map(str, versions))}; `agentcorp skills forget` removes old ones)",
        )
    acts = data.get("actions")
    if not isinstance(acts, list):
        raise _bad(f"{where}: actions", "missing or not a list")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise _bad(f"{where}: meta", "expected an object")
    return [_entry_from(e, f"{where}: actions[{i}]") for i, e in enumerate(acts)], meta


def _positions_from(v: Any, n: int, where: str) -> list[int] | None:
    if v is None:
        return None
    if (
        not isinstance(v, list)
        or len(v) != n
        or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in v)
    ):
        raise _bad(where, f"expected {n} step indexes (one per action) or null")
    return list(v)


@dataclass(slots=True)
class Branch:
    """One way through a task: a whole action sequence, and where it forks off its parent.

    The trunk (branch 0) was learned first; a later branch was stored when a replay of
    ``parent`` diverged before its action ``at`` and the model (or the steps) repaired it:
    its first ``at`` actions are the parent's, the rest the repair. ``positions`` ties each
    action to the scripted step it came from (None for a model-driven task).
    """

    entries: list[CachedAction]
    positions: list[int] | None = None
    parent: int | None = None
    at: int = 0


@dataclass(slots=True)
class Skill:
    """A task's learned actions, branch by branch, with where replays diverged."""

    key: str
    branches: list[Branch]
    meta: dict[str, Any] = field(default_factory=dict)
    #: Per action index, how many replays diverged there (``REPEAT_LIMIT`` stops growth).
    divergences: dict[int, int] = field(default_factory=dict)
    stored_at: float = 0.0

    @property
    def trunk(self) -> list[CachedAction]:
        """The first sequence learned."""
        return self.branches[0].entries if self.branches else []

    def grow(self, branch: Branch) -> str | None:
        """Add ``branch`` beside the others; the reason when it is not added (else None)."""
        if branch.parent is None or not 0 <= branch.parent < len(self.branches):
            return f"branch parent {branch.parent!r} is not a branch of this skill"
        same = [_entry_json(e) for e in branch.entries]
        for b in self.branches:
            if [_entry_json(e) for e in b.entries] == same:
                return "an identical branch is stored already"
        if self.divergences.get(branch.at, 0) > REPEAT_LIMIT:
            return (
                f"step {branch.at + 1} diverged {self.divergences[branch.at]} times; "
                "the skill grows no more there"
            )
        if len(self.branches) >= MAX_BRANCHES:
            return f"the skill holds {MAX_BRANCHES} branches already"
        self.branches.append(branch)
        return None

    def to_json(self) -> dict[str, Any]:
        """The skill as its file's JSON document (plain data, no code)."""
        trunk = self.branches[0] if self.branches else Branch([])
        return {
            "version": FORMAT_VERSION,
            "key": self.key,
            "stored_at": self.stored_at or time.time(),
            "meta": {**self.meta, "script_positions": trunk.positions},
            "actions": [_entry_json(e) for e in trunk.entries],
            "branches": [
                {
                    "parent": b.parent,
                    "at": b.at,
                    "positions": b.positions,
                    "actions": [_entry_json(e) for e in b.entries],
                }
                for b in self.branches[1:]
            ],
            "divergences": {str(k): v for k, v in sorted(self.divergences.items())},
        }


def _branch_from(d: Any, n_before: int, where: str) -> Branch:
    if not isinstance(d, dict):
        raise _bad(where, "expected an object")
    acts = d.get("actions")
    if not isinstance(acts, list):
        raise _bad(f"{where}.actions", "missing or not a list")
    entries = [_entry_from(e, f"{where}.actions[{i}]") for i, e in enumerate(acts)]
    parent, at = d.get("parent"), d.get("at")
    if not isinstance(parent, int) or isinstance(parent, bool) or not 0 <= parent < n_before:
        raise _bad(f"{where}.parent", f"expected the index of an earlier branch, got {parent!r}")
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= len(entries):
        raise _bad(f"{where}.at", f"expected an action index, got {at!r}")
    positions = _positions_from(d.get("positions"), len(entries), f"{where}.positions")
    return Branch(entries, positions, parent, at)


def skill_from_json(data: Any, where: str) -> Skill:
    """A skill file's document as a ``Skill``; ``ActionCacheError`` names the field."""
    trunk, meta = entries_from_json(data, where)
    try:
        positions = _positions_from(
            meta.get("script_positions"), len(trunk), f"{where}: meta.script_positions"
        )
    except ActionCacheError:
        positions = None  # positions only speed up a hand-over; the actions still replay
    branches = [Branch(trunk, positions)]
    raw = data.get("branches", [])
    if not isinstance(raw, list):
        raise _bad(f"{where}: branches", "expected a list")
    for i, b in enumerate(raw):
        branches.append(_branch_from(b, len(branches), f"{where}: branches[{i}]"))
    div = data.get("divergences", {})
    if not isinstance(div, dict) or not all(
        isinstance(k, str) and k.isdigit() and isinstance(v, int) and not isinstance(v, bool)
        for k, v in div.items()
    ):
        raise _bad(f"{where}: divergences", "expected an object of step index to count")
    stored = data.get("stored_at")
    return Skill(
        str(data.get("key", "")),
        branches,
        {k: v for k, v in meta.items() if k != "script_positions"},
        {int(k): v for k, v in div.items()},
        float(stored) if isinstance(stored, int | float) else 0.0,
    )


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """One stored sequence, as ``ActionCache.entries()`` lists it."""

    key: str
    path: Path
    actions: int
    stored_at: float
    meta: dict[str, Any]
    branches: int = 1
    divergences: dict[int, int] = field(default_factory=dict)


class ActionCache:
    """Cached action sequences on disk, one JSON file per key under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _path(self, key: str) -> Path:
        if not key or not all(c.isalnum() or c in "-_." for c in key) or key.startswith("."):
            raise ActionCacheError(f"cache key {key!r}: use letters, digits, '-', '_' or '.'")
        return self.dir / f"{key}.json"

    def load(self, key: str) -> Skill | None:
        """The skill stored under ``key``, or None. A bad file raises a one-line error."""
        path = self._path(key)
        try:
            text = read_text_bounded(path, MAX_CACHE_FILE_BYTES, what="cache file")
        except FileNotFoundError:
            return None
        except UnsafeRead as exc:
            raise ActionCacheError(str(exc)) from None
        except OSError as exc:
            raise ActionCacheError(f"{path}: cannot read: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ActionCacheError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from exc
        except RecursionError:
            raise ActionCacheError(f"{path}: nested too deeply") from None
        return skill_from_json(data, str(path))

    def lookup(self, key: str) -> list[CachedAction] | None:
        """The trunk of the skill under ``key``, or None. A corrupt file raises a one-line error."""
        skill = self.load(key)
        return None if skill is None else skill.trunk

    def store(
        self, key: str, entries: Sequence[CachedAction], meta: Mapping[str, Any] | None = None
    ) -> Path:
        """Write a one-branch skill for ``key`` atomically (replacing what was there)."""
        m = dict(meta or {})
        positions = m.pop("script_positions", None)
        pos = list(positions) if isinstance(positions, list) else None
        return self.save(Skill(key, [Branch(list(entries), pos)], m))

    def save(self, skill: Skill) -> Path:
        """Write ``skill`` atomically (a reader sees the old or the new file, never half)."""
        path = self._path(skill.key)
        doc = skill.to_json()
        doc["stored_at"] = time.time()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{skill.key}.", suffix=".tmp", dir=self.dir)
        except OSError as exc:
            raise ActionCacheError(
                f"{self.dir}: cannot store skills here: {exc.strerror or exc} "
                "(set AGENTCORP_SKILLS_DIR or --cache-dir to a writable folder)"
            ) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def clear(self, key: str | None = None) -> int:
        """Remove one key's file, or every cache file; returns how many were removed."""
        if key is not None:
            path = self._path(key)
            try:
                path.unlink()
            except FileNotFoundError:
                return 0
            return 1
        n = 0
        if self.dir.is_dir():
            for p in self.dir.glob("*.json"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def entries(self) -> list[CacheInfo]:
        """Every stored skill (unreadable files raise ``ActionCacheError``), newest first."""
        out: list[CacheInfo] = []
        if not self.dir.is_dir():
            return out
        for p in sorted(self.dir.glob("*.json")):
            skill = self.load(p.stem)
            if skill is None:
                continue  # removed meanwhile
            out.append(
                CacheInfo(
                    p.stem,
                    p,
                    len(skill.trunk),
                    skill.stored_at,
                    skill.meta,
                    len(skill.branches),
                    dict(skill.divergences),
                )
            )
        out.sort(key=lambda i: -i.stored_at)
        return out

    def forget(self, task: str | None = None) -> int:
        """Remove the skills of ``task`` (every skill when None); how many were removed.

        Files that cannot be read are removed with ``task=None`` only.
        """
        if task is None:
            return self.clear()
        n = 0
        for info in self.entries():
            if info.meta.get("task") == task:
                info.path.unlink(missing_ok=True)
                n += 1
        return n


def default_skills_dir(company_dir: Path | None, environ: Mapping[str, str]) -> Path:
    """Where skills live: ``$AGENTCORP_SKILLS_DIR``, else beside the company.

    ``<company folder>/.agentcorp/skills`` travels with the company (and so with a run
    shipped to other nodes); with no company, ``~/.cache/agentcorp/skills``.
    """
    env = environ.get("AGENTCORP_SKILLS_DIR") or environ.get("AGENTCORP_CACHE_DIR")
    if env:
        return Path(env)
    if company_dir is not None:
        return company_dir / ".agentcorp" / "skills"
    return Path.home() / ".cache" / "agentcorp" / "skills"


def describe(skill: Skill) -> list[str]:
    """A skill as lines of text: each branch, each action with its anchor and postcondition."""
    lines: list[str] = []
    for b_i, b in enumerate(skill.branches):
        head = "trunk" if b.parent is None else f"branch {b_i} (from {b.parent} at {b.at + 1})"
        lines.append(f"{head}: {len(b.entries)} actions")
        for n, e in enumerate(b.entries):
            if b.parent is not None and n < b.at:
                continue  # the parent's actions, listed above
            lines.append(f"  {n + 1:>3}  {_describe_entry(e)}")
    for at, times in sorted(skill.divergences.items()):
        flag = "  (grows no more there)" if times > REPEAT_LIMIT else ""
        lines.append(f"diverged at action {at + 1}: {times} time{'s' if times != 1 else ''}{flag}")
    return lines


def _describe_entry(e: CachedAction) -> str:
    a = e.action
    what = {
        k: v
        for k, v in (
            ("x", a.x),
            ("y", a.y),
            ("text", a.text),
            ("keys", a.keys),
            ("target", a.target),
            ("url", a.url),
        )
        if v is not None
    }
    line = f"{a.kind:<12} {json.dumps(what, ensure_ascii=False)}"
    if e.anchor is not None:
        b = e.anchor.box
        line += f"  anchor={e.anchor.text!r}@[{b.x},{b.y},{b.w},{b.h}]"
    if e.post is not None and e.post.changed is not None:
        b = e.post.changed
        line += f"  post=[{b.x},{b.y},{b.w},{b.h}]"
        if e.post.expect_text:
            line += f" expects {e.post.expect_text!r}"
    return line


def entries_from_steps(
    steps: Iterable[Step],
    grounder: Grounder | None = None,
) -> list[CachedAction]:
    """The cacheable sequence of a passed episode, from the loop's own step records.

    Each executed action (``ActionStep`` followed by an ok ``ActionResultStep``) becomes an
    entry; its anchor is taken on the observation frame before it (the target's box when
    ``grounder`` finds its text there, else 64x24 around the point) and its postcondition
    on the observation after it. ``done``/``fail`` and refused or failed actions are left out.
    Observation records must carry their ``frame`` (the loop's in-memory records do).
    """
    out: list[CachedAction] = []
    frame: Any = None
    pending: Action | None = None
    anchor: Anchor | None = None
    waiting_post = False
    for st in steps:
        if isinstance(st, ObservationStep):
            if waiting_post and out and st.frame is not None:
                last = out[-1]
                out[-1] = dataclasses.replace(last, post=postcondition_for(st.frame, st.changed))
                waiting_post = False
            frame = st.frame
        elif isinstance(st, ActionStep):
            pending, anchor = None, None
            a = st.action
            if a.kind in ("done", "fail", "zoom", "request_help"):
                continue
            pending = a
            if a.x is not None and a.y is not None and frame is not None:
                box = None
                if a.target and grounder is not None:
                    near = [
                        c
                        for c in grounder.locate(frame, a.target)
                        if c.box.expand(4, 1 << 30, 1 << 30).contains(a.x, a.y)
                    ]
                    box = near[0].box if near else None
                anchor = anchor_for(frame, a.x, a.y, a.target, box)
        elif isinstance(st, ActionResultStep):
            if st.ok and pending is not None:
                out.append(CachedAction(pending, anchor))
                waiting_post = True
            pending, anchor = None, None
    return out


# --- running cached actions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a cached run stopped: the action ``index``, why, and whether it already ran."""

    index: int
    reason: str
    acted: bool = False


def _shift(a: Action, dx: int, dy: int) -> Action:
    if dx == 0 and dy == 0:
        return a
    return dataclasses.replace(
        a,
        x=None if a.x is None else a.x + dx,
        y=None if a.y is None else a.y + dy,
        path=tuple((px + dx, py + dy) for px, py in a.path),
    )


def _iou(a: Box, b: Box) -> float:
    """Overlap of two boxes relative to the smaller one (1.0 when one holds the other)."""
    w = min(a.right, b.right) - max(a.x, b.x)
    h = min(a.bottom, b.bottom) - max(a.y, b.y)
    if w <= 0 or h <= 0:
        return 0.0
    return (w * h) / max(1, min(a.w * a.h, b.w * b.h))


class CacheRunner:
    """Checks cached actions one at a time for a loop that performs them itself.

    ``prepare(i, frame)`` verifies entry ``i``'s anchor on ``frame`` and returns the action
    to perform (moved if its target moved) or a ``Divergence``; ``verify(i, frame, changed)``
    checks the postcondition on the settled frame. ``entries`` ends up holding the sequence
    with relocated anchors, ready to store again.
    """

    def __init__(
        self,
        entries: Sequence[CachedAction],
        grounder: Grounder | None = None,
        tolerance: int = HASH_TOLERANCE,
        forks: Sequence[tuple[int, int, Sequence[CachedAction]]] = (),
    ) -> None:
        self.entries = list(entries)
        self.grounder = grounder
        self.tolerance = tolerance
        # Branches 1.. of a skill as (parent, at, whole sequence): where a replay of the
        # parent diverged before, what repaired it.
        self._forks = [(p, at, list(seq)) for p, at, seq in forks]
        #: The branch being replayed (0: the trunk) and the ones it went through.
        self.branch = 0
        self._lineage = {0}
        # How far the screen content moved at the last relocation; later anchors and
        # postconditions are looked for there too (the whole document moved, usually).
        self._drift = (0, 0)
        #: Per action, how its anchor was confirmed: "hash", "text" or "none".
        self.how: dict[int, str] = {}

    def _same(self, frame: Any, an: Anchor, box: Box) -> bool:
        if an.thumb:
            return thumb_diff(thumbnail(frame, box), an.thumb) <= THUMB_TOLERANCE
        return hamming(perceptual_hash(frame, box), an.phash) <= self.tolerance

    def prepare(self, i: int, frame: Any) -> Action | Divergence:
        """The action to perform for entry ``i`` on ``frame``, or why it cannot be.

        When entry ``i`` does not fit the screen but a branch forked here fits, the replay
        continues on that branch.
        """
        got = self._prepare(i, frame)
        if isinstance(got, Divergence):
            alt = self.fork(i, frame)
            if alt is not None:
                return alt
        return got

    def fork(self, i: int, frame: Any) -> Action | None:
        """Switch to a branch forked at action ``i`` whose anchor fits ``frame``, if any.

        Only a branch whose action ``i`` has an anchor confirmed on the screen is taken: an
        action without one (a key, typing) says nothing about which branch this screen is.
        """
        for b, (parent, at, seq) in enumerate(self._forks, start=1):
            if at != i or parent not in self._lineage or b in self._lineage or len(seq) <= i:
                continue
            if seq[i].anchor is None:
                continue
            saved = (self.entries, self._drift, dict(self.how))
            self.entries = [*self.entries[:i], *seq[i:]]
            got = self._prepare(i, frame)
            if not isinstance(got, Divergence):
                self.branch = b
                self._lineage.add(b)
                return got
            self.entries, self._drift, self.how = saved
        return None

    def _prepare(self, i: int, frame: Any) -> Action | Divergence:
        e = self.entries[i]
        if e.anchor is None:
            self.how[i] = "none"
            return e.action
        an = e.anchor
        if self._same(frame, an, an.box):
            self.how[i] = "hash"
            return e.action
        dx, dy = self._drift
        if (dx or dy) and self._same(
            frame, an, Box(an.box.x + dx, an.box.y + dy, an.box.w, an.box.h)
        ):
            self.how[i] = "hash"
            moved = _shift(e.action, dx, dy)
            self.entries[i] = dataclasses.replace(
                e,
                action=moved,
                anchor=dataclasses.replace(
                    an, box=Box(an.box.x + dx, an.box.y + dy, an.box.w, an.box.h)
                ),
            )
            return moved
        if not an.text or self.grounder is None:
            return Divergence(i, f"the screen at {an.box.center} no longer looks as cached")
        found = resolve(self.grounder.locate(frame, an.text), None, an.text)
        if isinstance(found, Ambiguous | NotFound):
            return Divergence(i, f"anchor {found}")
        new_box = found.box
        dx = new_box.center[0] - an.box.center[0]
        dy = new_box.center[1] - an.box.center[1]
        self._drift = (dx, dy)
        moved = _shift(e.action, dx, dy)
        self.entries[i] = dataclasses.replace(
            e, action=moved, anchor=anchor_for(frame, 0, 0, an.text, new_box)
        )
        self.how[i] = "text"
        return moved

    def verify(self, i: int, frame_after: Any, changed: Box | None) -> Divergence | None:
        """Whether entry ``i``'s postcondition holds on the settled frame after it ran."""
        post = self.entries[i].post
        if post is None or post.changed is None:
            return None
        dx, dy = self._drift
        region = Box(post.changed.x + dx, post.changed.y + dy, post.changed.w, post.changed.h)
        if (
            post.thumb is not None
            and thumb_diff(thumbnail(frame_after, region), post.thumb) <= THUMB_TOLERANCE
        ):
            return None
        if post.expect_text and self.grounder is not None:
            cands = self.grounder.locate(frame_after, post.expect_text)
            if cands:
                return None
            return Divergence(
                i, f"expected '{post.expect_text}' after the action; not there", acted=True
            )
        if changed is None:
            return Divergence(i, "the action changed nothing on screen", acted=True)
        # A small cached change (a caret moving, a field's text) depends on where the caret
        # was before: any change will do. A large one (a dialog, a panel) must happen in the
        # same place; its content may differ (a path in a title, a clock).
        if region.w * region.h < SMALL_CHANGE_PX:
            an = self.entries[i].anchor
            if an is None or _iou(changed, region) >= 0.5:
                # The same small region changed as when learned; its content may show
                # other data (a skill replayed with other inputs).
                return None
            # A pointer action's small effect (a caret placed, a checkbox ticked) shows at
            # its target: until it does, the app has not handled the click yet.
            near = an.box.expand(24, 1 << 30, 1 << 30)
            if _iou(changed, near) > 0:
                return None
            return Divergence(
                i, f"nothing changed near {an.box.center} after the action", acted=True
            )
        if _iou(changed, region) >= 0.5 or ((dx or dy) and _iou(changed, post.changed) >= 0.5):
            return None
        return Divergence(
            i, f"the action changed {changed} instead of around {region.center}", acted=True
        )


@dataclass(slots=True)
class CacheRunResult:
    """How far a cached run got: ``done`` actions ran and checked; ``divergence`` if it stopped."""

    done: int
    divergence: Divergence | None
    entries: list[CachedAction]
    elapsed_s: float
    frame: Frame | None = None
    how: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every action replayed and checked."""
        return self.divergence is None


def perform(computer: Computer, a: Action) -> None:
    """Do one action on ``computer`` (model-free kinds only; ``done``/``fail`` do nothing)."""
    k = a.kind
    if k in ("click", "right_click", "double_click", "move", "scroll"):
        if a.x is None or a.y is None:
            raise ActionCacheError(f"cached {k} has no coordinates")
        if k == "click":
            computer.click(a.x, a.y)
        elif k == "right_click":
            computer.click(a.x, a.y, "right")
        elif k == "double_click":
            computer.double_click(a.x, a.y)
        elif k == "move":
            computer.move(a.x, a.y)
        else:
            computer.scroll(a.x, a.y, a.dx, a.dy)
    elif k == "drag":
        computer.drag(a.path)
    elif k == "type":
        computer.type(a.text or "")
    elif k == "key":
        computer.key(a.keys or "")
    elif k == "wait":
        computer.wait(a.seconds or 0.0)
    elif k == "open_url":
        goto = getattr(computer, "goto", None)
        if not callable(goto):
            raise ActionCacheError("cached open_url on a computer without goto()")
        goto(a.url or "")


def run_cached(
    computer: Computer,
    entries: Sequence[CachedAction],
    grounder: Grounder | None = None,
    *,
    settle_timeout: float = 2.0,
    tolerance: int = HASH_TOLERANCE,
    check: Callable[[Action], str | None] | None = None,
) -> CacheRunResult:
    """Replay ``entries`` on ``computer`` until the end or the first divergence.

    ``check(action)`` (e.g. the policy gate) may return a reason to refuse an action, which
    counts as a divergence. ``wait_for`` actions poll the grounder for their target.
    """
    t0 = time.perf_counter()
    rep = CacheRunner(entries, grounder, tolerance)
    frame = computer.screenshot()
    for i in range(len(rep.entries)):
        a = rep.entries[i].action
        if a.kind == "wait_for":
            if grounder is None or not a.target:
                return CacheRunResult(
                    i,
                    Divergence(i, "wait_for needs a grounder and a target"),
                    rep.entries,
                    time.perf_counter() - t0,
                    frame,
                    rep.how,
                )
            deadline = time.monotonic() + (a.seconds or settle_timeout)
            # Polls look the quick way; "did not appear" is said after a thorough look.
            while not grounder.locate(frame, a.target, _POLL):
                if time.monotonic() >= deadline:
                    if grounder.locate(frame, a.target):
                        break
                    return CacheRunResult(
                        i,
                        Divergence(i, f"'{a.target}' did not appear"),
                        rep.entries,
                        time.perf_counter() - t0,
                        frame,
                        rep.how,
                    )
                frame = computer.settle(0.2, since=frame).frame
            continue
        todo = rep.prepare(i, frame)
        if isinstance(todo, Divergence):
            return CacheRunResult(i, todo, rep.entries, time.perf_counter() - t0, frame, rep.how)
        if check is not None and (why := check(todo)) is not None:
            return CacheRunResult(
                i,
                Divergence(i, f"refused: {why}"),
                rep.entries,
                time.perf_counter() - t0,
                frame,
                rep.how,
            )
        perform(computer, todo)
        # Always settle, even with nothing to check: skipping it let a key ("End") race the
        # typing after it in mousepad (measured: the text landed before the key took effect).
        before = frame
        settled = computer.settle(settle_timeout, since=before)
        bad = rep.verify(i, settled.frame, settled.changed)
        # A busy app may draw after the screen looked settled (a caret blink is a change
        # too): look again for up to ``settle_timeout`` before calling it a divergence.
        deadline = time.monotonic() + settle_timeout
        while bad is not None and time.monotonic() < deadline:
            computer.wait(0.05)
            settled = computer.settle(settle_timeout, since=before)
            bad = rep.verify(i, settled.frame, settled.changed)
        frame = settled.frame
        if bad is not None:
            return CacheRunResult(i, bad, rep.entries, time.perf_counter() - t0, frame, rep.how)
    return CacheRunResult(
        len(rep.entries), None, rep.entries, time.perf_counter() - t0, frame, rep.how
    )
