"""Skills on the run path: replay what passed before for new inputs, hand over where not.

``run_task_cached`` wraps a task's normal run (scripted steps, planner + actor, or a shipped
recording). With no skill for the task it runs normally and, when it passes, stores its
grounded actions as a skill (``agentcorp.grounding.cache``), templated by value provenance
(``agentcorp.grounding.provenance``) under ``skill_key`` (the spec without input values).
With one, the skill is rendered with this instance's inputs and replayed by
``CachedActor``: each action through the same policy gate, redaction and step records as any
other (source ``skill``), its anchor checked before and its postcondition after, and no
model call. On the first divergence control goes to the task's scripted steps from the step
that action belonged to (or to the planner/actor when the task was planned); once the task
passes, the repair is stored as a branch beside the others. With ``no_model`` a task that
only a model could take over fails at once, naming the action and why.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentcorp.actor.budget import BudgetMeter
from agentcorp.actor.loop import Actor, ActorConfig, EpisodeTask, _State
from agentcorp.actor.runner import TaskInput, TaskResult, run_task
from agentcorp.actor.script import ScriptStep, parse_step
from agentcorp.checks import CheckContext, CheckOutcome, evaluate_steps
from agentcorp.grounding.base import Grounder
from agentcorp.grounding.cache import (
    FORMAT_VERSION as CACHE_FORMAT,
)
from agentcorp.grounding.cache import (
    REPEAT_LIMIT,
    ActionCache,
    ActionCacheError,
    Anchor,
    Branch,
    CachedAction,
    CacheRunner,
    Divergence,
    Skill,
    _entry_json,
    entries_from_json,
    entries_from_steps,
    perceptual_hash,
)
from agentcorp.grounding.provenance import Provenance, render_entries, templatize, unusable_because
from agentcorp.planner.plan import Planner
from agentcorp.policy.base import ActionGate
from agentcorp.sandbox.base import Computer
from agentcorp.types import (
    Action,
    ActionResultStep,
    ActionStep,
    Box,
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
#: Action sources that were not the scripted step grounding itself.
_HANDED = ("model", "skill", "cache")


@dataclass(frozen=True, slots=True)
class CacheOutcome:
    """How a cached replay ended: ``done`` entries ran; ``divergence`` when it stopped early."""

    done: int
    divergence: Divergence | None
    entries: list[CachedAction]
    budget: str | None = None
    #: The skill branch the replay ended on (0: the trunk).
    branch: int = 0


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
            # A zoom only looked, a help request only asked: no action for the cache to repeat.
            looked = ("done", "fail", "zoom", "request_help")
            pending = None if st.action.kind in looked else st.source
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
        if p < len(sources) and sources[p] in _HANDED:
            while p < len(sources) and sources[p] in _HANDED:
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

    A ``wait_for`` is no action in the loop's records, yet a replay that skips it races the
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
    """The actor loop running a skill's actions (source ``skill``) instead of deciding them."""

    def run_cached(
        self,
        task: EpisodeTask,
        entries: Sequence[CachedAction],
        forks: Sequence[tuple[int, int, Sequence[CachedAction]]] = (),
    ) -> Generator[Step, None, CacheOutcome]:
        """Replay ``entries`` until the end or the first divergence (nothing is retried).

        ``forks`` are a skill's other branches (parent, at, sequence): where the screen does
        not fit the branch being replayed, one forked there that fits is taken instead.
        """
        self._task = task
        st = _State(frame=self.computer.screenshot(), image=b"")
        yield self._observe(st, st.frame, None)
        rep = CacheRunner(entries, self.grounder, forks=forks)
        i = -1
        while (i := i + 1) < len(rep.entries):
            n = len(rep.entries)
            over = self.meter.exceeded()
            if over is not None:
                yield self.meter.snapshot(st.step, time.time(), over)
                return CacheOutcome(i, None, rep.entries, over, rep.branch)
            a = rep.entries[i].action
            if a.kind == "wait_for":
                target = a.target or ""
                found = yield from self._wait_for(st, target, a.seconds or 10.0)
                if not found:
                    why = Divergence(i, f"'{target}' did not appear")
                    return CacheOutcome(i, why, rep.entries, None, rep.branch)
                continue
            # Anchors were taken on the redacted frames the records carry: compare like
            # with like, or a field holding a typed secret never matches.
            todo = rep.prepare(i, self.gate.redact_frame(st.frame, task.task_id))
            if isinstance(todo, Divergence):
                return CacheOutcome(i, todo, rep.entries, None, rep.branch)
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
            gen = self._act(st, todo, "skill", f"skill action {i + 1}/{n} (anchor: {how})")
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
                return CacheOutcome(i, Divergence(i, error), rep.entries, None, rep.branch)
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
            if bad is not None and (
                i + 1 >= len(rep.entries)
                or rep.fork(i + 1, self.gate.redact_frame(st.frame, task.task_id)) is None
            ):
                return CacheOutcome(i + 1, bad, rep.entries, None, rep.branch)
        return CacheOutcome(len(rep.entries), None, rep.entries, None, rep.branch)


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
    entries, _ = entries_from_json(doc, where, versions=(1, CACHE_FORMAT))
    raw = doc.get("actor_config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise ActionCacheError(f"{where}.actor_config: expected an object")
    try:
        config = ActorConfig(**raw)
    except TypeError as exc:
        raise ActionCacheError(f"{where}.actor_config: {exc}") from None
    return entries, config


def _resume_at(div: Divergence, positions: Sequence[int]) -> int:
    """The scripted step to continue from after a divergence at ``div.index``."""
    p = positions[div.index]
    if div.acted and div.index + 1 < len(positions) and positions[div.index + 1] == p:
        return p  # the step's later actions did not run yet: redo the step
    return p + 1 if div.acted else p


@dataclass
class _Ctx:
    """What every part of one skill-aware run shares."""

    task: TaskInput
    computer: Computer
    cache: ActionCache
    key: str
    gate: ActionGate
    meter: BudgetMeter
    check_context: CheckContext
    grounder: Grounder | None
    config: ActorConfig
    planner: Planner | None
    normal: Callable[[Sequence[Any]], Generator[Step, None, TaskResult]]
    script: list[ScriptStep]
    inputs: dict[str, Any]
    names: list[str]
    secrets: dict[str, str]
    secret_values: list[str]
    meta: dict[str, Any]
    no_model: bool
    t0: float

    def result(self, status: str, reason: str, mode: str = "skill", **kw: Any) -> TaskResult:
        return TaskResult(
            self.task.task_id,
            status,  # type: ignore[arg-type]
            reason,
            kw.pop("checks", ()),
            self.meter.usage,
            self.meter.steps,
            time.monotonic() - self.t0,
            mode,
            **kw,
        )


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
    secrets: Sequence[str] | Mapping[str, str] = (),
    input_names: Collection[str] | None = None,
    no_model: bool = False,
) -> Generator[Step, None, TaskResult]:
    """Run ``task`` from its skill when it has one, else normally; learn it when it passes.

    The skill under ``key`` (``provenance.skill_key``: the task's spec without its input
    values) is rendered with ``task.inputs`` and replayed with no model call. At the first
    divergence the task's steps or the model take over from there (with ``no_model`` and
    no steps the task fails at once, naming the action and why) and, once it passes, the
    repaired branch is stored beside the others. ``fallback`` is the task's normal run when
    it is not ``run_task`` (the offline replay of a shipped recording); it is used only when
    there is no skill. ``secrets`` maps names to values (a bare list of values can only be refused:
    a sequence holding one is then never stored); ``input_names`` are the inputs the task
    uses (default all of ``task.inputs``). The result's ``mode`` is ``skill`` when every
    action came from the skill, ``skill+<mode>`` after a hand-over (``repaired_at`` then
    says from which action).
    """
    cfg = config or ActorConfig()

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

    named = dict(secrets) if isinstance(secrets, Mapping) else {}
    ctx = _Ctx(
        task,
        computer,
        cache,
        key,
        gate,
        meter,
        check_context,
        grounder,
        cfg,
        planner,
        normal,
        [parse_step(s, f"steps[{i}]") for i, s in enumerate(task.steps)],
        dict(task.inputs),
        sorted(input_names) if input_names is not None else sorted(task.inputs),
        named,
        list(named.values()) if named else [v for v in secrets if isinstance(v, str)],
        dict(meta or {}),
        no_model,
        time.monotonic(),
    )
    skill = yield from _load(ctx)
    if skill is None:
        return (yield from _learn(ctx, fallback))
    return (yield from _from_skill(ctx, skill))


