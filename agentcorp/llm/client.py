"""``OpenAIClient``: the one OpenAI-compatible ``ChatModel`` adapter, over the ``openai`` SDK.

Every vendor exception is translated here, at the boundary: quota/credits → ``QuotaExhausted``
(never retried), 401/403 → ``LLMUnavailable`` naming the key variable, a request the server
refuses as invalid (a 4xx, or a 5xx/200 whose body says the request is invalid) →
``RequestRejected`` at once (retrying a deterministic refusal cannot help), and an endpoint that
still fails after every retry (5xx, connection errors, malformed replies) or does not answer
within the timeout → ``LLMUnavailable`` (exit 3: the environment, not the task). A timeout is
never retried: the server may still be working on the request, and sending it again would
only add load. Messages are one line, say the timeout actually applied, and never contain the
API key.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import ipaddress
import itertools
import json
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import openai

from agentcorp.errors import (
    BudgetExceeded,
    ConfigError,
    LLMError,
    LLMUnavailable,
    QuotaExhausted,
    RealRequestBlocked,
)
from agentcorp.llm.messages import count_images
from agentcorp.llm.pricing import BudgetCheck, PriceTable, UsageMeter
from agentcorp.llm.providers import XAI, Provider
from agentcorp.llm.retry import (
    RequestRejected,
    Retryable,
    RetryPolicy,
    is_retry_status,
    retry_after_seconds,
    says_invalid_request,
)
from agentcorp.types import ChatModel, ChatRequest, ChatResponse, ToolCall, Usage

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "OnCall",
    "OpenAIClient",
    "RequestRejected",
    "is_loopback",
    "redact_key",
    "resolve_timeout",
]

#: Seconds one request may take when nothing else is configured.
DEFAULT_TIMEOUT = 60.0
#: The environment variable that sets the per-request timeout (``--timeout`` wins over it).
TIMEOUT_ENV = "AGENTCORP_TIMEOUT"
# Keys shorter than this are not redacted: a one-letter test key would garble every message
# ("expected" → "e***pected") while hiding nothing worth hiding.
_MIN_REDACT_LEN = 8

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


def redact_key(text: str, key: str) -> str:
    """``text`` with every whole-token occurrence of ``key`` replaced by ``***``.

    Only keys of a sensible length (8+ characters) are replaced, and only where they stand as
    a token of their own (not inside a longer word or key), so error text stays readable.
    """
    if len(key) < _MIN_REDACT_LEN or key not in text:
        return text
    pattern = rf"(?<![A-Za-z0-9_\-]){re.escape(key)}(?![A-Za-z0-9_\-])"
    return re.sub(pattern, "***", text)


def resolve_timeout(
    flag: float | str | None,
    env: Mapping[str, str] | None = None,
    configured: float | None = None,
) -> tuple[float, str]:
    """The per-request timeout and where it came from.

    ``--timeout`` wins over ``AGENTCORP_TIMEOUT``, which wins over the config file, then the
    default. Raises ``ConfigError`` (one line naming the source) on a value that is not a
    positive number of seconds.
    """
    source_env = env if env is not None else {}
    candidates: list[tuple[object, str]] = [
        (flag, "--timeout"),
        (source_env.get(TIMEOUT_ENV), TIMEOUT_ENV),
        (configured, "config timeout_s"),
    ]
    for value, where in candidates:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise ConfigError(f"{where}: expected a number of seconds > 0, got {value!r}")
        return seconds, where
    return DEFAULT_TIMEOUT, "default"


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

    Also holds what the run learns about the endpoint (``notes``: structured-output modes and
    capabilities found per model, see ``agentcorp.llm.structured``) and the counter behind
    synthesised tool-call ids. Closing on finalisation means a client dropped without
    ``close()`` releases its connections instead of leaving sockets for the garbage collector.
    """

    def __init__(self, sdk: openai.OpenAI) -> None:
        self.sdk = sdk
        self.notes: dict[str, Any] = {}
        self.call_ids = itertools.count(1)

    def close(self) -> None:
        self.sdk.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.sdk.close()


