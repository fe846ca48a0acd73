"""A local worker process: ``python -m agentcorp.fleet._worker FD NAME LEDGER RUNNER OPTIONS``.

Started by the local coordinator with one end of a socket pair as ``FD``. It owns its own
sandbox (an Xvfb desktop) for its whole life, runs one episode at a time, heartbeats the
lease from a thread and writes the result to the ledger itself, fenced on the lease epoch.
When the coordinator goes away (the socket reads EOF) it finishes the episode in hand,
stops renewing its lease, and exits; its own children die with it (PDEATHSIG).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from agentcorp.errors import AgentcorpError, ConfigError, FencedOut, FleetError, SetupError
from agentcorp.fleet._coord import HOST, holder_id
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import EpisodeContext, EpisodeResult, FleetTask, resolve_runner
from agentcorp.fleet.policy import RateLimit

__all__ = ["SqliteRateLimiter", "main", "run_episode", "task_from_json"]


class SqliteRateLimiter:
    """The shared token bucket of a local run: one row per key in the ledger file."""

    def __init__(self, ledger: SqliteLedger, limits: Mapping[str, RateLimit]) -> None:
        self._ledger = ledger
        self._limits = dict(limits)

    def acquire(self, key: str, timeout_s: float) -> None:
        """Wait for one token of ``key`` (unlimited keys return at once)."""
        lim = self._limits.get(key)
        if lim is None:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            wait_s = self._ledger.take_token(key, lim.rate, lim.burst)
            if wait_s <= 0:
                return
            if time.monotonic() + wait_s > deadline:
                raise FleetError(f"rate limit {key!r}: no token within {timeout_s:g}s")
            time.sleep(wait_s)


def task_from_json(d: Mapping[str, Any]) -> FleetTask:
    """Rebuild a ``FleetTask`` from its ``dataclasses.asdict`` form."""
    return FleetTask(
        id=str(d["id"]),
        depends_on=tuple(d["depends_on"]),
        company=str(d["company"]),
        cost=float(d["cost"]),
        expected_s=float(d["expected_s"]),
        api_key=d["api_key"],
        max_losses=int(d["max_losses"]),
        payload=dict(d["payload"]),
        affinity=d.get("affinity"),
    )


class _Heartbeat(threading.Thread):
    """Renews a lease until stopped, fenced, or the coordinator is gone."""

    def __init__(
        self, path: str, task_id: str, epoch: int, lease_s: float, orphaned: threading.Event
    ) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{task_id}")
        self._ledger = SqliteLedger(path)
        self._args = (task_id, epoch, lease_s)
        self._orphaned = orphaned
        self._halt = threading.Event()

    def run(self) -> None:
        task_id, epoch, lease_s = self._args
        try:
            while not self._halt.wait(lease_s / 3):
                # An orphan stops renewing: a restarted coordinator re-queues the task when
                # the lease runs out, and this worker's late result is then fenced.
                if self._orphaned.is_set():
                    return
                try:
                    self._ledger.heartbeat(task_id, epoch, lease_s)
                except FencedOut:
                    return
        finally:
            self._ledger.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class _ParentWatch(threading.Thread):
    """Sets ``orphaned`` when the coordinator's process is gone."""

    def __init__(self, ppid: int, orphaned: threading.Event) -> None:
        super().__init__(daemon=True, name="parent-watch")
        self._ppid = ppid
        self._orphaned = orphaned

    def run(self) -> None:
        while os.getppid() == self._ppid:
            time.sleep(0.1)
        self._orphaned.set()


def run_episode(
    runner: Callable[[FleetTask, EpisodeContext], Any], task: FleetTask, ctx: EpisodeContext
) -> EpisodeResult:
    env = ctx.env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        result = runner(task, ctx)
    except (SetupError, ConfigError):
        # The environment cannot run episodes at all (a missing Xvfb, an unreachable model)
        # or the run's input is bad: the run stops (exit 3 or 2) and the lease is given
        # back on resume, instead of every task failing one by one.
        raise
    except AgentcorpError as exc:
        return EpisodeResult("error", f"{type(exc).__name__}: {exc}".splitlines()[0])
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
        return EpisodeResult("error", f"{type(exc).__name__}: {exc}{where}".splitlines()[0])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not isinstance(result, EpisodeResult):
        return EpisodeResult("error", f"runner returned {type(result).__name__}, not EpisodeResult")
    return result