def _load(ctx: _Ctx) -> Generator[Step, None, tuple[Skill, Provenance] | None]:
    """The usable skill for this instance, or None (a bad file is reported, not fatal)."""
    try:
        skill = ctx.cache.load(ctx.key)
        if skill is None or not skill.trunk:
            return None
        prov = Provenance.from_meta(skill.meta, str(ctx.cache.dir / f"{ctx.key}.json"))
    except ActionCacheError as exc:
        # A damaged skill file is no reason to fail the task: run it normally (and the
        # file is replaced when it passes).
        yield ErrorStep(0, time.time(), "ActionCacheError", str(exc))
        return None
    if unusable_because(prov, ctx.inputs) is not None:
        return None  # learned for another value of an input it never showed
    return skill, prov


def _save(ctx: _Ctx, skill: Skill) -> Generator[Step, None, None]:
    """Store ``skill``; a folder that cannot take it is a notice, never the task's outcome."""
    try:
        ctx.cache.save(skill)
    except ActionCacheError as exc:
        yield ErrorStep(0, time.time(), "SkillNotStored", str(exc))


def _learn(
    ctx: _Ctx, fallback: Callable[[], Generator[Step, None, TaskResult]] | None
) -> Generator[Step, None, TaskResult]:
    records: list[Step] = []
    gen = fallback() if fallback is not None else ctx.normal(ctx.task.steps)
    first: TaskResult = yield from _collect(gen, records)
    if first.status == "pass":
        branch = _branch(ctx, records, ctx.script if ctx.planner is None else None, 0, [], [])
        if branch is not None:
            entries, positions, prov = branch
            yield from _save(
                ctx, Skill(ctx.key, [Branch(entries, positions)], {**ctx.meta, **prov.to_meta()})
            )
    return first


