"""Replaying a recorded session (``agentcorp replay``): the mode's replayer and its sandbox.

A live sandbox is built only from the company file the user names: a recording never
chooses the apps and services replay starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentcorp.app.runner import secret_values
from agentcorp.app.sandboxes import Sandboxes
from agentcorp.errors import ConfigError
from agentcorp.grounding.base import Grounder
from agentcorp.sandbox.base import Computer

__all__ = ["REPLAY_MODES", "live_sandbox", "replay_session"]

#: What a replay re-runs: model decisions, recorded actions, or the success checks.
REPLAY_MODES = ("decision", "action", "regrade")


@contextmanager
def live_sandbox(session: Any, company_path: Path | None) -> Iterator[tuple[Computer, Grounder]]:
    """A fresh sandbox like the one ``session`` ran on, opened as a run opens it.

    Only ``company_path`` is used (a recording never chooses the apps and services replay
    starts): without it, ``ConfigError``.
    """
    from agentcorp.app.running import load
    from agentcorp.record.replay import live_sandbox_company

    where = live_sandbox_company(session, company_path)
    company = load(where)
    info = session.manifest.get("sandbox")
    name = info.get("name") if isinstance(info, dict) else None
    if not isinstance(name, str) or name not in company.sandboxes:
        try:
            name = company.task_sandbox(company.task(session.task_id))
        except KeyError:
            raise ConfigError(
                f"{where}: no task {session.task_id!r} and no sandbox named by the session"
            ) from None
    vault = secret_values(company)
    secrets = {n: vault.value(n) for n in vault.names} if vault is not None else {}
    boxes = Sandboxes(company, secrets)
    try:
        with boxes.session(name) as (computer, grounder):
            yield computer, grounder
    finally:
        boxes.close()


def _offline_grounder() -> Grounder:
    """OCR on the recorded frames (the DOM is gone once a session is recorded)."""
    try:
        from agentcorp.grounding.ocr_grounder import OcrGrounder
    except ImportError:
        from agentcorp.grounding.base import NullGrounder

        return NullGrounder()
    return OcrGrounder()


def replay_session(
    s: Any,
    mode: str,
    *,
    no_sandbox: bool = False,
    company: Path | None = None,
    out: Path | None = None,
) -> Any:
    """Replay the opened, complete session ``s`` in ``mode``; its ``ReplayReport``.

    ``decision`` re-runs the loop on the recorded model replies (on the recorded frames with
    ``no_sandbox``, else on a live sandbox built from ``company``); ``action`` re-executes
    the recorded actions on a live sandbox; ``regrade`` re-runs the checks on the recording.
    """
    from agentcorp.record.replay import action_replay, decision_replay, regrade

    if mode not in REPLAY_MODES:
        raise ConfigError(f"--mode: {mode!r} is not one of {', '.join(REPLAY_MODES)}")
    if no_sandbox and mode != "decision":
        raise ConfigError("--no-sandbox applies to --mode decision only")
    if mode == "decision":
        from agentcorp.record.episode import RecordedGrounder, loop_runner

        if no_sandbox:
            recorded = RecordedGrounder(s, _offline_grounder())
            return decision_replay(s, loop_runner(s, grounder=recorded))
        with live_sandbox(s, company) as (computer, grounder):
            return decision_replay(s, loop_runner(s, grounder=grounder), computer)
    if mode == "action":
        with live_sandbox(s, company) as (computer, grounder):
            return action_replay(s, computer, grounder, out=out)
    grounder = _offline_grounder()
    read_text = getattr(grounder, "read_text", None)
    return regrade(s, grounder=grounder, read_text=read_text if callable(read_text) else None)
