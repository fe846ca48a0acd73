"""Every exception agentcorp raises on purpose, under one root.

Failures the *model* should see (a click off-screen, a denied action, a target not found) are
data returned to it, never exceptions. What is raised here are program and infrastructure
failures. Vendor exceptions (openai, playwright, ray, Xlib) are translated at the backend
boundary with ``raise OurError(...) from exc``. Exceptions never log in their constructors.

The tree, with the CLI exit code each maps to::

    AgentcorpError                      1  (generic failure)
    ├── SpecError                       2  invalid company/task YAML; carries ``.issues``
    ├── ConfigError                     2  bad CLI flag, config file or argument
    ├── RecordingError                  2  unreadable / tampered / unknown-version session
    ├── SetupError                      3  the environment cannot run the job
    │   ├── SandboxUnavailable          3  Xvfb / Chromium / an app is not installed
    │   └── LLMUnavailable              3  endpoint unreachable, bad key, quota exhausted
    │       ├── QuotaExhausted          3  429 that means "no credits", never retried
    │       └── RealRequestBlocked      3  the test tripwire refused a real endpoint
    ├── SandboxError                    1  a backend failed while running
    │   ├── PolicyViolation             1  an action refused by policy outside a model turn
    │   ├── UnsupportedAction           1  this sandbox cannot perform that kind of action
    │   └── ActionInterrupted           1  a long action stopped part-way (budget, abort)
    ├── LLMError                        1  the model endpoint failed after retries
    ├── BudgetExceeded                  1  a hard budget (steps/tokens/usd/wall clock) ran out
    └── FleetError                      1  ledger / scheduler / cluster failure
        └── FencedOut                   1  a stale worker tried to write a result

    KeyboardInterrupt (not an AgentcorpError: no ``except AgentcorpError`` may swallow it)
    └── RunAborted                 130/143  Ctrl-C or SIGTERM: 128 + the signal number
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ActionInterrupted",
    "AgentcorpError",
    "BudgetExceeded",
    "ConfigError",
    "FencedOut",
    "FleetError",
    "LLMError",
    "LLMUnavailable",
    "PolicyViolation",
    "QuotaExhausted",
    "RealRequestBlocked",
    "RecordingError",
    "RunAborted",
    "SandboxError",
    "SandboxUnavailable",
    "SetupError",
    "SpecError",
    "SpecIssue",
    "UnsupportedAction",
]


class AgentcorpError(Exception):
    """Root of every error agentcorp raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True, slots=True, order=True)
class SpecIssue:
    """One problem in a spec file: where it is (1-based line and column) and what is wrong."""

    file: str
    line: int
    col: int
    path: str
    message: str
    #: A warning does not make the spec invalid: it names something that will not work as
    #: written (a target no source can match); ``validate`` prints it and still exits 0.
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        if self.warning:
            where += ": warning"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(AgentcorpError):
    """A company/task spec is invalid; ``issues`` lists every problem found in one pass.

    The spec loader raises it itself (``agentcorp.spec`` may import this leaf module), so no
    caller translates spec errors. Issues are kept in file order.
    """

    exit_code = 2

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues: list[SpecIssue] = sorted(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid spec")


class ConfigError(AgentcorpError):
    """A CLI flag, config file or argument is invalid."""

    exit_code = 2


class RecordingError(AgentcorpError):
    """A recorded session is unreadable, incomplete, tampered with or of an unknown version."""

    exit_code = 2


class SetupError(AgentcorpError):
    """The environment cannot run the job (missing program, unreachable service)."""

    exit_code = 3


class SandboxUnavailable(SetupError):
    """A sandbox part (Xvfb, Chromium, an app) is missing; the message says what to install."""


class LLMUnavailable(SetupError):
    """The model endpoint cannot be used: unreachable, bad key, or no credits."""


class QuotaExhausted(LLMUnavailable):
    """The provider says the account is out of credits or quota; retrying cannot help."""


class RealRequestBlocked(LLMUnavailable):
    """``agentcorp.llm.ALLOW_REAL_REQUESTS`` is false and a non-loopback endpoint was called."""


class SandboxError(AgentcorpError):
    """A sandbox backend failed while running."""


class PolicyViolation(SandboxError):
    """An action was refused by policy where no model is there to be told."""


class UnsupportedAction(SandboxError):
    """The sandbox cannot perform this kind of action (e.g. ``open_url`` on a desktop)."""


class ActionInterrupted(SandboxError):
    """A long action (typing, waiting) stopped part-way: its budget ran out or the run aborts.

    What it did so far stays done; the step reports failure, never success.
    """


class RunAborted(KeyboardInterrupt):
    """The run was stopped by a signal: Ctrl-C (SIGINT, exit 130) or SIGTERM (exit 143).

    A ``KeyboardInterrupt`` on purpose, so ``except AgentcorpError`` / ``except Exception``
    blocks on the way up never swallow it; the run path finalises what ran and exits.
    """

    def __init__(self, signum: int, name: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"aborted by {name or f'signal {signum}'}")


class LLMError(AgentcorpError):
    """The model endpoint failed after the retry policy gave up."""


class BudgetExceeded(AgentcorpError):
    """A hard budget ran out; ``reason`` names which one."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class FleetError(AgentcorpError):
    """The ledger, scheduler or cluster failed."""


class FencedOut(FleetError):
    """A worker whose lease was superseded tried to write a result."""
