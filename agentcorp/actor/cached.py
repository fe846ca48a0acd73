"""The action cache on the real run path: run again what passed before, hand over where it differs.

``run_task_cached`` wraps a task's normal run (scripted steps, planner + actor, or a shipped
recording). With no cached sequence it runs the task normally and, when it passes, stores
its grounded actions (``agentcorp.grounding.cache``) under ``cache_key(spec hash, inputs)``.
With one, the actions are run first by ``CachedActor``: each through the same policy
gate, redaction and step records as any other action (source ``cache``), its anchor checked
before and its postcondition after. On the first divergence control goes to the task's
scripted steps from the step that action belonged to (or to the planner/actor when the task
was planned), and the repaired sequence is stored once the task passes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from agentcorp._io import UnsafeRead, read_text_bounded
from agentcorp.actor.budget import BudgetMeter
from agentcorp.actor.loop import Actor, ActorConfig, EpisodeTask, _State
from agentcorp.actor.runner import TaskInput, TaskResult, TaskStatus, run_task
from agentcorp.actor.script import ScriptStep, parse_step
from agentcorp.checks import CheckContext, CheckOutcome, evaluate_steps
from agentcorp.grounding.base import Grounder
from agentcorp.grounding.cache import (
    FORMAT_VERSION as CACHE_FORMAT,
)
from agentcorp.grounding.cache import (
    MAX_CACHE_FILE_BYTES,
    ActionCache,
    ActionCacheError,
    CachedAction,
    CacheRunner,
    Divergence,
    _entry_json,
    entries_from_json,
    entries_from_steps,
)
from agentcorp.planner.plan import Planner
from agentcorp.policy.base import ActionGate
from agentcorp.sandbox.base import Computer
from agentcorp.types import (
    Action,
    ActionResultStep,
    ActionStep,
    ChatModel,
    ErrorStep,
    ObservationStep,
    Step,
)

__all__ = [
    "CacheOutcome",
    "CachedActor",
    "cache_sequence",
    "cached_run_doc",
    "entries_from_doc",
    "run_task_cached",
    "script_positions",
]

_POINTER = ("click", "double_click", "right_click")


@dataclass(frozen=True, slots=True)
class CacheOutcome:
    """How a cached run ended: ``done`` entries ran; ``divergence`` when it stopped early."""

    done: int
    divergence: Divergence | None
    entries: list[CachedAction]
    budget: str | None = None


def _action_count(s: ScriptStep) -> int:
    """How many actions the loop performs for a scripted step that grounds locally."""
    if s.kind == "wait_for":
        return 0
    if s.kind == "type" and s.into:
        return 2  # click into the field, then type
    return 1


def _ok_sources(records: Sequence[Step]) -> list[str]:
    """The source of each executed action, in the order ``entries_from_steps`` keeps them."""
    out: list[str] = []
    pending: str | None = None
    for st in records:
        if isinstance(st, ActionStep):
            # A zoom only looked: it is no action for the cache to repeat.
            pending = None if st.action.kind in ("done", "fail", "zoom") else st.source
        elif isinstance(st, ActionResultStep):
            if st.ok and pending is not None:
                out.append(pending)
            pending = None
    return out


def script_positions(script: Sequence[ScriptStep], sources: Sequence[str]) -> list[int] | None:
    """For each executed action, the index of the scripted step it belongs to.

    A step the loop grounded itself gives ``_action_count`` ``script`` actions; a step it
    handed to the model gives the model's actions. Actions after the last step (the model
    finishing the goal) map to ``len(script)``. ``None`` when the records do not fit.
    """
    pos: list[int] = []
    p = 0
    for i, s in enumerate(script):
        if s.kind == "wait_for":
            continue  # no action, and never handed to the model (it fails the episode)
        if p < len(sources) and sources[p] in ("model", "cache"):
            while p < len(sources) and sources[p] in ("model", "cache"):
                pos.append(i)
                p += 1
            continue
        for _ in range(_action_count(s)):
            if p >= len(sources) or sources[p] != "script":
                return None
            pos.append(i)
            p += 1
    pos.extend([len(script)] * (len(sources) - p))
    return pos


def cache_sequence(
    script: Sequence[ScriptStep],
    entries: Sequence[CachedAction],
    positions: Sequence[int],
) -> tuple[list[CachedAction], list[int]]:
    """Entries with a ``wait_for`` entry put back where each scripted ``wait_for`` was.

    A ``wait_for`` is no action in the loop's records, yet a cached run that skips it races the
    page or dialog it waited for.
    """
    out: list[CachedAction] = []
    pos: list[int] = []
    j = 0
    for i, s in enumerate(script):
        while j < len(entries) and positions[j] < i:
            out.append(entries[j])
            pos.append(positions[j])
            j += 1
        if s.kind == "wait_for":
            out.append(CachedAction(Action("wait_for", target=str(s.target), seconds=s.timeout)))
            pos.append(i)
    out.extend(entries[j:])
    pos.extend(positions[j:])
    return out, pos


class CachedActor(Actor):
    """The actor loop running cached actions (source ``cache``) instead of deciding them."""

    def run_cached(
        self,
        task: EpisodeTask,
        entries: Sequence[CachedAction],
    ) -> Generator[Step, None, CacheOutcome]:
        """Run ``entries`` until the end or the first divergence (nothing is retried)."""
        self._task = task
        st = _State(frame=self.computer.screenshot(), image=b"")
        yield self._observe(st, st.frame, None)
        rep = CacheRunner(entries, self.grounder)
        n = len(rep.entries)
        for i in range(n):
            over = self.meter.exceeded()
            if over is not None:
                yield self.meter.snapshot(st.step, time.time(), over)
                return CacheOutcome(i, None, rep.entries, over)
            a = rep.entries[i].action
            if a.kind == "wait_for":
                target = a.target or ""
                found = yield from self._wait_for(st, target, a.seconds or 10.0)
                if not found:
                    return CacheOutcome(i, Divergence(i, f"'{target}' did not appear"), rep.entries)
                continue
            # Anchors were taken on the redacted frames the records carry: compare like
            # with like, or a field holding a typed secret never matches.
            todo = rep.prepare(i, self.gate.redact_frame(st.frame, task.task_id))
            if isinstance(todo, Divergence):
                return CacheOutcome(i, todo, rep.entries)
            nxt = rep.entries[i + 1].action if i + 1 < n else None
            if (
                todo.kind in _POINTER
                and nxt is not None
                and nxt.kind == "type"
                and nxt.into
                and nxt.into == todo.target
            ):
                # The gate judges typed text by the field it goes into, as for a script.
                an = rep.entries[i].anchor
                st.typing_into = (nxt.into, an.box if an is not None else None)
            how = rep.how.get(i, "none")
            before = st.frame
            changed: Any = None
            error: str | None = None
            gen = self._act(st, todo, "cache", f"cached action {i + 1}/{n} (anchor: {how})")
            while True:
                try:
                    rec = next(gen)
                except StopIteration as stop:
                    error = stop.value
                    break
                if isinstance(rec, ActionResultStep) and rec.ok:
                    changed = rec.changed
                yield rec
            if error is not None:
                return CacheOutcome(i, Divergence(i, error), rep.entries)
            bad = rep.verify(i, self.gate.redact_frame(st.frame, task.task_id), changed)
            # A busy app may draw after the screen looked settled: look again briefly.
            deadline = time.monotonic() + self.config.settle_timeout
            while bad is not None and time.monotonic() < deadline:
                self.computer.wait(0.05)
                settled = self.computer.settle(self.config.settle_timeout, since=before)
                bad = rep.verify(
                    i, self.gate.redact_frame(settled.frame, task.task_id), settled.changed
                )
                if settled.frame.sha256 != st.frame.sha256:
                    yield self._observe(st, settled.frame, settled.changed)
            if bad is not None:
                return CacheOutcome(i + 1, bad, rep.entries)
        return CacheOutcome(n, None, rep.entries)


def cached_run_doc(entries: Sequence[CachedAction], config: ActorConfig) -> dict[str, Any]:
    """The cached sequence and loop settings a session keeps so a decision replay can redo it."""
    return {
        "version": CACHE_FORMAT,
        "actions": [_entry_json(e) for e in entries],
        "actor_config": {
            "settle_timeout": config.settle_timeout,
            "find_timeout": config.find_timeout,
            "long_side": config.long_side,
            "image_format": config.image_format,
            "image_quality": config.image_quality,
        },
    }


def entries_from_doc(doc: Any, where: str) -> tuple[list[CachedAction], ActorConfig]:
    """Parse ``cached_run_doc``'s output; ``ActionCacheError`` names ``where`` and the field."""
    entries, _ = entries_from_json(doc, where)
    raw = doc.get("actor_config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise ActionCacheError(f"{where}.actor_config: expected an object")
    try:
        config = ActorConfig(**raw)
    except TypeError as exc:
        raise ActionCacheError(f"{where}.actor_config: {exc}") from None
    return entries, config


def _lookup(cache: ActionCache, key: str) -> tuple[list[CachedAction], dict[str, Any]] | None:
    path = cache.dir / f"{key}.json"
    try:
        data = json.loads(read_text_bounded(path, MAX_CACHE_FILE_BYTES, what="cache file"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnsafeRead) as exc:
        raise ActionCacheError(f"{path}: unreadable cache file: {exc}") from exc
    return entries_from_json(data, str(path))


def _positions_from(meta: dict[str, Any], n: int) -> list[int] | None:
    raw = meta.get("script_positions")
    if (
        isinstance(raw, list)
        and len(raw) == n
        and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in raw)
    ):
        return list(raw)
    return None


def _resume_at(div: Divergence, positions: Sequence[int]) -> int:
    """The scripted step to continue from after a divergence at ``div.index``."""
    p = positions[div.index]
    if div.acted and div.index + 1 < len(positions) and positions[div.index + 1] == p:
        return p  # the step's later actions did not run yet: redo the step
    return p + 1 if div.acted else p


def run_task_cached(
    task: TaskInput,
    computer: Computer,
    *,
    cache: ActionCache,
    key: str,
    gate: ActionGate,
    meter: BudgetMeter,
    check_context: CheckContext,
    actor_model: ChatModel | None = None,
    planner: Planner | None = None,
    grounder: Grounder | None = None,
    config: ActorConfig | None = None,
    max_replans: int = 2,
    fallback: Callable[[], Generator[Step, None, TaskResult]] | None = None,
    meta: dict[str, Any] | None = None,
    secrets: Sequence[str] = (),
) -> Generator[Step, None, TaskResult]:
    """Run ``task`` from the action cache when it can, else normally; store it when it passes.

    ``fallback`` is the task's normal run when it is not ``run_task`` (the offline replay of
    a shipped recording); it is used only when there is nothing cached. The result's ``mode``
    is ``cache`` when every action came from the cache, ``cache+<mode>`` after a hand-over.
    A sequence holding any of ``secrets`` (a value typed literally instead of through a
    ``${secrets.NAME}`` placeholder) is never written to disk.
    """
    t0 = time.monotonic()
    cfg = config or ActorConfig()
    script = [parse_step(s, f"steps[{i}]") for i, s in enumerate(task.steps)]

    def normal(steps: Sequence[Any]) -> Generator[Step, None, TaskResult]:
        return run_task(
            dataclasses.replace(task, steps=list(steps)),
            computer,
            gate=gate,
            meter=meter,
            check_context=check_context,
            actor_model=actor_model,
            planner=planner,
            grounder=grounder,
            config=config,
            max_replans=max_replans,
        )

    try:
        found = _lookup(cache, key)
    except ActionCacheError as exc:
        # A damaged cache file is no reason to fail the task: run it normally (and the
        # file is replaced when it passes).
        yield ErrorStep(0, time.time(), "ActionCacheError", str(exc))
        found = None
    if found is None or not found[0]:
        records: list[Step] = []
        gen = fallback() if fallback is not None else normal(task.steps)
        first: TaskResult = yield from _collect(gen, records)
        if first.status == "pass":
            _store(
                cache,
                key,
                records,
                grounder,
                script if planner is None else None,
                0,
                [],
                [],
                meta,
                secrets,
            )
        return first

    entries, stored_meta = found
    positions = _positions_from(stored_meta, len(entries))
    cached_doc = cached_run_doc(entries, cfg)
    actor = CachedActor(computer, gate=gate, model=None, grounder=grounder, meter=meter, config=cfg)
    episode = EpisodeTask(task.task_id, task.description, role=task.role, sandbox=task.sandbox)
    cached_records: list[Step] = []
    out = yield from _collect(actor.run_cached(episode, entries), cached_records)
    if out.budget is not None:
        return TaskResult(
            task.task_id,
            "budget_exceeded",
            out.budget,
            (),
            meter.usage,
            meter.steps,
            time.monotonic() - t0,
            "cache",
        )
    if out.divergence is None:
        status: TaskStatus = "pass"
        reason = ""
        outcomes: tuple[CheckOutcome, ...] = ()
        if task.success is not None:
            check_status, checks = evaluate_steps(task.success, check_context, step=0)
            yield from checks
            outcomes = tuple(CheckOutcome(r.name, r.status, r.detail) for r in checks[:-1])
            status = check_status
            if status != "pass":
                reason = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if o.status != "pass")[
                    :500
                ]
        if status != "pass":
            # The cached run looked right and still did not do the job: never trust it again.
            cache.clear(key)
            reason = f"cached run did not pass its checks (cache entry dropped): {reason}"
        else:
            cache.store(
                key, out.entries, {**stored_meta, **(meta or {}), "script_positions": positions}
            )
        return TaskResult(
            task.task_id,
            status,
            reason,
            outcomes,  # type: ignore[arg-type]
            meter.usage,
            meter.steps,
            time.monotonic() - t0,
            "cache",
            cached_run=cached_doc,
        )
    div = out.divergence
    note = f"cached run diverged at action {div.index + 1}/{len(entries)}: {div.reason}"
    yield ErrorStep(0, time.time(), "CacheDivergence", note)
    if planner is not None or not script:
        resume = 0  # the planner/actor takes over from the screen as the cache left it
    elif positions is not None:
        resume = _resume_at(div, positions)
    elif out.done == 0 and not div.acted:
        resume = 0  # nothing ran yet: the whole script
    else:
        cache.clear(key)
        return TaskResult(
            task.task_id,
            "fail",
            f"{note}; the cached actions are not tied to "
            "scripted steps, so nothing can take over (cache entry dropped)",
            (),
            meter.usage,
            meter.steps,
            time.monotonic() - t0,
            "cache",
        )
    done_entries = out.entries[: out.done]
    done_pos = positions[: out.done] if positions is not None else [0] * out.done
    rest: list[Step] = []
    result: TaskResult = yield from _collect(normal(task.steps[resume:]), rest)
    mode = f"cache+{result.mode or 'scripted'}"
    if result.status == "pass":
        _store(
            cache,
            key,
            rest,
            grounder,
            script[resume:] if planner is None else None,
            resume,
            done_entries,
            done_pos,
            meta,
            secrets,
        )
        return dataclasses.replace(
            result, mode=mode, elapsed_s=time.monotonic() - t0, cached_run=cached_doc
        )
    reason = f"{note}; then: {result.reason}" if result.reason else note
    return dataclasses.replace(
        result, mode=mode, reason=reason, elapsed_s=time.monotonic() - t0, cached_run=cached_doc
    )


