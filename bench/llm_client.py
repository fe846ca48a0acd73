"""Model-client overhead and retry amplification, against the fake OpenAI server on loopback.

Prints JSON: median per-call latency of ``OpenAIClient`` vs the bare ``openai`` SDK (the baseline,
measured in the same run), and the number of HTTP attempts a 5xx storm costs with our single
policy vs the common anti-pattern of tenacity stacked on the SDK's own retries.

    python bench/llm_client.py [--calls 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import openai
import tenacity

from agentcorp.llm import OpenAIClient, RetryPolicy, custom
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import ChatRequest

MESSAGES = [{"role": "user", "content": "hello"}]


def _median_ms(fn: object, n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()

    with FakeOpenAIServer([{"content": "ok", "times": "forever"}]) as srv:
        sdk = openai.OpenAI(api_key="k", base_url=srv.base_url, max_retries=0)
        ours = OpenAIClient(custom(srv.base_url), api_key="k")
        req = ChatRequest(model="fake", messages=MESSAGES)
        for _ in range(10):  # warm both connection pools
            sdk.chat.completions.create(model="fake", messages=MESSAGES)  # type: ignore[arg-type]
            ours.complete(req)
        base = _median_ms(
            lambda: sdk.chat.completions.create(model="fake", messages=MESSAGES), args.calls
        )
        mine = _median_ms(lambda: ours.complete(req), args.calls)

    storm = [{"fault": "server_error", "times": "forever"}]
    with FakeOpenAIServer(storm) as srv:
        policy = RetryPolicy(max_attempts=6, initial_wait=0.0, max_wait=0.0)
        client = OpenAIClient(custom(srv.base_url), api_key="k", retry=policy)
        with contextlib.suppress(Exception):
            client.complete(ChatRequest(model="fake", messages=MESSAGES))
        ours_attempts = len(srv.chat_requests)
    with FakeOpenAIServer(storm) as srv:
        stacked = openai.OpenAI(api_key="k", base_url=srv.base_url)  # SDK default retries on
        stacked = stacked.with_options(timeout=5)
        with contextlib.suppress(Exception):
            for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(6), reraise=True):
                with attempt:
                    stacked.with_options(max_retries=2).chat.completions.create(
                        model="fake",
                        messages=MESSAGES,  # type: ignore[arg-type]
                    )
        stacked_attempts = len(srv.chat_requests)

    print(
        json.dumps(
            {
                "calls": args.calls,
                "median_ms_sdk_baseline": round(base, 3),
                "median_ms_openai_client": round(mine, 3),
                "overhead_ratio": round(mine / base, 3),
                "storm_attempts_ours": ours_attempts,
                "storm_attempts_tenacity_on_sdk_retries": stacked_attempts,
                "amplification_avoided": round(stacked_attempts / ours_attempts, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
