from __future__ import annotations

from email.utils import formatdate

import pytest

from agentcorp.llm.retry import RetryPolicy, retry_after_seconds


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], want: float | None) -> None:
    assert retry_after_seconds(headers) == want


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    headers = {"retry-after": formatdate(now + 12, usegmt=True)}
    assert retry_after_seconds(headers, now=lambda: now) == pytest.approx(12, abs=1)
    past = {"retry-after": formatdate(now - 100, usegmt=True)}
    assert retry_after_seconds(past, now=lambda: now) == 0.0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(initial_wait=-1)
