"""Sandboxes for replaying a recorded session live (``agentcorp replay``, with a sandbox)."""

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

__all__ = ["live_sandbox"]


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
