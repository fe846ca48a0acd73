"""The best-of-N judge: a model picks the best rollout when no deterministic check can.

A task with ``attempts: {n: N}`` and no deterministic success check (none at all, or only
``llm_judge``) runs all N rollouts to their end. When more than one ends well, the judge model
(the task's ``models.judge``, else the planner) reads each rollout's step summary — its
actions with their intents and results, how it ended, its checks — and names the rollout that
best did the task, or none. Summaries are built from step records, so typed secrets appear as
their ``${secrets.NAME}`` references, never their values; text that came from a screen or a
model is passed as untrusted data. The reply is JSON (``{"winner": K, "reason": "..."}``,
negotiated like every structured reply), checked, and re-asked at most twice.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentcorp.llm.structured import OutputModes
from agentcorp.llm.untrusted import new_nonce, untrusted_notice, wrap_screen_text
from agentcorp.planner.plan import ask_json
from agentcorp.spec import Task, only_judged
from agentcorp.types import ActionResultStep, ActionStep, ChatModel, Step

__all__ = ["JUDGE_SCHEMA", "RolloutLog", "Verdict", "deterministic", "judge_rollouts"]

#: At most this many actions of a rollout are shown (its last ones), each line this long.
_MAX_ACTIONS = 40
_MAX_LINE = 160

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "winner": {
            "type": "integer",
            "description": "number of the attempt that best did the task; 0 when none did",
        },
        "reason": {"type": "string", "description": "one sentence: why"},
    },
    "required": ["winner", "reason"],
    "additionalProperties": False,
}


def deterministic(task: Task) -> bool:
    """Whether ``task``'s success checks decide without a model (some leaf is not a judge)."""
    tree = task.model_dump(mode="json", by_alias=True, exclude_none=True).get("success")
    return tree is not None and not only_judged(tree)


@dataclass
class RolloutLog:
    """What the judge is shown of one rollout, collected from its step records."""

    actions: list[str] = field(default_factory=list)
    _open: dict[int, str] = field(default_factory=dict)

    def step(self, step: Step) -> None:
        """Collect an action and, when its result comes, how it went."""
        if isinstance(step, ActionStep):
            a = step.action
            what = a.target or a.text or a.keys or a.url or a.summary
            if what is None and a.x is not None:
                what = f"({a.x}, {a.y})"
            line = f"{a.kind} {json.dumps(what, ensure_ascii=False)}" if what else a.kind
            if a.intent:
                line += f" — intent: {a.intent}"
            self._open[step.step] = line[:_MAX_LINE]
        elif isinstance(step, ActionResultStep):
            line = self._open.pop(step.step, f"action {step.step}")
            outcome = "ok" if step.ok else f"failed: {step.error or '?'}"
            self.actions.append(f"{line} → {outcome}"[: _MAX_LINE + 80])


@dataclass(frozen=True)
class Verdict:
    """The judge's pick: a 1-based attempt number (``None``: none did the task) and why."""

    winner: int | None
    reason: str


def _summary(k: int, status: str, reason: str, checks: Sequence[str], log: RolloutLog) -> str:
    shown = log.actions[-_MAX_ACTIONS:]
    skipped = len(log.actions) - len(shown)
    lines = [f"Attempt {k}: ended {status}" + (f" ({reason})" if reason else "")]
    if checks:
        lines.append("checks: " + "; ".join(checks))
    if skipped:
        lines.append(f"({skipped} earlier actions not shown)")
    lines += [f"{i}. {a}" for i, a in enumerate(shown, start=skipped + 1)]
    return "\n".join(lines)


def judge_rollouts(
    model: ChatModel,
    model_name: str,
    task: Task,
    rollouts: Sequence[tuple[int, str, str, Sequence[str], RolloutLog]],
    modes: OutputModes,
) -> Generator[Step, None, Verdict]:
    """Ask the judge which of ``rollouts`` (number, status, reason, checks, log) did ``task``.

    Yields the model calls as ``ModelCallStep`` records (purpose ``judge``); returns the
    ``Verdict``. A reply naming an attempt that is not offered is sent back to be fixed.
    """
    nonce = new_nonce()
    offered = {r[0] for r in rollouts}
    system = (
        "You compare several independent attempts at one task, each made in its own copy of "
        "the same computer, and pick the one that best accomplished the task as described. "
        "Judge by what the actions did and how each attempt ended. Answer with JSON: the "
        "number of the best attempt as `winner` (0 if none accomplished the task) and a "
        "one-sentence `reason`.\n\n" + untrusted_notice(nonce)
    )
    body = "\n\n".join(
        wrap_screen_text(_summary(k, status, reason, checks, log), nonce, "attempt")
        for k, status, reason, checks, log in rollouts
    )
    user = f"The task: {task.description}\n\nThe attempts, as recorded:\n\n{body}"
    base = [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def read(text: str) -> Verdict | str:
        try:
            data = json.loads(text)
        except ValueError as exc:
            return f"the reply is not JSON ({exc})"
        if not isinstance(data, dict):
            return "the reply must be a JSON object with winner and reason"
        winner, why = data.get("winner"), data.get("reason")
        if not isinstance(winner, int) or isinstance(winner, bool):
            return "winner must be an attempt number (an integer), or 0 for none"
        if winner != 0 and winner not in offered:
            nums = ", ".join(map(str, sorted(offered)))
            return f"winner {winner} is not one of the attempts offered ({nums}), nor 0"
        return Verdict(winner or None, str(why or "").strip()[:300])

    verdict: Verdict = yield from ask_json(
        model,
        base,
        JUDGE_SCHEMA,
        read,
        model_name=model_name,
        modes=modes,
        name="judge",
        who="judge",
    )
    return verdict
