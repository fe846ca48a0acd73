"""The operator console: watch a run live, answer its approvals and questions, take over.

``Console(bind)`` starts a loopback web server with a fresh token, an observer of the run's
step stream (pass ``console.observer`` to ``agentcorp.run(observers=[...])``) and a poller of
the run's ledger (for ``--workers`` and Ray, whose steps stay in the workers). While it runs,
``AGENTCORP_CONSOLE_URL`` / ``AGENTCORP_CONSOLE_TOKEN`` are set in this process's environment,
so the run's processes (and their workers) reach it: the ``console`` approver, control checks
before each action (and, while a person holds a task, the live view its agent serves from
``agentcorp.console.live``), ``request_help``. ``close()`` stops it and removes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentcorp.console.lease import LeaseBook
from agentcorp.console.observer import ConsoleObserver, LedgerPoller
from agentcorp.console.server import ConsoleServer, parse_bind
from agentcorp.console.state import ConsoleState
from agentcorp.policy.approvers import CONSOLE_TOKEN_ENV, CONSOLE_URL_ENV

__all__ = ["Console", "parse_bind"]


class _Observer(ConsoleObserver):
    def __init__(self, console: Console) -> None:
        super().__init__(console.state)
        self.console = console

    def run_started(self, plan: Any) -> None:
        self.console.attach(Path(plan.run_dir))
        super().run_started(plan)

    def task_finished(self, run: Any) -> None:
        super().task_finished(run)
        self.console.poller.poll()


class Console:
    """One run's console (see the module docstring)."""

    def __init__(self, bind: str | None = None, *, lease_ttl_s: float = 20.0) -> None:
        host, port = parse_bind(bind)
        self.state = ConsoleState()
        self.leases = LeaseBook(lease_ttl_s)
        self.server = ConsoleServer(self.state, self.leases, host, port)
        self.leases.on_lapse = lambda kind, **fields: self.server.record(kind, **fields)
        self.poller = LedgerPoller(self.state)
        self.observer: ConsoleObserver = _Observer(self)
        self._saved: dict[str, str | None] = {}

    @property
    def url(self) -> str:
        """The URL to open, with the token."""
        return self.server.url

    def env(self) -> dict[str, str]:
        """What the run's processes need to reach the console."""
        return {CONSOLE_URL_ENV: self.server.base_url, CONSOLE_TOKEN_ENV: self.server.token}

    def start(self) -> Console:
        """Serve, poll, and export the console's address to this process's environment."""
        for k, v in self.env().items():
            self._saved[k] = os.environ.get(k)
            os.environ[k] = v
        self.server.start()
        self.poller.start()
        return self

    def attach(self, run_dir: Path) -> None:
        """The run folder is known: leases go to its ledger, people's actions to its audit."""
        from agentcorp.policy.audit import AuditLog

        self.leases.ledger = run_dir / ".agentcorp" / "ledger.db"
        if self.server.audit is None:
            self.server.set_audit(AuditLog(run_dir / "audit-console.jsonl", fsync=False))
        with self.state.cond:
            self.state.run_dir = run_dir

    def finish(self) -> None:
        """The run ended: the page says so (the server keeps serving until ``close``)."""
        self.poller.poll()
        with self.state.cond:
            self.state.finished = True
            self.state.changed()

    def close(self) -> None:
        """Stop serving and polling; restore the environment."""
        self.poller.stop()
        self.server.close()
        if self.server.audit is not None:
            self.server.audit.close()
        for k, old in self._saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old

    def __enter__(self) -> Console:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