def _from_skill(ctx: _Ctx, found: tuple[Skill, Provenance]) -> Generator[Step, None, TaskResult]:
    skill, prov = found
    trunk, cut = render_entries(skill.trunk, ctx.inputs, prov)
    forks: list[tuple[int, int, Sequence[CachedAction]]] = []
    for b in skill.branches[1:]:
        rendered, bad = render_entries(b.entries, ctx.inputs, prov)
        # A branch that cannot be rendered whole is left out (an empty one is never taken).
        forks.append((b.parent or 0, b.at, rendered if bad is None else []))
    cached_doc = cached_run_doc(trunk, ctx.config)
    actor = CachedActor(
        ctx.computer,
        gate=ctx.gate,
        model=None,
        grounder=ctx.grounder,
        meter=ctx.meter,
        config=ctx.config,
    )
    t = ctx.task
    episode = EpisodeTask(t.task_id, t.description, role=t.role, sandbox=t.sandbox)
    out: CacheOutcome = yield from actor.run_cached(episode, trunk, forks)
    if out.budget is not None:
        return ctx.result("budget_exceeded", out.budget)
    if out.divergence is None and cut is not None and out.branch == 0:
        out = dataclasses.replace(out, divergence=cut)
    if out.divergence is None:
        return (yield from _checked(ctx, cached_doc))
    return (yield from _hand_over(ctx, skill, prov, out, cached_doc))


def _checked(ctx: _Ctx, cached_doc: dict[str, Any]) -> Generator[Step, None, TaskResult]:
    """Every skill action replayed and checked: the task's own checks decide."""
    status: str = "pass"
    reason = ""
    outcomes: tuple[CheckOutcome, ...] = ()
    if ctx.task.success is not None:
        check_status, checks = evaluate_steps(ctx.task.success, ctx.check_context, step=0)
        yield from checks
        outcomes = tuple(CheckOutcome(r.name, r.status, r.detail) for r in checks[:-1])
        status = check_status
        if status != "pass":
            reason = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if o.status != "pass")
    if status != "pass":
        # The replay looked right and still did not do the job: never trust it again.
        ctx.cache.clear(ctx.key)
        reason = f"the skill's run did not pass its checks (skill dropped): {reason}"[:600]
    return ctx.result(status, reason, checks=outcomes, cached_run=cached_doc)


