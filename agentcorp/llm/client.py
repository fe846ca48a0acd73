"""``OpenAIClient``: the one OpenAI-compatible ``ChatModel`` adapter, over the ``openai`` SDK.

Every vendor exception is translated here, at the boundary: quota/credits → ``QuotaExhausted``
(never retried), 401/403 → ``LLMUnavailable`` naming the key variable, unreachable after
retries → ``LLMUnavailable``, anything else exhausted or malformed → ``LLMError``. Messages are
one line and never contain the API key.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import openai

from agentcorp.errors import (
    BudgetExceeded,
    LLMError,
    LLMUnavailable,
    QuotaExhausted,
    RealRequestBlocked,
)
from agentcorp.llm.messages import count_images
from agentcorp.llm.pricing import BudgetCheck, PriceTable, UsageMeter
from agentcorp.llm.providers import XAI, Provider
from agentcorp.llm.retry import Retryable, RetryPolicy, is_retry_status, retry_after_seconds
from agentcorp.types import ChatModel, ChatRequest, ChatResponse, ToolCall, Usage

__all__ = ["OnCall", "OpenAIClient", "is_loopback"]

#: Recorder hook: the request, the exact JSON body sent (no headers, no key), the response.
OnCall = Callable[[ChatRequest, dict[str, Any], ChatResponse], None]

# Substrings (lower-cased) that mark a 429/402/403 as "no credits": retrying cannot help.
_QUOTA_MARKERS = (
    "insufficient_quota",
    "exceeded your current quota",
    "used all available credits",
    "monthly spending limit",
    "spending limit",
    "spending-limit",
    "run out of credits",
    "out of credits",
    "credits exhausted",
    "billing",
)
PURPOSE_HEADER = "X-Agentcorp-Purpose"
# A placeholder for keyless local servers: the SDK refuses an empty key, the server ignores it.
_NO_KEY = "no-key"


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _real_requests_allowed() -> bool:
    # Read at call time from the package so tests can flip it on ``agentcorp.llm``.
    return bool(getattr(sys.modules["agentcorp.llm"], "ALLOW_REAL_REQUESTS", False))


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_message(body: object) -> str:
    """The human message in an error body, whatever shape the vendor uses."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            msg = err.get("message") or err.get("code") or err.get("type")
            return str(msg) if msg else json.dumps(err)[:200]
        if isinstance(err, str):
            return err
        return json.dumps(body)[:200]
    return "" if body is None else str(body)


class _Pool:
    """Owns the SDK client (and its sockets); shared by a client and its ``bind`` views.

    Closing on finalisation means a client dropped without ``close()`` releases its
    connections instead of leaving sockets for the garbage collector to warn about.
    """

    def __init__(self, sdk: openai.OpenAI) -> None:
        self.sdk = sdk

    def close(self) -> None:
        self.sdk.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.sdk.close()