class OpenAIClient(ChatModel):
    """Chat completions against any OpenAI-compatible endpoint, with one retry policy.

    ``bind(task=, company=, deadline=, budget_check=)`` returns a view that shares the HTTP
    connection pool, meter, prices and hook but labels usage and bounds retries differently.
    A view bound to a task is one conversation: when the provider names a conversation header
    (xAI's ``x-grok-conv-id``, which routes the calls to a warm prompt cache), every call of
    that view carries the same fresh id.
    ``deadline`` is a ``retry.clock()`` (``time.monotonic``) time: no attempt or wait goes past
    it. ``budget_check(meter)`` runs before every request and may raise ``BudgetExceeded``.
    ``on_call`` runs after every successful call; exceptions it raises propagate.
    ``timeout`` bounds each HTTP request; ``timeout_source`` says where it was set (e.g.
    ``--timeout``) so messages can name it.
    """

    def __init__(
        self,
        provider: Provider = XAI,
        *,
        api_key: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        timeout_source: str = "",
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
        self.timeout_source = timeout_source
        self.retry = retry or RetryPolicy()
        self.prices = prices or PriceTable()
        self.meter = meter or UsageMeter()
        self.on_call = on_call
        self.budget_check = budget_check
        self.deadline = deadline
        self.task = task
        self.company = company
        self.conversation_id = uuid.uuid4().hex
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

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (what per-endpoint memories are keyed by)."""
        return self.provider.base_url

    @property
    def timeout(self) -> float:
        """Seconds one HTTP request may take."""
        return self._timeout

    @property
    def notes(self) -> dict[str, Any]:
        """What this run learned about the endpoint, shared by every ``bind`` view."""
        return self._pool.notes

    def bind(
        self,
        *,
        task: str | None = None,
        company: str | None = None,
        deadline: float | None = None,
        budget_check: BudgetCheck | None = None,
    ) -> OpenAIClient:
        """A view of this client with other labels, deadline or budget check (None keeps).

        A view bound to a ``task`` starts a new conversation (a new conversation id).
        """
        view = copy.copy(self)
        if task is not None:
            view.task = task
            view.conversation_id = uuid.uuid4().hex
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

    def headers_for(self, request: ChatRequest) -> dict[str, str]:
        """The extra HTTP headers of one call (never the key)."""
        # The purpose header lets a fake server (or a proxy's logs) tell planner from actor;
        # vendors ignore unknown headers.
        headers = {PURPOSE_HEADER: request.purpose}
        if self.provider.conversation_header:
            headers[self.provider.conversation_header] = self.conversation_id
        return headers

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

        headers = self.headers_for(request)
        attempts = 0
        try:
            for attempt in self.retry.retrying(self.deadline):
                with attempt:
                    attempts += 1
                    raw = self._send(body, headers)
                    response = self._parse(raw, request)
        except Retryable as exc:
            self._exhausted(exc, attempts, request.model)
        response = dataclasses.replace(response, latency_ms=(clock() - started) * 1000.0)
        self.meter.add(
            response.usage,
            model=response.model or request.model,
            task=self.task,
            company=self.company,
            priced=response.usage.cost_known,
        )
        if self.on_call is not None:
            self.on_call(request, body, response)
        return response

    def list_models(self) -> list[str]:
        """``GET /models`` (one attempt, no retries): a cheap reachability and key check."""
        return [str(m.get("id", "")) for m in self.model_entries()]

    def model_entries(self) -> list[dict[str, Any]]:
        """``GET /models`` as the server sent each entry (one attempt, no retries).

        Entries keep every field the server gave (some list modalities or capabilities).
        """
        self._check_tripwire()
        try:
            raw = self._sdk.models.with_raw_response.list(timeout=self._timeout)
        except openai.APIStatusError as exc:
            self._raise_status(exc, model="")
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(
                f"cannot reach {self.provider.base_url}: {self._cause(exc)}"
            ) from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"{self._where()}: {self._redact(_one_line(str(exc)))}") from exc
        try:
            data = json.loads(raw.text)
        except ValueError:
            raise LLMError(f"{self._where()}: GET /models: body is not JSON") from None
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise LLMError(f"{self._where()}: GET /models: no 'data' list")
        return [e for e in entries if isinstance(e, dict)]

    # --- internals -----------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.provider.name} at {self.provider.base_url}"

    def _redact(self, text: str) -> str:
        return redact_key(text, self._key)

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

    def _timed_out(self, model: str, applied: float) -> NoReturn:
        source = f" ({self.timeout_source})" if self.timeout_source else ""
        cut = (
            f" (cut from {self._timeout:g}s to fit the run's wall-clock budget)"
            if applied < self._timeout
            else source
        )
        raise LLMUnavailable(
            f"{self._where()}: model {model!r} did not answer within {applied:g}s{cut}; not "
            f"re-sent, the server may still be working on it (raise --timeout or {TIMEOUT_ENV})"
        )

    def _send(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        """One HTTP attempt; raises ``Retryable`` or a final ``AgentcorpError``."""
        create: Any = self._sdk.chat.completions.with_raw_response.create
        applied = self._attempt_timeout()
        try:
            return create(**body, timeout=applied, extra_headers=headers)
        except openai.APITimeoutError as exc:
            if isinstance(exc.__cause__, httpx.ConnectTimeout):
                # Nothing reached the server: sending again cannot double its work.
                raise Retryable("connection", self._cause(exc)) from exc
            self._timed_out(str(body.get("model", "")), applied)
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
        if is_retry_status(status) and not (status >= 500 and says_invalid_request(lowered)):
            retry_after = retry_after_seconds(exc.response.headers)
            raise Retryable(
                "status", f"HTTP {status}: {message}", status=status, retry_after=retry_after
            ) from exc
        raise RequestRejected(
            f"{self._where()}: HTTP {status} for model {model!r}: {message} (the server "
            "refused the request; not retried)",
            status=status,
            detail=message,
        ) from exc

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
        if exc.kind == "garbage":
            raise LLMUnavailable(
                f"{self._where()}: malformed chat completion {why}: {exc.detail}"
            ) from exc
        raise LLMUnavailable(
            f"{self._where()}: model {model!r} failed {why}: {exc.detail}"
        ) from exc

    def _garbage(self, what: str) -> NoReturn:
        # A proxy or an overloaded server can answer one request with junk: retried, and an
        # endpoint that keeps doing it is an environment failure (exit 3).
        raise Retryable("garbage", what)

    def _error_in_200(self, data: dict[str, Any]) -> NoReturn:
        message = self._redact(_one_line(_error_message(data)))
        if says_invalid_request(json.dumps(data).lower()):
            raise RequestRejected(
                f"{self._where()}: the server refused the request (error in a 200 reply: "
                f"{message}); not retried",
                status=200,
                detail=message,
            )
        self._garbage(f"error in a 200 reply: {message}")

    def _parse(self, raw: Any, request: ChatRequest) -> ChatResponse:
        text = raw.text
        try:
            data = json.loads(text)
        except ValueError:
            ctype = raw.headers.get("content-type", "?")
            self._garbage(f"body is not JSON ({ctype}, starts {_one_line(text, 40)!r})")
        if not isinstance(data, dict):
            self._garbage(f"body is a JSON {type(data).__name__}, not an object")
        if "error" in data and not data.get("choices"):
            self._error_in_200(data)
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
        model = data.get("model")
        model_name = model if isinstance(model, str) and model else request.model
        usage = self._usage(data.get("usage"), model_name, count_images(request.messages))
        rid = raw.headers.get("x-request-id") or data.get("id")
        return ChatResponse(
            content=content,
            tool_calls=calls,
            usage=usage,
            model=model_name,
            request_id=str(rid) if rid else None,
            finish_reason=finish if isinstance(finish, str) else None,
        )

    def _usage(self, usage_data: Any, model: str, images: int) -> Usage:
        prompt = completion = cached = 0
        if usage_data is not None:
            if not isinstance(usage_data, dict):
                self._garbage("usage is not an object")
            prompt = self._count(usage_data, "prompt_tokens")
            completion = self._count(usage_data, "completion_tokens")
            details = usage_data.get("prompt_tokens_details")
            if isinstance(details, dict):
                cached = min(
                    self._count(details, "cached_tokens", "usage.prompt_tokens_details"), prompt
                )
        cost = self.prices.cost(model, prompt, completion, cached)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            images=images,
            cost_usd=cost or 0.0,
            cached_tokens=cached,
            unpriced_calls=0 if cost is not None else 1,
        )

    def _count(self, usage: dict[str, Any], name: str, where: str = "usage") -> int:
        value = usage.get(name, 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self._garbage(f"{where}.{name} is {value!r}, not a non-negative integer")
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
            calls.append(ToolCall(id=self._call_id(item.get("id")), name=name, arguments=args))
        return tuple(calls)

    def _call_id(self, value: Any) -> str:
        """The id as the server sent it, byte for byte; a run-unique one when it sent none.

        The reply to a tool call must carry the id the model gave it, so it is never trimmed
        or rewritten; a missing id gets one no other call of this run has, so two replies
        without ids cannot be confused.
        """
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return f"call_agentcorp_{next(self._pool.call_ids)}"
