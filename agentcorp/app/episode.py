"""The episode function the fleet's workers call: one task instance of a run, by value.

``agentcorp.run`` hands the fleet the string ``EPISODE`` (``agentcorp.app.episode:episode``);
a local worker process or a Ray actor imports it there. The payload of every fleet task names
the run folder, whose ``run.json`` holds the run's settings (never a key or a password: those
come from the worker's environment). Each process keeps one ``Station`` per run folder for
its whole life, so the sandboxes it opened (and their state) carry over from one task to the
next as they do in-process; their homes live in the run folder so a resumed run finds them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from agentcorp.app.attempt import RunObserver, TaskRun, company_task, instance_of, run_instance
from agentcorp.app.config import LiveViewSettings, RunConfig
from agentcorp.app.runner import TaskRunner
from agentcorp.errors import ConfigError
from agentcorp.types import ChatModel

__all__ = ["EPISODE", "RunFolder", "Station", "episode", "station"]

#: What the fleet imports in a worker: ``MODULE:FUNCTION``.
EPISODE = "agentcorp.app.episode:episode"

_STATUS: Mapping[str, Literal["passed", "failed", "error", "budget_exceeded"]] = {
    "pass": "passed",
    "fail": "failed",
    "error": "error",
    "budget_exceeded": "budget_exceeded",
}


class RunFolder:
    """The layout of a run folder (``--sessions DIR``).

    ``DIR/.agentcorp/`` holds the ledger (``ledger.db``), the run's settings (``run.json``),
    one result file per task (``results/ID.json``) and the sandboxes' homes
    (``sandboxes/NAME/``); sessions, their traces, the audit logs and the run's trace index
    sit at the top, as ``agentcorp run`` always laid them out.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / ".agentcorp"
        self.ledger = self.meta / "ledger.db"
        self.settings = self.meta / "run.json"
        self.results = self.meta / "results"
        self.sandboxes = self.meta / "sandboxes"

    def result_file(self, task_id: str) -> Path:
        """Where the episode of ``task_id`` leaves its ``TaskRun``."""
        return self.results / f"{task_id}.json"

    def read_settings(self) -> dict[str, Any]:
        """``run.json`` (``ConfigError`` when missing or unreadable)."""
        try:
            data = json.loads(self.settings.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.settings}: cannot read the run's settings: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.settings}: not a run settings file")
        return data

    def write_settings(
        self, company: Any, config: RunConfig, live_view: LiveViewSettings | None = None
    ) -> None:
        """Write ``run.json``: what a worker needs to run the company's tasks of this run.

        Never a key or a password: those reach workers through their environment.
        """
        if company.source is None:
            raise ConfigError("agentcorp.run: the company has no source file (load it from a path)")
        self.meta.mkdir(parents=True, exist_ok=True)
        data = {
            "company": company.company,
            "company_file": str(Path(company.source).resolve()),
            # A company written elsewhere (a manager's plan) keeps the folder its paths point to.
            "base_dir": str(Path(company.base_dir).resolve()),
            "config": config.model_dump(mode="json", exclude={"api_key"}),
            "live_view": (
                {
                    "vnc_port": live_view.vnc_port,
                    "web_port": live_view.web_port,
                    "bind": live_view.bind,
                }
                if live_view is not None
                else None
            ),
        }
        tmp = self.settings.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
        tmp.replace(self.settings)

    def read_result(self, task_id: str) -> TaskRun | None:
        """The ``TaskRun`` an episode left for ``task_id``, or ``None``."""
        try:
            return TaskRun.from_json(
                json.loads(self.result_file(task_id).read_text(encoding="utf-8"))
            )
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def write_result(self, run: TaskRun) -> None:
        """Write ``run`` atomically (a killed worker leaves the old file or the new one)."""
        self.results.mkdir(parents=True, exist_ok=True)
        target = self.result_file(run.name)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(run.to_json(), sort_keys=True), encoding="utf-8")
        tmp.replace(target)


