"""Glue between recordings and the actor loop: what a manifest must hold to re-run an episode.

``agentcorp run`` passes ``episode_manifest(task, config)`` as ``extra=`` to
``SessionRecorder``; ``loop_runner(session)`` rebuilds the same ``EpisodeTask`` and
``ActorConfig`` from the manifest and returns the ``run(model, computer)`` callable that
``decision_replay`` drives. Policy decisions are served from the recording too
(``RecordedGate``), so a replay needs neither approvers nor a policy file.

This module imports the actor; ``agentcorp.record`` itself does not, so the actor may import
``agentcorp.record.canonical`` without a cycle.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

from agentcorp.actor.loop import ActorConfig, EpisodeTask, run_episode
from agentcorp.errors import RecordingError
from agentcorp.grounding.base import Candidate, Grounder, Hint
from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.record.session import Session
from agentcorp.sandbox.base import Computer
from agentcorp.types import Action, Box, ChatModel, PolicyStep, Step

__all__ = [
    "RecordedGate",
    "RecordedGrounder",
    "episode_from_manifest",
    "episode_manifest",
    "loop_runner",
]


def _plain(value: Any) -> Any:
    """JSON-ready form of spec steps (pydantic models are dumped, tuples become lists)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(by_alias=True, exclude_none=True))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def episode_manifest(task: EpisodeTask, config: ActorConfig) -> dict[str, Any]:
    """The manifest entries that let a replay rebuild this episode (pass as ``extra=``)."""
    episode = {f.name: _plain(getattr(task, f.name)) for f in fields(EpisodeTask)}
    episode["steps"] = _plain(list(task.steps))
    actor = asdict(config)
    # Who answered help is the run's, not the recording's: only whether the tool was offered
    # (it is in every model request, so a replay must offer it too).
    if actor.pop("ask_help", None) is not None:
        actor["ask_help"] = True
    return {"episode": episode, "actor_config": _plain(actor)}


def _no_answer(task_id: str, question: str) -> str:
    """``request_help`` in a replay: nobody is there to answer."""
    return "no answer (a replayed session)"


