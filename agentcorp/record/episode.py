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

from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

from agentcorp.actor.loop import ActorConfig, EpisodeTask, run_episode
from agentcorp.errors import RecordingError
from agentcorp.grounding.base import Grounder
from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.record.session import Session
from agentcorp.sandbox.base import Computer
from agentcorp.types import Action, ChatModel, PolicyStep, Step

__all__ = ["RecordedGate", "episode_from_manifest", "episode_manifest", "loop_runner"]


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
    return {"episode": episode, "actor_config": _plain(asdict(config))}


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
    """
    rec_task, rec_config = episode_from_manifest(session)
    session = session.actor_part()
    the_task = task or rec_task
    the_config = config or rec_config

    def run(model: ChatModel, computer: Computer) -> Iterable[Step]:
        return run_episode(
            computer, the_task, gate=gate or RecordedGate(session), model=model,
            grounder=grounder, config=the_config,
        )

    return run
