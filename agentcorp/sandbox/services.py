"""Local services a sandbox needs (the back office web app): start, wait ready, stop.

A service runs in its own process group, dies with us (``PR_SET_PDEATHSIG``), is ready when
its ``ready_url`` answers over HTTP (polled every few ms, no fixed sleep), and is stopped by
PID group. ``${secrets.NAME}`` in ``env`` values is resolved here from the secrets mapping.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from agentcorp.errors import SandboxError
from agentcorp.sandbox._proc import (
    clean_env,
    register_cleanup,
    spawn,
    stop_process,
    unregister_cleanup,
)
from agentcorp.sandbox.secrets import resolve_secrets

__all__ = ["Service", "ServiceSpec", "running_service", "start_service"]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One background process: its command, where it runs, and the URL that says it is up."""

    name: str
    command: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    ready_timeout: float = 20.0
    package: str | None = None


class Service:
    """A started service; ``stop()`` (or leaving the ``with`` block) stops its process group."""

    def __init__(self, spec: ServiceSpec, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.spec = spec
        self.proc = proc
        self._log = log
        register_cleanup(id(self), self.stop)

    @property
    def pid(self) -> int:
        """The service's PID (also its process group id)."""
        return self.proc.pid

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines the service wrote (stdout and stderr)."""
        with contextlib.suppress(ValueError, OSError):
            self._log.seek(0)
            text = self._log.read().decode(errors="replace")
            return "\n".join(text.strip().splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Stop the service and everything it forked. Safe to call twice."""
        unregister_cleanup(id(self))
        stop_process(self.proc, grace=2.0)
        with contextlib.suppress(Exception):
            self._log.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_service(
    spec: ServiceSpec, secrets: Mapping[str, str] | None = None, home: Path | None = None
) -> Service:
    """Start ``spec`` and return once ``ready_url`` answers (any HTTP status below 500).

    With ``home``, a leading ``~`` in command arguments and env values means that directory
    (the sandbox's HOME), and the service's ``HOME`` is set to it.
    """
    if not spec.command:
        raise SandboxError(f"service {spec.name!r}: empty command")
    env = clean_env()  # declared, never our own process's variables
    if home is not None:
        home = home.absolute()  # the service runs in its own working folder
        env["HOME"] = str(home)
    for key, value in spec.env.items():
        value = resolve_secrets(str(value), secrets or {}, f"service {spec.name!r} env {key}")
        env[key] = _expand_home(value, home)
    command = [_expand_home(str(arg), home) for arg in spec.command]
    if spec.ready_url is not None:
        _refuse_if_taken(spec.name, spec.ready_url)
    log = tempfile.TemporaryFile()  # noqa: SIM115  (owned and closed by the Service)
    prog = Path(spec.command[0]).name
    try:
        proc = spawn(
            command,
            package=spec.package or prog,
            env=env,
            cwd=spec.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except BaseException:
        log.close()
        raise
    service = Service(spec, proc, log)
    if spec.ready_url is None:
        return service
    try:
        _wait_ready(service)
    except BaseException:
        service.stop()
        raise
    return service


def _refuse_if_taken(name: str, url: str, grace: float = 5.0) -> None:
    """Something that answers at ``url`` before we start is not our service.

    Without this, readiness would be taken from a stranger on the same port (another run's
    back office, say) while ours dies on "address in use", and the task would talk to the
    wrong server: a silent wrong outcome. A stranger still going away (the service of a
    worker that was just killed, dying with it) is given ``grace`` seconds to free the port.
    """
    deadline = time.monotonic() + grace
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            try:
                client.get(url)
            except httpx.TransportError:
                return
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"service {name!r}: something else already answers at {url} (its port is "
                    "in use by another process); stop it or give the service another port"
                )
            time.sleep(0.1)


def _wait_ready(service: Service) -> None:
    spec = service.spec
    assert spec.ready_url is not None
    deadline = time.monotonic() + spec.ready_timeout
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            code = service.proc.poll()
            if code is not None:
                tail = service.log_tail(1) or "no output"
                raise SandboxError(f"service {spec.name!r} exited with code {code}: {tail}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(spec.ready_url).status_code < 500 and service.proc.poll() is None:
                    return
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"service {spec.name!r} not ready at {spec.ready_url} "
                    f"after {spec.ready_timeout:.0f}s"
                )
            time.sleep(0.02)


def _expand_home(arg: str, home: Path | None) -> str:
    if home is None:
        return arg
    if arg == "~":
        return str(home)
    if arg.startswith("~/"):
        return str(home / arg[2:])
    return arg


@contextlib.contextmanager
def running_service(
    spec: ServiceSpec, secrets: Mapping[str, str] | None = None, home: Path | None = None
) -> Iterator[Service]:
    """Context manager form of ``start_service``."""
    service = start_service(spec, secrets, home)
    try:
        yield service
    finally:
        service.stop()
