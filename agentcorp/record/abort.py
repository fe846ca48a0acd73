"""Ctrl-C and SIGTERM during a run: stop soon, keep what ran, exit 130 / 143.

``abort_on_signals()`` wraps a run. The first SIGINT or SIGTERM

1. tells every running action to stop at its next checkpoint (``abort_actions``), so a long
   ``type`` in any thread ends part-way;
2. raises ``RunAborted`` in the main thread, which unwinds the run: the run path catches it,
   finishes each open session with outcome ``aborted`` (``finish_open_sessions``), prints the
   summary of what ran and "aborted", and exits 128 + the signal (130 Ctrl-C, 143 SIGTERM);
3. arms a watchdog: if the run has not exited ``grace_s`` seconds later (a call stuck in a
   C library, a thread that never checks), it finishes the open sessions, closes every
   sandbox and leaves with the same exit code. A second signal does that at once.

So SIGTERM always ends the run within ``grace_s`` (default 8 s, under Docker's 10 s).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from agentcorp.errors import RunAborted
from agentcorp.record.recorder import finish_open_sessions
from agentcorp.sandbox._proc import close_all_sandboxes
from agentcorp.sandbox.base import abort_actions, clear_abort

__all__ = ["abort_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _hard_exit(signum: int, why: str) -> None:
    with contextlib.suppress(Exception):
        finish_open_sessions(why)
    with contextlib.suppress(Exception):
        close_all_sandboxes()
    with contextlib.suppress(Exception):
        print(f"agentcorp: aborted ({why})", file=sys.stderr, flush=True)
    os._exit(128 + signum)


@contextlib.contextmanager
def abort_on_signals(grace_s: float = 8.0) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ``RunAborted`` for the block (main thread only; else no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []
    timers: list[threading.Timer] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if fired:
            _hard_exit(signum, f"{name} again")
        fired.append(signum)
        abort_actions(f"the run is aborting ({name})")
        why = f"{name}; stopped after {grace_s:g}s"
        timer = threading.Timer(grace_s, _hard_exit, (signum, why))
        timer.daemon = True
        timers.append(timer)
        timer.start()
        raise RunAborted(signum, name)

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield
    finally:
        # The run path finalised what ran inside the block: the watchdog is not needed.
        for t in timers:
            t.cancel()
        for s, h in previous.items():
            signal.signal(s, h)
        clear_abort()
