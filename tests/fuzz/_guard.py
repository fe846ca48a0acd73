"""Shared bounds for the fuzz tests: time per example, memory of the process, one-line errors."""

from __future__ import annotations

import contextlib
import resource
import signal
from collections.abc import Iterator
from types import FrameType

from hypothesis import HealthCheck, settings

# Bounded: the whole fuzz suite stays within a few minutes on 2 busy cores.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW_FUZZ = settings(FUZZ, max_examples=25)

PER_EXAMPLE_S = 20
MAX_RSS_KB = 2 * 1024 * 1024  # 2 GB: a read that is not bounded blows through this


class ExampleTooSlow(Exception):
    pass


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """Fail the example if it takes longer than ``PER_EXAMPLE_S`` or the process grew huge."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise ExampleTooSlow(f"example took longer than {PER_EXAMPLE_S}s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(PER_EXAMPLE_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss < MAX_RSS_KB, f"peak memory {rss // 1024} MB"


def check_cli_error(code: int, err: str, *, one_line: bool = True) -> None:
    """The README's exit codes; no traceback, no internal error; one line when it failed."""
    assert code in (0, 1, 2, 3), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if one_line and code in (2, 3):
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