def _collect(gen: Generator[Step, None, Any], into: list[Step]) -> Generator[Step, None, Any]:
    """``yield from gen`` keeping every record (with its frame, for the cache's anchors)."""
    while True:
        try:
            st = next(gen)
        except StopIteration as stop:
            return stop.value
        into.append(st)
        yield st


def _store(
    cache: ActionCache,
    key: str,
    records: Sequence[Step],
    grounder: Grounder | None,
    script: Sequence[ScriptStep] | None,
    offset: int,
    head: Sequence[CachedAction],
    head_pos: Sequence[int],
    meta: dict[str, Any] | None,
    secrets: Sequence[str] = (),
) -> None:
    """Store ``head`` (run from the cache) + the actions ``records`` performed, with positions."""
    entries = entries_from_steps(
        [r for r in records if isinstance(r, ObservationStep | ActionStep | ActionResultStep)],
        grounder,
    )
    positions: list[int] | None = None
    if script is not None:
        pos = script_positions(script, _ok_sources(records))
        if pos is not None and len(pos) == len(entries):
            entries, pos = cache_sequence(script, entries, pos)
            positions = [p + offset for p in pos]
    all_pos = [*head_pos, *positions] if positions is not None else None
    doc_meta = {**(meta or {}), "script_positions": all_pos}
    seq = [*head, *entries]
    if _holds_secret(seq, secrets):
        cache.clear(key)  # never on disk in clear text; the next run goes the normal way
        return
    cache.store(key, seq, doc_meta)


def _holds_secret(entries: Sequence[CachedAction], secrets: Sequence[str]) -> bool:
    values = [v for v in secrets if v]
    if not values:
        return False
    for e in entries:
        a = e.action
        texts = [
            a.text,
            a.target,
            a.url,
            a.into,
            a.summary,
            e.anchor.text if e.anchor is not None else None,
        ]
        if any(t and v in t for t in texts for v in values):
            return True
    return False
