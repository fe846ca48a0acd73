"""Value provenance: a learned action sequence made reusable for any input values.

When a task instance passes, its actions hold that instance's data: the customer name it
typed, the row it clicked. Before they are stored as a skill, every input value found in
what was typed or aimed at is replaced by its ``{inputs.NAME}`` placeholder, and every
secret value by ``${secrets.NAME}`` (a secret's value never reaches a skill file). A later
instance renders the placeholders with its own values before replaying.

What counts as "found": the value as ``render_template`` writes it (``true``/``false`` for
booleans, ``str()`` otherwise), delimited by non-word characters, so an input ``Ann`` is
not found inside ``Annual report`` and ``4`` not inside ``1.45``; every occurrence is
replaced (an input typed twice). Longer values win over values they contain. Empty values
are never searched (they would match everywhere): the skill key keeps apart instances
whose inputs are empty from those whose are not. Two inputs with the same value cannot be
told apart: the placeholder names the first, and an instance where they differ diverges at
the first action that used it. A non-empty input found nowhere is a *constant* of the
skill: it is only replayed for instances with that same value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentcorp.grounding.cache import ActionCacheError, Anchor, CachedAction, Divergence

__all__ = [
    "INPUT_RE",
    "SECRET_RE",
    "Provenance",
    "input_text",
    "render_entries",
    "skill_key",
    "templatize",
    "unusable_because",
]

#: ``{inputs.NAME}`` (the spec's template syntax).
INPUT_RE = re.compile(r"\{inputs\.([A-Za-z_][A-Za-z0-9_]*)\}")
#: ``${secrets.NAME}`` (the spec's secret placeholder).
SECRET_RE = re.compile(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER = re.compile(f"({SECRET_RE.pattern}|{INPUT_RE.pattern})")
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
#: Action fields that may hold input or secret text.
_ACTION_TEXTS = ("text", "target", "into", "url", "summary")


def input_text(value: Any) -> str:
    """An input value as templates render it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class Provenance:
    """What templating found: inputs bound to placeholders, constants, same-valued groups."""

    bound: tuple[str, ...] = ()
    constants: dict[str, Any] = field(default_factory=dict)
    same: tuple[tuple[str, ...], ...] = ()

    def to_meta(self) -> dict[str, Any]:
        """As a skill file's ``meta`` entries."""
        return {
            "inputs_bound": list(self.bound),
            "inputs_constant": dict(self.constants),
            "inputs_same": [list(g) for g in self.same],
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], where: str) -> Provenance:
        """Read ``to_meta``'s output back; ``ActionCacheError`` names a bad field."""
        bound = meta.get("inputs_bound", [])
        const = meta.get("inputs_constant", {})
        same = meta.get("inputs_same", [])
        if not isinstance(bound, list) or not all(isinstance(b, str) for b in bound):
            raise ActionCacheError(f"{where}: meta.inputs_bound: expected a list of names")
        if not isinstance(const, dict) or not all(
            isinstance(v, str | int | float | bool) for v in const.values()
        ):
            raise ActionCacheError(f"{where}: meta.inputs_constant: expected name: value")
        if not isinstance(same, list) or not all(
            isinstance(g, list) and all(isinstance(n, str) for n in g) for g in same
        ):
            raise ActionCacheError(f"{where}: meta.inputs_same: expected lists of names")
        return cls(tuple(bound), dict(const), tuple(tuple(g) for g in same))