def episode_from_manifest(session: Session) -> tuple[EpisodeTask, ActorConfig]:
    """The ``EpisodeTask`` and ``ActorConfig`` a session was recorded with."""
    where = session.folder / "manifest.json"
    ep = session.manifest.get("episode")
    if not isinstance(ep, dict):
        raise RecordingError(
            f"{where}: no 'episode' entry, so the loop cannot be rebuilt for a decision replay"
        )
    for key in ("task_id", "goal"):
        if not isinstance(ep.get(key), str):
            raise RecordingError(f"{where}: episode.{key} must be a string")
    names = {f.name for f in fields(EpisodeTask)}
    unknown = sorted(set(ep) - names)
    if unknown:
        raise RecordingError(f"{where}: episode has unknown keys {unknown}")
    try:
        task = EpisodeTask(**{**ep, "steps": list(ep.get("steps") or [])})
    except TypeError as exc:
        raise RecordingError(f"{where}: episode: {exc}") from None
    raw = session.manifest.get("actor_config") or {}
    if not isinstance(raw, dict):
        raise RecordingError(f"{where}: actor_config must be an object")
    known = {f.name for f in fields(ActorConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RecordingError(f"{where}: actor_config has unknown keys {unknown}")
    if "ask_help" in raw:
        raw = {**raw, "ask_help": _no_answer if raw["ask_help"] is True else None}
    try:
        config = ActorConfig(**raw)
    except TypeError as exc:
        raise RecordingError(f"{where}: actor_config: {exc}") from None
    return task, config


class RecordedGate(ActionGate):
    """Answers each gate check with the recorded policy decision, in order.

    More checks than recorded decisions are allowed (the replay's action comparison reports
    the extra action as the divergence).
    """

    def __init__(self, session: Session) -> None:
        self.decisions = [e.step for e in session.events if isinstance(e.step, PolicyStep)]
        self.index = 0

    def check(self, action: Action, context: GateContext) -> GateDecision:
        """The next recorded decision."""
        if self.index >= len(self.decisions):
            return GateDecision(True, "allowed", message="beyond the recording")
        d = self.decisions[self.index]
        self.index += 1
        allowed = d.decision in ("allowed", "approved")
        msg = "" if allowed else f"denied by policy rule {d.rule or '?'} (recorded)"
        return GateDecision(allowed, d.decision, d.rule, d.approver, msg)


def loop_runner(
    session: Session,
    *,
    grounder: Grounder | None = None,
    gate: ActionGate | None = None,
    config: ActorConfig | None = None,
    task: EpisodeTask | None = None,
) -> Any:
    """``run(model, computer)`` re-running the recorded episode (overrides for experiments).

    Passing a changed ``config`` (say another system prompt) is how a prompt change is tested
    against a recording: the replay then fails at the first request that differs.

    A run that ran from a skill (manifest ``cached_run``) is redone the same way:
    the skill's actions first (``CachedActor``), then, if they diverged, the episode that
    took over.
    """
    part = session.actor_part()
    # Sessions recorded before the rename keep the cached sequence under its old key.
    key = "cached_run" if "cached_run" in session.manifest else "cache_replay"
    cached = session.manifest.get(key)
    if cached is not None and part is session:
        return _cache_runner(
            session, cached, key, grounder=grounder, gate=gate, config=config, task=task
        )
    rec_task, rec_config = episode_from_manifest(session)
    session = part
    the_task = task or rec_task
    the_config = config or rec_config

    def run(model: ChatModel, computer: Computer) -> Iterable[Step]:
        return run_episode(
            computer,
            the_task,
            gate=gate or RecordedGate(session),
            model=model,
            grounder=grounder,
            config=the_config,
        )

    return run


def _cache_runner(
    session: Session,
    cached: Any,
    key: str,
    *,
    grounder: Grounder | None,
    gate: ActionGate | None,
    config: ActorConfig | None,
    task: EpisodeTask | None,
) -> Any:
    """``run(model, computer)`` for a session whose actions came (at first) from the cache."""
    from agentcorp.actor.cached import CachedActor, entries_from_doc
    from agentcorp.errors import ConfigError

    where = f"{session.folder / 'manifest.json'}: {key}"
    try:
        entries, cache_config = entries_from_doc(cached, where)
    except ConfigError as exc:
        raise RecordingError(str(exc)) from None
    takeover: tuple[EpisodeTask, ActorConfig] | None = None
    if session.manifest.get("episode") is not None:
        takeover = episode_from_manifest(session)

    def run(model: ChatModel, computer: Computer) -> Iterable[Step]:
        the_gate = gate or RecordedGate(session)

        def steps() -> Generator[Step, None, None]:
            actor = CachedActor(computer, gate=the_gate, grounder=grounder, config=cache_config)
            out = yield from actor.run_cached(
                EpisodeTask(
                    session.task_id,
                    "",
                    sandbox=str((session.manifest.get("sandbox") or {}).get("name", "")),
                ),
                entries,
            )
            if out.divergence is not None and takeover is not None:
                yield from run_episode(
                    computer,
                    task or takeover[0],
                    gate=the_gate,
                    model=model,
                    grounder=grounder,
                    config=config or takeover[1],
                )

        return steps()

    return run


class RecordedGrounder(Grounder):
    """Answers a scripted step's target where the recorded run found it, on the same frame.

    Without a sandbox the DOM is gone and OCR of a recorded frame may place a target a few
    pixels off (or not find a field the DOM found by its label), so a decision replay of a
    browser task would diverge for reasons that have nothing to do with the loop. Each
    recorded action with a text target is keyed by the frame it was grounded on and that
    text; any other question (``wait_for`` texts, other frames) goes to ``fallback``.
    """

    def __init__(self, session: Session, fallback: Grounder | None = None) -> None:
        from agentcorp.types import ActionStep, ObservationStep

        self.fallback = fallback
        self.points: dict[tuple[str, str], tuple[int, int]] = {}
        frame_keys: tuple[str, ...] = ()
        for ev in session.events:
            st = ev.step
            if isinstance(st, ObservationStep):
                frame_keys = tuple(k for k in (ev.refs.get("frame"), st.frame_sha256) if k)
            elif isinstance(st, ActionStep):
                a = st.action
                if a.target and a.x is not None and a.y is not None:
                    for k in frame_keys:
                        self.points.setdefault((k, a.target), (a.x, a.y))

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """The recorded point for ``target`` on this frame, else the fallback's answer."""
        sha = getattr(frame, "sha256", None)
        point = self.points.get((sha, target)) if isinstance(sha, str) else None
        if point is not None:
            x, y = point
            # "cache": served from what was recorded, not read off the pixels.
            return [Candidate(Box(x - 8, y - 8, 16, 16), target, 1.0, "cache")]
        return self.fallback.locate(frame, target, hint) if self.fallback is not None else []
