"""The model client: one OpenAI-compatible adapter, providers as values, one retry policy.

- ``Provider`` values (``XAI`` default, ``OPENAI``, ``custom(base_url)``) say where to send
  requests; ``OpenAIClient`` sends them through the ``openai`` SDK with the SDK's own retries
  off and a single tenacity policy (``RetryPolicy``) on top.
- ``PriceTable`` and ``UsageMeter`` do token and USD accounting per call, task and company.
- Request bodies are hashed in one place, ``agentcorp.record.canonical`` (what recordings use).
- ``structured`` negotiates JSON output (json_schema → json_object → prompt) per endpoint and
  model; ``capabilities.check_vision`` refuses a text-only actor model before a run.

``ALLOW_REAL_REQUESTS`` is the test tripwire: when false (the test suite sets it so), any
request to a host that is not loopback raises ``RealRequestBlocked`` before any network I/O.
It is read at every call, so set it on this module: ``agentcorp.llm.ALLOW_REAL_REQUESTS``.
"""

from __future__ import annotations

ALLOW_REAL_REQUESTS: bool = True

# The submodules read ALLOW_REAL_REQUESTS from this module at call time, so it is defined first.
from agentcorp.llm.capabilities import (  # noqa: E402
    VisionUnsupported,
    VisionVerdict,
    check_vision,
)
from agentcorp.llm.client import (  # noqa: E402
    DEFAULT_TIMEOUT,
    TIMEOUT_ENV,
    OnCall,
    OpenAIClient,
    is_loopback,
    redact_key,
    resolve_timeout,
)
from agentcorp.llm.messages import (  # noqa: E402
    count_images,
    image_part,
    text_part,
    user_message,
)
from agentcorp.llm.pricing import (  # noqa: E402
    DEFAULT_PRICES,
    BudgetCheck,
    Price,
    PriceTable,
    UsageMeter,
    budget_check,
)
from agentcorp.llm.providers import OPENAI, XAI, Provider, custom, provider_named  # noqa: E402
from agentcorp.llm.retry import RequestRejected, RetryPolicy  # noqa: E402
from agentcorp.llm.structured import OutputModes  # noqa: E402

__all__ = [
    "ALLOW_REAL_REQUESTS",
    "DEFAULT_PRICES",
    "DEFAULT_TIMEOUT",
    "OPENAI",
    "TIMEOUT_ENV",
    "XAI",
    "BudgetCheck",
    "OnCall",
    "OpenAIClient",
    "OutputModes",
    "Price",
    "PriceTable",
    "Provider",
    "RequestRejected",
    "RetryPolicy",
    "UsageMeter",
    "VisionUnsupported",
    "VisionVerdict",
    "budget_check",
    "check_vision",
    "count_images",
    "custom",
    "image_part",
    "is_loopback",
    "provider_named",
    "redact_key",
    "resolve_timeout",
    "text_part",
    "user_message",
]