class Station:
    """One process's place in a run: the company, its open ``TaskRunner`` and observers."""

    def __init__(
        self,
        folder: RunFolder,
        environ: Mapping[str, str],
        observers: Sequence[RunObserver] = (),
        *,
        worker: str = "",
        live_view: LiveViewSettings | None = None,
    ) -> None:
        from agentcorp.spec import load_company

        self.folder = folder
        settings = folder.read_settings()
        self.environ = environ
        self.observers = list(observers)
        base = settings.get("base_dir")
        self.company = load_company(
            str(settings["company_file"]), base_dir=str(base) if isinstance(base, str) else None
        )
        from agentcorp.app.config import KEY_ENV

        cfg = dict(settings["config"])
        key = environ.get(KEY_ENV.get(str(cfg.get("provider")), ""), "").strip()
        self.config = RunConfig.model_validate({**cfg, "api_key": key or None})
        self.live_view = live_view if live_view is not None else _live_view(settings, environ)
        self.worker = worker
        self._stack = ExitStack()
        self._runner: TaskRunner | None = None
        #: The audit log this station's tasks wrote to (once its runner opened).
        self.audit_path: Path | None = None

    def runner(self) -> TaskRunner:
        """The station's task runner, opened on first use (sandboxes open lazily too)."""
        if self._runner is None:
            self._runner = self._stack.enter_context(
                TaskRunner.open(
                    self.company,
                    self.config,
                    self.environ,
                    live_view=self.live_view,
                    notify=self.notice,
                    state_root=self.folder.sandboxes,
                    live_offset=_worker_index(self.worker) * max(1, _desktops(self.company)),
                )
            )
            if self._runner.audit is not None:
                self.audit_path = Path(self._runner.audit.path)
        return self._runner

    def notice(self, message: str) -> None:
        """Pass a one-line notice to the observers."""
        for o in self.observers:
            o.notice(message)

    def close(self) -> None:
        """Close the sandboxes, the model client and the audit log."""
        self._runner = None
        self._stack.close()

    def run(
        self, task_id: str, inputs: Mapping[str, Any] | None, ctx: Any, instance: str = ""
    ) -> TaskRun:
        """Run one task instance under the fleet context ``ctx`` and leave its result.

        ``instance`` names it in a batch (``task#n``); its result file is named after it.
        """
        runner = self.runner()
        task = instance_of(company_task(self.company, task_id), inputs)
        tries = max(1, int(task.retry.max_attempts))
        lease = max(1, int(getattr(ctx, "attempt", 1)))
        inner = runner.client
        if inner is not None and getattr(ctx, "limiter", None) is not None:
            runner.client = _RateLimitedClient(inner, ctx, "llm")
        try:
            run = run_instance(runner, task, self.observers, first_attempt=(lease - 1) * tries + 1)
        finally:
            runner.client = inner
        run.attempts += lease - 1
        run.instance = instance
        self.folder.write_result(run)
        return run


def _desktops(company: Any) -> int:
    return sum(1 for sb in company.sandboxes.values() if sb.kind == "desktop")


def _worker_index(worker: str) -> int:
    """``w3`` → 2: worker n's desktops take the live view ports after worker n-1's."""
    m = re.search(r"(?:^|/)w(\d+)$", worker)
    return int(m.group(1)) - 1 if m else 0


def _live_view(settings: Mapping[str, Any], environ: Mapping[str, str]) -> LiveViewSettings | None:
    lv = settings.get("live_view")
    if not isinstance(lv, dict):
        return None
    from agentcorp.app.config import PASSWORD_ENV

    password = environ.get(PASSWORD_ENV, "")
    if not password:
        return None
    return LiveViewSettings(password, int(lv["vnc_port"]), int(lv["web_port"]), str(lv["bind"]))


_STATIONS: dict[str, Station] = {}


def station(run_dir: str, worker: str = "") -> Station:
    """The station of this process for the run in ``run_dir`` (opened once, kept for the process).

    A worker process's sandboxes die with it (``PDEATHSIG``); ``atexit`` closes them on a
    normal exit.
    """
    st = _STATIONS.get(run_dir)
    if st is None:
        import atexit

        st = Station(RunFolder(Path(run_dir)), dict(os.environ), worker=worker)
        _STATIONS[run_dir] = st
        atexit.register(st.close)
    return st


def episode(task: Any, ctx: Any) -> Any:
    """Run the fleet task ``task`` (payload: ``run_dir``, ``task_id``, ``inputs``, ``instance``).

    Every model call first takes a token of the fleet's shared rate limit
    (``ctx.acquire("llm")``). A failed attempt is retried in the same episode up to the
    spec's ``retry.max_attempts``; the ledger's attempts count leases (worker losses).
    """
    payload = dict(task.payload)
    st = station(str(payload["run_dir"]), str(getattr(ctx, "worker_id", "")))
    return to_episode_result(
        st.run(
            str(payload["task_id"]), payload.get("inputs"), ctx, str(payload.get("instance", ""))
        )
    )


def to_episode_result(run: TaskRun) -> Any:
    """The fleet's ``EpisodeResult`` of a ``TaskRun``."""
    from agentcorp.fleet.model import EpisodeResult

    notes = [f"attempt {run.attempts}"] if run.attempts > 1 else []
    detail = "; ".join([run.reason, *notes] if run.reason else notes)
    return EpisodeResult(_STATUS[run.status], detail, run.session, run.cost_usd)


class _RateLimitedModel(ChatModel):
    """A bound model that waits for a token of the fleet's shared rate limit per call."""

    def __init__(self, inner: ChatModel, ctx: Any, key: str) -> None:
        self.inner = inner
        self.ctx = ctx
        self.key = key

    def complete(self, request: Any) -> Any:
        """Take a token of ``key`` (``ctx.acquire``), then ask the model."""
        self.ctx.acquire(self.key)
        return self.inner.complete(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _RateLimitedClient:
    """An ``OpenAIClient`` whose bound models go through ``_RateLimitedModel``."""

    def __init__(self, inner: Any, ctx: Any, key: str) -> None:
        self.inner = inner
        self.ctx = ctx
        self.key = key

    def bind(self, **kwargs: Any) -> ChatModel:
        """The inner client's bound model, rate limited."""
        return _RateLimitedModel(self.inner.bind(**kwargs), self.ctx, self.key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