def _hand_over(
    ctx: _Ctx,
    skill: Skill,
    prov: Provenance,
    out: CacheOutcome,
    cached_doc: dict[str, Any],
) -> Generator[Step, None, TaskResult]:
    """The skill diverged: steps or model take over from there, and the repair is learned."""
    div = out.divergence
    assert div is not None
    n = len(out.entries)
    note = f"skill diverged at action {div.index + 1}/{n}: {div.reason}"
    yield ErrorStep(0, time.time(), "SkillDivergence", note)
    skill.divergences[out.done] = skill.divergences.get(out.done, 0) + 1
    times = skill.divergences[out.done]
    yield from _save(ctx, skill)
    if times > REPEAT_LIMIT:
        yield ErrorStep(
            0,
            time.time(),
            "SkillUnstable",
            f"the skill diverged {times} times at action {out.done + 1}; it grows no more there",
        )
    if ctx.no_model and not ctx.script:
        # Hermetic: nothing but a model could take over a model-driven task.
        return ctx.result(
            "fail",
            f"{note} (no model may take over: --no-model)",
            cached_run=cached_doc,
            repaired_at=div.index + 1,
        )
    positions = skill.branches[out.branch].positions
    if ctx.planner is not None or not ctx.script:
        resume = 0  # the planner/actor takes over from the screen as the skill left it
    elif positions is not None:
        resume = _resume_at(div, positions)
    elif out.done == 0 and not div.acted:
        resume = 0  # nothing ran yet: the whole script
    else:
        return ctx.result(
            "fail",
            f"{note}; the skill's actions are not tied to scripted steps, so nothing can take over",
            cached_run=cached_doc,
        )
    rest: list[Step] = []
    result: TaskResult = yield from _collect(ctx.normal(ctx.task.steps[resume:]), rest)
    mode = f"skill+{result.mode or 'scripted'}"
    common: dict[str, Any] = {
        "mode": mode,
        "elapsed_s": time.monotonic() - ctx.t0,
        "cached_run": cached_doc,
        "repaired_at": out.done + 1,
    }
    if result.status != "pass":
        reason = f"{note}; then: {result.reason}" if result.reason else note
        return dataclasses.replace(result, reason=reason, **common)
    head_pos = positions[: out.done] if positions is not None else [0] * out.done
    branch = _branch(
        ctx,
        rest,
        ctx.script[resume:] if ctx.planner is None else None,
        resume,
        out.entries[: out.done],
        head_pos,
    )
    if branch is not None:
        entries, new_pos, new_prov = branch
        _anchor_fork(entries, out.done, rest)
        grown = Branch(entries, new_pos, out.branch, out.done)
        why = skill.grow(grown) if _same_binding(prov, new_prov) else "inputs bound differently"
        if why is None:
            yield from _save(ctx, skill)
        else:
            yield ErrorStep(0, time.time(), "SkillNotGrown", f"repair not stored: {why}")
    return dataclasses.replace(result, **common)


def _anchor_fork(entries: list[CachedAction], at: int, records: Sequence[Step]) -> None:
    """Give a branch's first action an anchor when it has none: the whole screen it began on.

    A replay takes a branch only where its first action's anchor fits the screen; a key or
    typing has no target, so the screen the repair started from stands in for one.
    """
    if at >= len(entries) or entries[at].anchor is not None:
        return
    frame = next(
        (r.frame for r in records if isinstance(r, ObservationStep) and r.frame is not None),
        None,
    )
    if frame is None:
        return
    w, h = frame.size
    box = Box(0, 0, w, h)
    # The 64-bit hash only (no thumbnail): the gist of the screen, which a caret or other
    # input values typed elsewhere do not change.
    entries[at] = dataclasses.replace(
        entries[at], anchor=Anchor(box, perceptual_hash(frame, box), None, None)
    )


def _same_binding(a: Provenance, b: Provenance) -> bool:
    """Whether a repair templated its inputs as the skill did (else its branch would lie)."""
    return a.constants == b.constants and a.same == b.same


def _branch(
    ctx: _Ctx,
    records: Sequence[Step],
    script: Sequence[ScriptStep] | None,
    offset: int,
    head: Sequence[CachedAction],
    head_pos: Sequence[int],
) -> tuple[list[CachedAction], list[int] | None, Provenance] | None:
    """``head`` (replayed, rendered) + what ``records`` did, templated; None if unsafe."""
    entries = entries_from_steps(
        [r for r in records if isinstance(r, ObservationStep | ActionStep | ActionResultStep)],
        ctx.grounder,
    )
    positions: list[int] | None = None
    if script is not None:
        pos = script_positions(script, _ok_sources(records))
        if pos is not None and len(pos) == len(entries):
            entries, pos = cache_sequence(script, entries, pos)
            positions = [p + offset for p in pos]
    all_pos = [*head_pos, *positions] if positions is not None else None
    try:
        seq, prov = templatize([*head, *entries], ctx.inputs, ctx.secrets, ctx.names)
    except ActionCacheError:
        return None
    if _holds_secret(seq, ctx.secret_values):
        return None  # never on disk in clear text; the next run goes the normal way
    return seq, all_pos, prov


def _collect(gen: Generator[Step, None, Any], into: list[Step]) -> Generator[Step, None, Any]:
    """``yield from gen`` keeping every record (with its frame, for the cache's anchors)."""
    while True:
        try:
            st = next(gen)
        except StopIteration as stop:
            return stop.value
        into.append(st)
        yield st


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
