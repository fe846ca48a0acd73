"""The run's side of the console: control checks before actions, and help questions.

The console's address and token reach the run's processes (the coordinator and its workers,
local or Ray) through ``AGENTCORP_CONSOLE_URL`` / ``AGENTCORP_CONSOLE_TOKEN``; without them
nothing here does anything. A console that cannot be reached never stops the agent: a control
check then says "free" and a help question gets "no answer".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from agentcorp.console.live import LiveDriver
from agentcorp.policy.approvers import CONSOLE_TOKEN_ENV, CONSOLE_URL_ENV
from agentcorp.policy.base import ActionGate

if TYPE_CHECKING:
    from agentcorp.sandbox.base import Computer

__all__ = ["ConsoleClient", "console_client", "controlled", "first_answer", "webhook_asker"]


class ConsoleClient:
    """Talks to the run's console over HTTP with its token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def control(
        self, task_id: str, wait_s: float = 30.0, live: LiveDriver | None = None
    ) -> str | None:
        """``None`` when nobody holds ``task_id``; else block until hand-back: the note.

        With ``live`` (the task's sandbox), the person acts on it meanwhile from the page:
        the live view's frames and inputs go through ``live.drive``.
        """
        if live is not None:
            data = self._post(f"/api/control/{task_id}?live=1", {}, 10.0)
            if data is None or not data.get("held"):
                return None
            return live.drive(task_id, self._exchange)
        while True:
            try:
                r = httpx.post(
                    f"{self.url}/api/control/{task_id}?wait={wait_s:g}",
                    json={},
                    headers=self._headers,
                    timeout=wait_s + 10.0,
                )
                data = r.json() if r.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                return None
            if not data.get("held"):
                return None
            if data.get("released"):
                return str(data.get("note") or "control handed back")

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        try:
            r = httpx.post(self.url + path, json=body, headers=self._headers, timeout=timeout)
            data = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _exchange(
        self, task_id: str, payload: dict[str, Any], wait_s: float
    ) -> dict[str, Any] | None:
        """One poll of the live view: frame and results up, the person's inputs down."""
        return self._post(f"/api/control/{task_id}/live?wait={wait_s:g}", payload, wait_s + 15.0)

    def help(self, task_id: str, question: str, timeout_s: float) -> str:
        """Ask the person at the console; their answer, or ``no answer`` after ``timeout_s``."""
        try:
            r = httpx.post(
                f"{self.url}/api/help",
                json={"task": task_id, "question": question, "timeout": timeout_s},
                headers=self._headers,
                timeout=timeout_s + 10.0,
            )
            data = r.json() if r.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return "no answer (the operator console could not be reached)"
        answer = data.get("answer") if isinstance(data, dict) else None
        if isinstance(answer, str) and answer:
            return answer
        return f"no answer ({data.get('reason') or 'timed out'})"

    def asker(self, timeout_s: float) -> Callable[[str, str], str]:
        """``ask(task_id, question) -> answer`` for the actor's ``request_help``."""

        def ask(task_id: str, question: str) -> str:
            return self.help(task_id, question, timeout_s)

        return ask


def console_client(environ: Mapping[str, str] | None = None) -> ConsoleClient | None:
    """The run's console client, or ``None`` when the run has no console."""
    env = os.environ if environ is None else environ
    url, token = env.get(CONSOLE_URL_ENV, ""), env.get(CONSOLE_TOKEN_ENV, "")
    return ConsoleClient(url, token) if url and token else None


def controlled(
    gate: ActionGate,
    pause: Callable[[float], None] | None = None,
    audit: Any = None,
    environ: Mapping[str, str] | None = None,
    computer: Computer | None = None,
) -> ActionGate:
    """``gate`` behind the console's control leases when the run has a console.

    With the task's ``computer``, the person holding the lease acts on it from the page's
    live view while the agent is parked (``LiveDriver``).
    """
    client = console_client(environ)
    if client is None:
        return gate
    from agentcorp.console.lease import ControlGate

    if computer is None:
        return ControlGate(gate, client.control, pause, audit)
    driver = LiveDriver(computer, gate.redact_frame, audit)
    return ControlGate(gate, partial(client.control, live=driver), pause, audit)


def webhook_asker(url: str, timeout_s: float) -> Callable[[str, str], str]:
    """``request_help`` through a webhook approver's URL.

    POSTs ``{"kind": "help", "task": ID, "question": TEXT}``; a 2xx reply
    ``{"answer": "..."}`` is the answer, anything else (or no reply in time) is no answer.
    """

    def ask(task_id: str, question: str) -> str:
        body = {"kind": "help", "task": task_id, "question": question}
        try:
            r = httpx.post(url, json=body, timeout=timeout_s)
            data = r.json() if 200 <= r.status_code < 300 else {}
        except (httpx.HTTPError, ValueError):
            return "no answer (the webhook could not be reached)"
        answer = data.get("answer") if isinstance(data, dict) else None
        return answer if isinstance(answer, str) and answer else "no answer (from the webhook)"

    return ask


def first_answer(*askers: Callable[[str, str], str]) -> Callable[[str, str], str]:
    """Ask every one at once; the first real answer wins, else the last ``no answer``."""
    import queue
    import threading

    def ask(task_id: str, question: str) -> str:
        got: queue.Queue[str] = queue.Queue()
        for a in askers:
            threading.Thread(target=lambda a=a: got.put(a(task_id, question)), daemon=True).start()
        answer = "no answer"
        for _ in askers:
            answer = got.get()
            if not answer.startswith("no answer"):
                return answer
        return answer

    return ask
