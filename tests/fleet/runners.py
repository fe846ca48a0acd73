"""Episode runners the fleet tests inject (importable by worker processes and Ray actors).

Each one does a small real job and leaves evidence a test can count: a line appended to
``payload["log"]`` for every start and every finish, written with O_APPEND so concurrent
workers never interleave a line.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from agentcorp.fleet.model import EpisodeContext, EpisodeResult, FleetTask


def _log(task: FleetTask, ctx: EpisodeContext, event: str, **extra: object) -> None:
    path = task.payload.get("log")
    if not path:
        return
    line = json.dumps(
        {
            "task": task.id,
            "attempt": ctx.attempt,
            "epoch": ctx.epoch,
            "worker": ctx.worker_id,
            "node": ctx.node_id,
            "event": event,
            "pid": os.getpid(),
            "t": time.time(),
            **extra,
        }
    )
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def sleepy(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """Sleep ``payload["sleep_s"]`` then pass; logs start/end and claims one side effect."""
    _log(task, ctx, "start", key=os.environ.get("AGENTCORP_IDEMPOTENCY_KEY"))
    sleep = task.payload.get("retry_sleep_s") if ctx.attempt > 1 else None
    time.sleep(float(sleep if sleep is not None else task.payload.get("sleep_s", 0.05)))
    first = ctx.claim_effect("finish")
    _log(task, ctx, "end", first=first)
    return EpisodeResult("passed", f"slept on {ctx.worker_id}")


def desktop(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """A real job on the worker's own display: ask X for its geometry and move the pointer."""
    _log(task, ctx, "start", display=ctx.display)
    barrier = int(task.payload.get("barrier", 0))
    if barrier:
        # Meet the other chain's first task, so both workers are provably busy at once.
        Path(f"{task.payload['log']}.at.{task.id}").touch()
        deadline = time.monotonic() + 60
        while len(list(Path(str(task.payload["log"])).parent.glob("*.at.*"))) < barrier:
            if time.monotonic() > deadline:
                return EpisodeResult("error", "barrier timed out")
            time.sleep(0.02)
    if not ctx.display:
        return EpisodeResult("error", "no display")
    env = {**os.environ, "DISPLAY": ctx.display}
    geo = subprocess.run(
        ["xdotool", "getdisplaygeometry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if geo.returncode != 0:
        return EpisodeResult("failed", f"xdotool: {geo.stderr.strip()}")
    x = 10 + int(task.payload.get("n", 0))
    subprocess.run(["xdotool", "mousemove", str(x), "20"], env=env, timeout=10, check=True)
    loc = subprocess.run(
        ["xdotool", "getmouselocation", "--shell"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    ok = f"X={x}\n" in loc
    time.sleep(float(task.payload.get("sleep_s", 0.0)))
    _log(task, ctx, "end", display=ctx.display, geometry=geo.stdout.strip())
    return EpisodeResult("passed" if ok else "failed", f"{ctx.display} {geo.stdout.strip()}")


def failing(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """Fail tasks whose payload says so, pass the rest."""
    _log(task, ctx, "start")
    status = "failed" if task.payload.get("fail") else "passed"
    _log(task, ctx, "end")
    return EpisodeResult(status)  # type: ignore[arg-type]


def read_log(path: str | Path) -> list[dict[str, object]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def spec_sleepy(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """For ``agentcorp run --episode``: log next to the company file, sleep ``FLEET_TEST_SLEEP``."""
    settings = Path(str(task.payload["run_dir"])) / ".agentcorp" / "run.json"
    company_file = json.loads(settings.read_text(encoding="utf-8"))["company_file"]
    log = Path(company_file).parent / "episodes.jsonl"
    t = FleetTask(
        task.id,
        task.depends_on,
        task.company,
        task.cost,
        task.expected_s,
        task.api_key,
        task.max_losses,
        {"log": str(log)},
    )
    _log(t, ctx, "start", key=os.environ.get("AGENTCORP_IDEMPOTENCY_KEY"))
    time.sleep(float(os.environ.get("FLEET_TEST_SLEEP", "0.15")))
    _log(t, ctx, "end")
    return EpisodeResult("passed")


def charge(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """A real side effect, done at most once per task: one line appended to the "world" file.

    After the effect it logs ``effected`` and sleeps (``payload["after_s"]`` or
    ``FLEET_TEST_SLEEP``), the window in which a test kills the coordinator before the
    result is written. A later attempt that finds the claim logs ``honoured`` instead.
    """
    payload = task.payload
    if "run_dir" in payload:  # a task of ``agentcorp run``: files beside the company file
        settings = Path(str(payload["run_dir"])) / ".agentcorp" / "run.json"
        company_file = json.loads(settings.read_text(encoding="utf-8"))["company_file"]
        folder = Path(company_file).parent
        world, log = folder / "world.txt", folder / "episodes.jsonl"
    elif "company_file" in payload:
        folder = Path(str(payload["company_file"])).parent
        world, log = folder / "world.txt", folder / "episodes.jsonl"
    else:
        world, log = Path(str(payload["world"])), Path(str(payload["log"]))
    t = FleetTask(task.id, task.depends_on, task.company, payload={"log": str(log)})
    _log(t, ctx, "start", key=os.environ.get("AGENTCORP_IDEMPOTENCY_KEY"))
    if ctx.claim_effect("charge"):
        fd = os.open(str(world), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{task.id} charged by attempt {ctx.attempt}\n".encode())
        finally:
            os.close(fd)
        ctx.effect_done("charge", f"charged by attempt {ctx.attempt}")
        _log(t, ctx, "effected")
        # A file beside the world reaches Ray actors, whose environment is the cluster's.
        pause = world.with_name("after_s")
        after = pause.read_text() if pause.exists() else os.environ.get("FLEET_TEST_SLEEP", "0")
        time.sleep(float(payload.get("after_s", after)))
    else:
        _log(t, ctx, "honoured", outcome=ctx.effect_outcome("charge"))
    _log(t, ctx, "end")
    return EpisodeResult("passed")
