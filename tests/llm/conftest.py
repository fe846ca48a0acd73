from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentcorp.llm import OpenAIClient, RetryPolicy, custom
from agentcorp.testing.fake_openai import FakeOpenAIServer

FAST = RetryPolicy(max_attempts=6, initial_wait=0.001, max_wait=0.005)
_CLIENTS: list[OpenAIClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


class FakeClock:
    """A clock that only moves when the retry policy sleeps: deadline tests without timing."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeOpenAIServer]]:
    servers: list[FakeOpenAIServer] = []

    def start(script: Any, **kw: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(script, **kw).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def client_for(srv: FakeOpenAIServer, **kw: Any) -> OpenAIClient:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("api_key", "sk-test-SECRET-0123456789")
    client = OpenAIClient(custom(srv.base_url, planner_model="grok-4"), **kw)
    _CLIENTS.append(client)
    return client