class OpenAIClient(ChatModel):
    """Chat completions against any OpenAI-compatible endpoint, with one retry policy.

    ``bind(task=, company=, deadline=, budget_check=)`` returns a view that shares the HTTP
    connection pool, meter, prices and hook but labels usage and bounds retries differently.
    ``deadline`` is a ``retry.clock()`` (``time.monotonic``) time: no attempt or wait goes past
    it. ``budget_check(meter)`` runs before every request and may raise ``BudgetExceeded``.
    ``on_call`` runs after every successful call; exceptions it raises propagate.
    """

    def __init__(
        self,
        provider: Provider = XAI,
        *,
        api_key: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        prices: PriceTable | None = None,
        meter: UsageMeter | None = None,
        on_call: OnCall | None = None,
        budget_check: BudgetCheck | None = None,
        deadline: float | None = None,
        task: str | None = None,
        company: str | None = None,
    ) -> None:
        self.provider = provider
        key = api_key.strip() if api_key is not None else provider.api_key(env)
        if not key and provider.key_required:
            provider.api_key({})  # raises LLMUnavailable naming the variable to set
        self._key = key
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self.prices = prices or PriceTable()
        self.meter = meter or UsageMeter()
        self.on_call = on_call
        self.budget_check = budget_check
        self.deadline = deadline
        self.task = task
        self.company = company
        # A local server must never be reached through an HTTP(S)_PROXY from the environment.
        http_client = (
            openai.DefaultHttpxClient(trust_env=False) if is_loopback(provider.base_url) else None
        )
        self._pool = _Pool(
            openai.OpenAI(
                api_key=key or _NO_KEY,
                base_url=provider.base_url,
                max_retries=0,  # the only retries are ours; stacking both multiplies attempts
                timeout=timeout,
                default_headers=dict(provider.headers) or None,
                http_client=http_client,
            )
        )
        self._sdk = self._pool.sdk

    def __repr__(self) -> str:
        return f"OpenAIClient(provider={self.provider.name!r}, base_url={self.provider.base_url!r})"

    def bind(
        self,
        *,
        task: str | None = None,
        company: str | None = None,
        deadline: float | None = None,
        budget_check: BudgetCheck | None = None,
    ) -> OpenAIClient:
        """A view of this client with other labels, deadline or budget check (None keeps)."""
        view = copy.copy(self)
        if task is not None:
            view.task = task
        if company is not None:
            view.company = company
        if deadline is not None:
            view.deadline = deadline
        if budget_check is not None:
            view.budget_check = budget_check
        return view

    def close(self) -> None:
        """Close the connection pool (shared with ``bind`` views)."""
        self._pool.close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the call ------------------------------------------------------------------------

    @staticmethod
    def build_body(request: ChatRequest) -> dict[str, Any]:
        """The exact JSON body sent for ``request`` (None fields left out)."""
        body: dict[str, Any] = {"model": request.model, "messages": request.messages}
        optional = {
            "tools": request.tools,
            "tool_choice": request.tool_choice,
            "response_format": request.response_format,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request (retrying per policy), count usage, call the hook, return.

        ``ChatResponse.latency_ms`` covers the whole call, retries and waits included.
        """
        self._check_tripwire()
        if not request.model:
            raise LLMError(
                f"{self._where()}: no model name given (set --actor-model/--planner-model)"
            )
        body = self.build_body(request)
        if self.budget_check is not None:
            self.budget_check(self.meter)
        clock = self.retry.clock
        started = clock()
        if self.deadline is not None and started >= self.deadline:
            raise BudgetExceeded("wall_clock: no time left for a model call")

        attempts = 0
        try:
            for attempt in self.retry.retrying(self.deadline):
                with attempt:
                    attempts += 1
                    raw = self._send(body, request.purpose)
        except Retryable as exc:
            self._exhausted(exc, attempts, request.model)
        latency_ms = (clock() - started) * 1000.0

        response = self._parse(raw, request, latency_ms)
        self.meter.add(
            response.usage,
            model=response.model or request.model,
            task=self.task,
            company=self.company,
            priced=self.prices.price(response.model or request.model) is not None,
        )
        if self.on_call is not None:
            self.on_call(request, body, response)
        return response

    def list_models(self) -> list[str]:
        """``GET /models`` (one attempt, no retries): a cheap reachability and key check."""
        self._check_tripwire()
        try:
            page = self._sdk.models.list(timeout=self._timeout)
            return [m.id for m in page.data]
        except openai.APIStatusError as exc:
            self._raise_status(exc, model="")
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(
                f"cannot reach {self.provider.base_url}: {self._cause(exc)}"
            ) from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"{self._where()}: {self._redact(_one_line(str(exc)))}") from exc

    # --- internals -----------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.provider.name} at {self.provider.base_url}"

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _check_tripwire(self) -> None:
        url = self.provider.base_url
        if not _real_requests_allowed() and not is_loopback(url):
            host = urlsplit(url).hostname or url
            raise RealRequestBlocked(
                f"real model request to {host} blocked: agentcorp.llm.ALLOW_REAL_REQUESTS is "
                "False (tests must use the fake OpenAI server on 127.0.0.1)"
            )

    def _attempt_timeout(self) -> float:
        if self.deadline is None:
            return self._timeout
        left = self.deadline - self.retry.clock()
        return max(0.001, min(self._timeout, left))

    def _cause(self, exc: BaseException) -> str:
        cause = exc.__cause__ or exc.__context__ or exc
        return self._redact(_one_line(f"{type(cause).__name__}: {cause}", 160))

    def _send(self, body: dict[str, Any], purpose: str) -> Any:
        """One HTTP attempt; raises ``Retryable`` or a final ``AgentcorpError``."""
        create: Any = self._sdk.chat.completions.with_raw_response.create
        # The purpose header lets a fake server (or a proxy's logs) tell planner from actor;
        # vendors ignore unknown headers.
        headers = {PURPOSE_HEADER: purpose}
        try:
            return create(**body, timeout=self._attempt_timeout(), extra_headers=headers)
        except openai.APITimeoutError as exc:
            raise Retryable("timeout", "request timed out") from exc
        except openai.APIConnectionError as exc:
            raise Retryable("connection", self._cause(exc)) from exc
        except openai.APIStatusError as exc:
            self._raise_status(exc, model=str(body.get("model", "")))
        except openai.OpenAIError as exc:
            raise LLMError(f"{self._where()}: {self._redact(_one_line(str(exc)))}") from exc

    def _raise_status(self, exc: openai.APIStatusError, *, model: str) -> NoReturn:
        status = exc.status_code
        message = self._redact(_one_line(_error_message(exc.body)))
        lowered = json.dumps(exc.body).lower() if exc.body is not None else ""
        lowered += " " + message.lower()
        env = self.provider.api_key_env
        if status in (402, 403, 429) and any(m in lowered for m in _QUOTA_MARKERS):
            raise QuotaExhausted(
                f"{self._where()}: out of credits or quota (HTTP {status}: {message}); add "
                "credits or raise the spending limit, retrying cannot help"
            ) from exc
        if status == 401:
            raise LLMUnavailable(
                f"{self._where()}: bad or missing API key (set {env}) (HTTP 401)"
            ) from exc
        if status == 403:
            raise LLMUnavailable(
                f"{self._where()}: bad or missing API key (set {env}), or no access to model "
                f"{model!r} (HTTP 403: {message})"
            ) from exc
        if status == 404:
            raise LLMUnavailable(
                f"{self._where()}: HTTP 404 for model {model!r} ({message}); check the base URL "
                "and the model name"
            ) from exc
        if is_retry_status(status):
            retry_after = retry_after_seconds(exc.response.headers)
            raise Retryable(
                "status", f"HTTP {status}: {message}", status=status, retry_after=retry_after
            ) from exc
        raise LLMError(f"{self._where()}: HTTP {status} for model {model!r}: {message}") from exc

    def _exhausted(self, exc: Retryable, attempts: int, model: str) -> NoReturn:
        policy = self.retry
        if attempts >= policy.max_attempts:
            why = f"after {attempts} attempts"
        elif exc.retry_after is not None and exc.retry_after > policy.max_retry_after:
            why = (
                f"after {attempts} attempts: server asked to wait {exc.retry_after:.0f}s, "
                f"over the {policy.max_retry_after:.0f}s limit"
            )
        else:
            why = f"after {attempts} attempts: the run's wall-clock budget is used up"
        if exc.kind == "connection":
            raise LLMUnavailable(
                f"cannot reach {self.provider.base_url} {why} ({exc.detail})"
            ) from exc
        if exc.kind == "timeout":
            raise LLMError(
                f"{self._where()}: model {model!r} did not answer within {self._timeout:g}s {why}"
            ) from exc
        raise LLMError(f"{self._where()}: model {model!r} failed {why}: {exc.detail}") from exc

    def _garbage(self, what: str) -> NoReturn:
        raise LLMError(f"{self._where()}: malformed chat completion: {what}")

    def _parse(self, raw: Any, request: ChatRequest, latency_ms: float) -> ChatResponse:
        text = raw.text
        try:
            data = json.loads(text)
        except ValueError:
            ctype = raw.headers.get("content-type", "?")
            self._garbage(f"body is not JSON ({ctype}, starts {_one_line(text, 40)!r})")
        if not isinstance(data, dict):
            self._garbage(f"body is a JSON {type(data).__name__}, not an object")
        if "error" in data and not data.get("choices"):
            self._garbage(f"error in a 200 reply: {self._redact(_one_line(_error_message(data)))}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            self._garbage("no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            self._garbage("choices[0].message is missing or not an object")
        content = message.get("content")
        if isinstance(content, list):  # some servers send content parts even for text
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        elif content is not None and not isinstance(content, str):
            self._garbage(f"choices[0].message.content is a {type(content).__name__}")
        calls = self._parse_tool_calls(message.get("tool_calls"))
        finish = choice.get("finish_reason")
        usage_data = data.get("usage")
        prompt = completion = 0
        if usage_data is not None:
            if not isinstance(usage_data, dict):
                self._garbage("usage is not an object")
            prompt = self._count(usage_data, "prompt_tokens")
            completion = self._count(usage_data, "completion_tokens")
        model = data.get("model")
        model_name = model if isinstance(model, str) and model else request.model
        cost = self.prices.cost(model_name, prompt, completion)
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            images=count_images(request.messages),
            cost_usd=cost or 0.0,
        )
        rid = raw.headers.get("x-request-id") or data.get("id")
        return ChatResponse(
            content=content,
            tool_calls=calls,
            usage=usage,
            model=model_name,
            request_id=str(rid) if rid else None,
            latency_ms=latency_ms,
            finish_reason=finish if isinstance(finish, str) else None,
        )

    def _count(self, usage: dict[str, Any], name: str) -> int:
        value = usage.get(name, 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self._garbage(f"usage.{name} is {value!r}, not a non-negative integer")
        return value

    def _parse_tool_calls(self, value: Any) -> tuple[ToolCall, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self._garbage("choices[0].message.tool_calls is not a list")
        calls = []
        for i, item in enumerate(value):
            where = f"choices[0].message.tool_calls[{i}]"
            fn = item.get("function") if isinstance(item, dict) else None
            if not isinstance(fn, dict):
                self._garbage(f"{where}.function is missing or not an object")
            name = fn.get("name")
            if not isinstance(name, str) or not name:
                self._garbage(f"{where}.function.name is missing")
            args = fn.get("arguments", "")
            if isinstance(args, dict):  # some local servers send parsed arguments
                args = json.dumps(args)
            elif args is None:
                args = ""
            elif not isinstance(args, str):
                self._garbage(f"{where}.function.arguments is a {type(args).__name__}")
            call_id = item.get("id")
            calls.append(
                ToolCall(id=str(call_id) if call_id else f"call_{i}", name=name, arguments=args)
            )
        return tuple(calls)