def skill_key(skill_hash: str, inputs: Mapping[str, Any], names: Collection[str]) -> str:
    """The skill key of a task (its hash without input values) for these ``inputs``.

    Only which of the task's inputs ``names`` are empty counts, never their values: an
    instance with an empty field does different things (it types nothing there).
    """
    empty = sorted(n for n in names if n in inputs and input_text(inputs[n]) == "")
    blob = json.dumps({"skill": skill_hash, "empty": empty}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _pattern(value: str) -> str:
    """``value`` as a regex that only matches it standing on its own."""
    number = _NUMBER.match(value) is not None
    word = r"[\w.,]" if number else r"\w"
    head = f"(?<!{word})" if re.match(r"\w", value[0]) else ""
    tail = "(?!\\w|[.,]\\d)" if number else "(?!\\w)"
    if not re.match(r"\w", value[-1]):
        tail = ""
    return head + re.escape(value) + tail


@dataclass
class _Finder:
    """One pass over a text replacing secret values and input values by placeholders."""

    secrets: dict[str, str]  # value -> placeholder
    inputs: dict[str, str]  # value -> input name
    found: set[str] = field(default_factory=set)
    regex: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        alts: list[str] = []
        for value in sorted({*self.secrets, *self.inputs}, key=lambda v: (-len(v), v)):
            # A secret anywhere, even inside a word: it must never be stored.
            alts.append(re.escape(value) if value in self.secrets else _pattern(value))
        self.regex = re.compile("|".join(f"(?:{a})" for a in alts)) if alts else None

    def sub(self, text: str | None) -> str | None:
        if not text or self.regex is None:
            return text
        if INPUT_RE.search(text):
            # Learned text that already reads like a placeholder would render as data.
            raise ActionCacheError(f"learned text {text[:40]!r} holds a literal {{inputs.…}}")
        parts = _PLACEHOLDER.split(text)
        out: list[str] = []
        # split() with one capture group (plus the inner ones) interleaves texts and matches.
        step = 1 + _PLACEHOLDER.groups
        for i in range(0, len(parts), step):
            out.append(self.regex.sub(self._one, parts[i]))
            if i + 1 < len(parts):
                out.append(parts[i + 1])
        return "".join(out)

    def _one(self, m: re.Match[str]) -> str:
        v = m.group(0)
        if v in self.secrets:
            return self.secrets[v]
        name = self.inputs[v]
        self.found.add(name)
        return f"{{inputs.{name}}}"


def _map_texts(e: CachedAction, fn: Any) -> CachedAction:
    a = dataclasses.replace(e.action, **{k: fn(getattr(e.action, k)) for k in _ACTION_TEXTS})
    an = e.anchor
    if an is not None and an.text:
        an = dataclasses.replace(an, text=fn(an.text))
    post = e.post
    if post is not None and post.expect_text:
        post = dataclasses.replace(post, expect_text=fn(post.expect_text))
    return CachedAction(a, an, post)


def templatize(
    entries: Sequence[CachedAction],
    inputs: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    names: Collection[str] | None = None,
) -> tuple[list[CachedAction], Provenance]:
    """``entries`` with input values (of ``names``, default all) and secrets as placeholders.

    ``secrets`` maps each secret's name to its value. Raises ``ActionCacheError`` when a
    text cannot be templated safely (the caller then stores nothing).
    """
    use = sorted(names if names is not None else inputs)
    by_value: dict[str, list[str]] = {}
    for n in use:
        if n in inputs and (text := input_text(inputs[n])) != "":
            by_value.setdefault(text, []).append(n)
    secret_map = {v: f"${{secrets.{k}}}" for k, v in (secrets or {}).items() if v}
    finder = _Finder(secret_map, {v: ns[0] for v, ns in by_value.items()})
    out = [_map_texts(e, finder.sub) for e in entries]
    groups = [ns for ns in by_value.values() if len(ns) > 1]
    bound = sorted(n for ns in by_value.values() if ns[0] in finder.found for n in ns)
    constants = {n: inputs[n] for ns in by_value.values() if ns[0] not in finder.found for n in ns}
    same = tuple(tuple(g) for g in groups if g[0] in finder.found)
    for name, value in constants.items():
        if any(v in input_text(value) for v in secret_map):
            # The skill would have to keep this value to tell instances apart.
            raise ActionCacheError(f"input {name!r} holds a secret's value; not stored")
    return out, Provenance(tuple(bound), constants, same)


def unusable_because(prov: Provenance, inputs: Mapping[str, Any]) -> str | None:
    """Why a skill cannot replay for ``inputs`` (a constant differs), or None."""
    for name, value in sorted(prov.constants.items()):
        if name in inputs and input_text(inputs[name]) != input_text(value):
            return (
                f"input {name!r} never showed in the learned actions, so the skill holds only "
                f"for {name}={input_text(value)!r}"
            )
    return None


def render_entries(
    entries: Sequence[CachedAction], inputs: Mapping[str, Any], prov: Provenance
) -> tuple[list[CachedAction], Divergence | None]:
    """``entries`` with ``{inputs.NAME}`` filled in from ``inputs``.

    Returns the entries that could be rendered and, if one could not (an input it names is
    missing, or inputs learned with one value now differ), a ``Divergence`` at that index:
    the replay stops there instead of typing the wrong value. An anchor whose text holds an
    input is found again by its rendered text (its stored pixels showed the old value).
    """
    split = {g[0]: g for g in prov.same if len({input_text(inputs.get(n)) for n in g}) > 1}
    out: list[CachedAction] = []
    for i, e in enumerate(entries):
        problem: list[str] = []

        def fill(text: str | None, problem: list[str] = problem) -> str | None:
            if not text:
                return text

            def one(m: re.Match[str]) -> str:
                name = m.group(1)
                if name in split:
                    problem.append(
                        f"inputs {', '.join(split[name])} had one value when learned and "
                        "differ now; which one goes here is unknown"
                    )
                elif name not in inputs:
                    problem.append(f"the skill uses input {name!r}, which this task lacks")
                return input_text(inputs.get(name, ""))

            return INPUT_RE.sub(one, text)

        r = _map_texts(e, fill)
        if problem:
            return out, Divergence(i, problem[0])
        out.append(_fresh_checks(e, r))
    return out, None


def _fresh_checks(learned: CachedAction, rendered: CachedAction) -> CachedAction:
    """Drop pixel checks that pictured the learned values (the rendered ones look different)."""
    an = rendered.anchor
    la = learned.anchor
    if an is not None and la is not None and la.text and INPUT_RE.search(la.text):
        an = Anchor(an.box, "", an.text, None)  # no hash: found by its text only
    post = rendered.post
    templated = learned.action.text and INPUT_RE.search(learned.action.text)
    if learned.post is not None and learned.post.expect_text:
        templated = templated or INPUT_RE.search(learned.post.expect_text)
    if post is not None and templated:
        post = dataclasses.replace(post, thumb=None)
    return CachedAction(rendered.action, an, post)
