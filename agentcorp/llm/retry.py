"""The one retry policy: tenacity on top of an SDK whose own retries are off.

Retried: HTTP 408, 409, 429 (not quota), 5xx (unless the body says the request itself is
invalid), connection errors and malformed replies. Not retried: other 4xx, and timeouts (the
server may still be working on the request; the client decides that). Waits are full-jitter
exponential, except that a server's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP
date) is honoured as given. Retrying stops at ``max_attempts``, when the next wait would pass
the run's deadline, or when the server asks for a wait longer than ``max_retry_after``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

import tenacity

from agentcorp.errors import LLMError

__all__ = [
    "RequestRejected",
    "RetryPolicy",
    "Retryable",
    "is_retry_status",
    "retry_after_seconds",
    "says_invalid_request",
]

RETRY_STATUSES = frozenset({408, 409, 429})

# Lower-cased phrases by which servers say the *request* is wrong, whatever status they send
# it with (llama.cpp's Python server answers validation errors with HTTP 500; some proxies
# with a 200 carrying an error). Such a refusal is deterministic: retrying cannot help.
_INVALID_MARKERS = (
    "invalid_request",
    "invalid request",
    "bad request",
    "bad_request",
    "validation error",
    "validationerror",
    "unprocessable",
    "not supported",
    "unsupported",
    "is not allowed",
    "not allowed",
    "must be a",
    "must be one of",
    "field required",
    "extra fields not permitted",
    "unrecognized request argument",
    "unknown parameter",
    "invalid value",
    "invalid type",
    "invalid schema",
    "input should be",
    "exceeds the context",
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
    "requested tokens",
    # A server whose chat template cannot take the request's shape (e.g. content parts given
    # to a template that concatenates strings) fails the same way every time.
    "can only concatenate",
    'not "list"',
    "expected str",
    "must be str",
)


def says_invalid_request(lowered_body: str) -> bool:
    """Whether an error body (lower-cased text) says the request itself is invalid."""
    return any(marker in lowered_body for marker in _INVALID_MARKERS)


class RequestRejected(LLMError):
    """The server refused the request itself (a 4xx, or a 5xx/200 saying it is invalid).

    Never retried. ``status`` is the HTTP status (200 for an error inside a 200 reply) and
    ``detail`` the server's message, so a caller can try another shape of request (the
    planner falls back from ``json_schema`` this way).
    """

    def __init__(self, message: str, *, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


class Retryable(LLMError):
    """One failed attempt that the policy may retry; never escapes the client."""

    def __init__(
        self,
        kind: Literal["status", "connection", "garbage"],
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        super().__init__(detail)


def is_retry_status(status: int) -> bool:
    """Whether an HTTP status is worth another attempt."""
    return status in RETRY_STATUSES or status >= 500


def retry_after_seconds(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """The wait a server asked for, in seconds; None when absent or unreadable.

    ``retry-after-ms`` first, else ``Retry-After`` as seconds or as an HTTP date.
    ``headers`` should be case-insensitive (httpx headers are).
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    ra = headers.get("retry-after")
    if ra is None:
        return None
    try:
        seconds = float(ra)
    except ValueError:
        try:
            when = parsedate_to_datetime(ra)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now())
    return seconds if seconds >= 0 else None


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop when the next sleep would end at or after ``deadline`` (a ``clock()`` time)."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep >= self.deadline


class _StopOnLongWait(tenacity.stop.stop_base):
    """Stop when the server asks for a wait longer than the policy accepts."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.upcoming_sleep > self.limit


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one model call.

    ``max_attempts`` counts every HTTP attempt (the first included). ``initial_wait`` and
    ``max_wait`` shape the jittered exponential backoff; ``max_retry_after`` is the longest
    server-requested wait honoured (longer means give up now). ``sleep`` and ``clock`` are
    injectable so tests stay fast and deterministic.
    """

    max_attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 20.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if min(self.initial_wait, self.max_wait, self.max_retry_after) < 0:
            raise ValueError("RetryPolicy waits must not be negative")

    def wait_for(self, retry_state: tenacity.RetryCallState) -> float:
        """The wait before the next attempt: the server's ask, else jittered backoff."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return exc.retry_after
        backoff = tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait)
        return float(backoff(retry_state))

    def retrying(self, deadline: float | None = None) -> tenacity.Retrying:
        """A tenacity controller for one call; ``deadline`` is a ``clock()`` time or None."""
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.max_attempts)
        stop = stop | _StopOnLongWait(self.max_retry_after)
        if deadline is not None:
            stop = stop | _StopAtDeadline(deadline, self.clock)
        return tenacity.Retrying(
            stop=stop,
            wait=self.wait_for,
            retry=tenacity.retry_if_exception_type(Retryable),
            sleep=self.sleep,
            reraise=True,
        )