class _Worker:
    def __init__(self, name: str, ledger_path: str, runner_ref: str, opts: Mapping[str, Any]):
        self.name = name
        self.wid = holder_id(name)
        self.opts = opts
        self.lease_s = float(opts["lease_s"])
        self.ledger = SqliteLedger(ledger_path)
        self.runner = resolve_runner(runner_ref)
        self.orphaned = threading.Event()
        self.computer: Any = None
        self.display: str | None = None
        limits = {k: RateLimit(float(v[0]), float(v[1])) for k, v in opts["rate_limits"].items()}
        self.limiter = SqliteRateLimiter(self.ledger, limits)

    def open_sandbox(self) -> None:
        if self.opts["sandbox"] == "xvfb":
            from agentcorp.sandbox.xvfb import XvfbDesktop

            w, h = self.opts["screen"]
            home = None
            if self.opts.get("home_root"):
                home = Path(self.opts["home_root"]) / self.name
                home.mkdir(parents=True, exist_ok=True)
            self.computer = XvfbDesktop(
                screen=(int(w), int(h)),
                window_manager=bool(self.opts["window_manager"]),
                home=home,
            )
            self.display = self.computer.display

    def close(self) -> None:
        if self.computer is not None:
            self.computer.close()
        self.ledger.close()

    def serve(self, task: FleetTask, attempt: int, epoch: int) -> str:
        try:
            self.ledger.start(task.id, epoch)
        except FencedOut:
            return "fenced"
        session_dir = None
        if self.opts.get("session_root"):
            session_dir = str(Path(self.opts["session_root"]) / task.id / f"attempt-{attempt}")
        ctx = EpisodeContext(
            task_id=task.id,
            attempt=attempt,
            epoch=epoch,
            worker_id=self.wid,
            node_id=HOST,
            display=self.display,
            session_dir=session_dir,
            computer=self.computer,
            limiter=self.limiter,
            effects=self.ledger,
        )
        hb = _Heartbeat(str(self.ledger.path), task.id, epoch, self.lease_s, self.orphaned)
        hb.start()
        try:
            result = run_episode(self.runner, task, ctx)
        finally:
            hb.stop()
        try:
            self.ledger.finish(
                task.id,
                epoch,
                result.status,
                detail=result.detail,
                session_path=result.session_path,
                cost=result.cost,
            )
        except FencedOut:
            return "fenced"
        return result.status


def main(argv: list[str]) -> int:
    """Entry point of a worker process (see the module docstring for the arguments)."""
    fd, name, ledger_path, runner_ref, opts_json = argv
    conn = Connection(int(fd))
    ppid = os.getppid()
    worker: _Worker | None = None
    try:
        try:
            worker = _Worker(name, ledger_path, runner_ref, json.loads(opts_json))
            _ParentWatch(ppid, worker.orphaned).start()
            worker.open_sandbox()
        except AgentcorpError as exc:
            conn.send(("failed", name, str(exc).splitlines()[0] if str(exc) else repr(exc)))
            return 3
        conn.send(("ready", name, worker.wid, worker.display))
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return 0
            if msg is None:
                return 0
            task_d, attempt, epoch = msg
            task = task_from_json(task_d)
            try:
                status = worker.serve(task, int(attempt), int(epoch))
            except (SetupError, ConfigError) as exc:
                line = str(exc).splitlines()[0] if str(exc) else repr(exc)
                conn.send(("failed", name, line, type(exc).__name__))
                return exc.exit_code
            try:
                conn.send(("done", task.id, epoch, status))
            except OSError:
                return 0
    finally:
        if worker is not None:
            worker.close()
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
