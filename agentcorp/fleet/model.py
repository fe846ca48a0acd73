"""Value types of the fleet: what a task is to the scheduler, and what an episode sees.

A ``FleetTask`` is the scheduler's view of one spec task: its id, what it waits for, which
company's budget pays for it, which API key's rate limit it draws on and how long it is
expected to take (so a node that is about to leave is not given work it cannot finish).
The episode itself (sandbox, actor, checks) is opaque here: an ``EpisodeRunner`` turns a
task plus an ``EpisodeContext`` into an ``EpisodeResult``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from agentcorp.errors import ConfigError

__all__ = [
    "IDEMPOTENCY_ENV",
    "STATES",
    "TERMINAL",
    "EpisodeContext",
    "EpisodeResult",
    "EpisodeRunner",
    "FleetTask",
    "Outcome",
    "State",
    "idempotency_key",
    "resolve_runner",
]

State: TypeAlias = Literal[
    "pending", "leased", "running", "passed", "failed", "error", "budget_exceeded"
]
Outcome: TypeAlias = Literal["passed", "failed", "error", "budget_exceeded"]
STATES: tuple[State, ...] = (
    "pending",
    "leased",
    "running",
    "passed",
    "failed",
    "error",
    "budget_exceeded",
)
TERMINAL: frozenset[str] = frozenset({"passed", "failed", "error", "budget_exceeded"})

#: Environment variable holding the task id while an episode runs; a step's key is
#: ``TASK/STEP`` (see ``idempotency_key``). The attempt is deliberately not part of it: a
#: side effect done by an attempt that died is the same effect for the next attempt.
IDEMPOTENCY_ENV = "AGENTCORP_IDEMPOTENCY_KEY"


@dataclass(frozen=True, slots=True)
class FleetTask:
    """One schedulable unit: a spec task as the fleet sees it.

    ``cost`` is what is reserved from the company's budget while the task runs (the actual
    cost reported by the episode replaces it when the task ends); ``expected_s`` is the
    duration estimate used for drain decisions; ``payload`` is JSON-ready data handed to the
    episode runner untouched. Tasks with the same ``affinity`` share state that lives on one
    node (a sandbox's desktop, its services): they run one at a time, on the node that ran
    the first of them while it lives.
    """

    id: str
    depends_on: tuple[str, ...] = ()
    company: str = "default"
    cost: float = 0.0
    expected_s: float = 60.0
    api_key: str | None = None
    max_losses: int = 5
    payload: Mapping[str, Any] = field(default_factory=dict)
    affinity: str | None = None


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """How an episode ended; ``cost`` is the budget actually used (None: use the estimate)."""

    status: Outcome
    detail: str = ""
    session_path: str | None = None
    cost: float | None = None


class RateLimiter(Protocol):
    """A rate limit shared by every worker of a run (SQLite row locally, a Ray actor)."""

    def acquire(self, key: str, timeout_s: float) -> None:
        """Block until a token of ``key`` is taken; ``FleetError`` after ``timeout_s``."""
        ...


class EffectStore(Protocol):
    """Where side effects are claimed by idempotency key, fenced on the lease epoch."""

    def record_effect(self, key: str, task_id: str, epoch: int) -> bool:
        """True the first time ``key`` is claimed (by any attempt) by the lease holder."""
        ...

    def complete_effect(self, key: str, task_id: str, epoch: int, outcome: str) -> None:
        """Record the outcome of the claimed effect ``key``."""
        ...

    def effect_outcome(self, key: str) -> tuple[bool, str | None]:
        """(claimed, outcome); outcome ``None`` when the claimer died before recording it."""
        ...


@dataclass(frozen=True, slots=True)
class EpisodeContext:
    """What a running episode may know about where and under which lease it runs.

    ``epoch`` is the fencing token of the lease: a result written with a superseded epoch is
    rejected. ``display`` is the worker's own X display (``":123"``) when it owns one.
    """

    task_id: str
    attempt: int
    epoch: int
    worker_id: str
    node_id: str
    display: str | None = None
    session_dir: str | None = None
    computer: Any = field(default=None, repr=False, compare=False)
    limiter: RateLimiter | None = field(default=None, repr=False, compare=False)
    effects: EffectStore | None = field(default=None, repr=False, compare=False)

    def acquire(self, key: str, timeout_s: float = 60.0) -> None:
        """Wait for a token of the shared rate limit ``key`` (no-op without a limiter)."""
        if self.limiter is not None:
            self.limiter.acquire(key, timeout_s)

    def claim_effect(self, step: int | str) -> bool:
        """Claim the side effect of ``step``; False if any attempt of this task claimed it.

        True: do the effect now, then ``effect_done(step, outcome)``. False: do not do it
        again; ``effect_outcome(step)`` says what it did, or ``None`` when the attempt that
        claimed it died before recording that (re-check the world, never redo blindly).
        Raises ``FencedOut`` when this lease was superseded (the caller is a zombie).
        """
        if self.effects is None:
            return True
        return self.effects.record_effect(self.idempotency_key(step), self.task_id, self.epoch)

    def effect_done(self, step: int | str, outcome: str = "done") -> None:
        """Record what the effect of ``step`` (claimed by this attempt) did."""
        if self.effects is not None:
            self.effects.complete_effect(
                self.idempotency_key(step), self.task_id, self.epoch, outcome
            )

    def effect_outcome(self, step: int | str) -> str | None:
        """The recorded outcome of ``step``'s effect, ``None`` if none was recorded."""
        if self.effects is None:
            return None
        return self.effects.effect_outcome(self.idempotency_key(step))[1]

    @property
    def idempotency_prefix(self) -> str:
        """``TASK``, the value of ``AGENTCORP_IDEMPOTENCY_KEY`` during the episode."""
        return self.task_id

    def idempotency_key(self, step: int | str) -> str:
        """The key a side-effecting step carries: task id + step, the same in every attempt."""
        return f"{self.task_id}/{step}"

    def env(self) -> dict[str, str]:
        """Environment variables an episode's subprocesses and checks can read."""
        env = {
            IDEMPOTENCY_ENV: self.idempotency_prefix,
            "AGENTCORP_TASK_ID": self.task_id,
            "AGENTCORP_ATTEMPT": str(self.attempt),
            "AGENTCORP_FENCING_EPOCH": str(self.epoch),
            "AGENTCORP_WORKER_ID": self.worker_id,
        }
        if self.display:
            env["DISPLAY"] = self.display
        return env


def idempotency_key(step: int | str, environ: Mapping[str, str] | None = None) -> str:
    """The idempotency key of ``step`` for the episode this process runs in.

    Reads ``AGENTCORP_IDEMPOTENCY_KEY`` (set by the fleet worker) so checks and task scripts
    started as subprocesses get the same key the episode uses.
    """
    env = os.environ if environ is None else environ
    prefix = env.get(IDEMPOTENCY_ENV)
    if not prefix:
        raise ConfigError(f"{IDEMPOTENCY_ENV} is not set: not running inside a fleet episode")
    return f"{prefix}/{step}"


class EpisodeRunner(Protocol):
    """Runs one whole episode of a task (never a single step) and says how it ended."""

    def __call__(self, task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
        """Run ``task`` under ``ctx``; raise only for infrastructure failures."""
        ...


def resolve_runner(ref: str | Callable[..., Any]) -> Callable[[FleetTask, EpisodeContext], Any]:
    """Turn ``"package.module:function"`` (or a callable) into the episode runner.

    A string travels to worker processes and Ray actors as is and is imported there, so the
    runner does not have to be picklable.
    """
    if callable(ref):
        return ref
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--runner: expected MODULE:FUNCTION, got {ref!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--runner: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"--runner: {module_name!r} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]
