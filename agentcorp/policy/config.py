"""The policy as plain frozen values, independent of the spec package.

``PolicyConfig`` mirrors the spec's ``policy:`` section; ``SecretSpec`` mirrors one ``secrets:``
entry. ``from_spec`` reads the spec's pydantic objects *by attribute name* so this module never
imports ``agentcorp.spec`` (the wiring passes the object in). Everything is validated here, once,
so the gate itself never meets a bad regex or a malformed key combo at run time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentcorp.errors import ConfigError
from agentcorp.policy.keys import expand_pattern

__all__ = [
    "BASELINE_FORBID_KEYS",
    "ApproverConfig",
    "PolicyConfig",
    "SecretSpec",
    "secrets_from_spec",
]

ApproverKind = Literal["deny", "allow", "prompt", "webhook", "console"]

# Always forbidden, whatever the spec says: these leave the sandboxed session (VT switch,
# killing X, the login/ctrl-alt-del handler) or open a host terminal.
BASELINE_FORBID_KEYS: tuple[str, ...] = (
    "ctrl+alt+Delete",
    "ctrl+alt+BackSpace",
    "ctrl+alt+F1..F12",
    "ctrl+alt+t",
    "super+t",
    "super+Return",
    "ctrl+alt+Escape",
    "alt+sysrq",
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class ApproverConfig:
    """Who answers confirmation rules.

    ``deny`` (the headless default), ``allow`` (and audit), ``prompt`` (a terminal) or
    ``webhook`` (POST to ``url``, ``timeout`` seconds) or ``console`` (the run's operator
    console; a denial when the run has none).
    """

    kind: ApproverKind = "deny"
    url: str | None = None
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in ("deny", "allow", "prompt", "webhook", "console"):
            raise ConfigError(
                "policy.approver.kind: must be deny, allow, prompt, webhook or console, "
                f"got {self.kind!r}"
            )
        if self.kind == "webhook" and not self.url:
            raise ConfigError("policy.approver.url: required when kind is webhook")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ConfigError(f"policy.approver.url: must be an http(s) URL, got {self.url!r}")
        if not (0 < self.timeout <= 86400):
            raise ConfigError(
                f"policy.approver.timeout: must be in (0, 86400] seconds, got {self.timeout!r}"
            )


@dataclass(frozen=True, slots=True)
class SecretSpec:
    """One declared secret: where its value comes from and where it may be typed.

    ``allow_domains`` are ``host[:port]`` globs (``*.acme.test``, ``localhost:8000``); empty
    means any page. ``allow_fields`` are field-label globs (case-insensitive); a password field
    (as the sandbox detects it) always counts as permitted, and with no ``allow_fields`` it is
    the *only* permitted target: a secret never goes into an ordinary text box by default.
    """

    name: str
    env: str | None = None
    allow_domains: tuple[str, ...] = ()
    allow_fields: tuple[str, ...] = ()
    #: What to do when the environment holds no value: ``error`` (refuse to run) or
    #: ``generate`` (a fresh random value for this run, for sandboxes the run provisions).
    if_missing: Literal["error", "generate"] = "error"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"secrets.{self.name}: name must match [A-Za-z_][A-Za-z0-9_]*")
        if self.if_missing not in ("error", "generate"):
            raise ConfigError(
                f"secrets.{self.name}.if_missing: must be error or generate, "
                f"got {self.if_missing!r}"
            )

    @property
    def env_var(self) -> str:
        """The environment variable holding the value (the secret's own name by default)."""
        return self.env or self.name


DEFAULT_MAX_TYPE_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The effective policy for one task (company level merged with role and sandbox overrides).

    Empty ``allow_apps`` / ``allow_urls`` mean "no restriction"; ``forbid_keys`` is always
    unioned with ``BASELINE_FORBID_KEYS``. ``forbid_text`` and ``confirm`` are regular
    expressions (searched, not anchored; add ``(?i)`` for case-insensitive matching of
    ``forbid_text``; ``confirm`` is always case-insensitive).
    """

    allow_apps: tuple[str, ...] = ()
    allow_urls: tuple[str, ...] = ()
    forbid_keys: tuple[str, ...] = ()
    forbid_text: tuple[str, ...] = ()
    confirm: tuple[str, ...] = ()
    approver: ApproverConfig = field(default_factory=ApproverConfig)
    #: The longest text one ``type`` action may carry: a model typing a megabyte is refused
    #: before a key is pressed (and a long type is interrupted by the budget anyway).
    max_type_chars: int = DEFAULT_MAX_TYPE_CHARS

    def __post_init__(self) -> None:
        if isinstance(self.max_type_chars, bool) or not (
            isinstance(self.max_type_chars, int) and self.max_type_chars >= 1
        ):
            raise ConfigError(
                f"policy.max_type_chars: must be a positive integer, got {self.max_type_chars!r}"
            )
        for i, combo in enumerate(self.forbid_keys):
            try:
                expand_pattern(combo)
            except ValueError as exc:
                raise ConfigError(f"policy.forbid_keys[{i}]: {exc}") from None
        for name in ("forbid_text", "confirm"):
            for i, pattern in enumerate(getattr(self, name)):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(
                        f"policy.{name}[{i}]: bad regular expression {pattern!r}: {exc}"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for the audit log's policy entries."""
        return {
            "allow_apps": list(self.allow_apps),
            "allow_urls": list(self.allow_urls),
            "forbid_keys": list(self.forbid_keys),
            "forbid_text": list(self.forbid_text),
            "confirm": list(self.confirm),
            "max_type_chars": self.max_type_chars,
            "approver": {
                "kind": self.approver.kind,
                "url": self.approver.url,
                "timeout": self.approver.timeout,
            },
        }

    @classmethod
    def from_spec(cls, obj: Any) -> PolicyConfig:
        """Build from the spec's policy object (or a plain mapping), reading fields by name.

        Missing fields take their defaults; ``None`` means "not set". A field of the wrong
        shape raises ``ConfigError`` naming it.
        """
        if obj is None:
            return cls()
        approver = _get(obj, "approver")
        return cls(
            allow_apps=_strings(obj, "allow_apps"),
            allow_urls=_strings(obj, "allow_urls"),
            forbid_keys=_strings(obj, "forbid_keys"),
            forbid_text=_strings(obj, "forbid_text"),
            confirm=_strings(obj, "confirm"),
            approver=ApproverConfig() if approver is None else _approver(approver),
            max_type_chars=(
                DEFAULT_MAX_TYPE_CHARS
                if _get(obj, "max_type_chars") is None
                else _get(obj, "max_type_chars")
            ),
        )


def secrets_from_spec(obj: Any) -> tuple[SecretSpec, ...]:
    """Read the spec's ``secrets:`` section.

    Accepts a mapping name → entry, or a list whose items are entries or bare names (the
    spec's short form ``secrets: [BACKOFFICE_PASSWORD]``).
    """
    if obj is None:
        return ()
    items: Iterable[tuple[str | None, Any]]
    if isinstance(obj, Mapping):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(None, v) for v in obj]
    else:
        raise ConfigError(f"secrets: must be a mapping or a list, got {type(obj).__name__}")
    out: list[SecretSpec] = []
    for i, (key, entry) in enumerate(items):
        if isinstance(entry, str):
            key, entry = entry, None
        name = key if key is not None else _get(entry, "name")
        if not isinstance(name, str):
            raise ConfigError(f"secrets[{i}].name: must be a string, got {name!r}")
        env = _get(entry, "env")
        if env is not None and not isinstance(env, str):
            raise ConfigError(f"secrets.{name}.env: must be a string, got {env!r}")
        if_missing = _get(entry, "if_missing")
        if if_missing is None:
            if_missing = "error"
        if not isinstance(if_missing, str):
            raise ConfigError(
                f"secrets.{name}.if_missing: must be error or generate, got {if_missing!r}"
            )
        out.append(
            SecretSpec(
                name=name,
                env=env,
                allow_domains=_strings(entry, "allow_domains", f"secrets.{name}."),
                allow_fields=_strings(entry, "allow_fields", f"secrets.{name}."),
                if_missing=if_missing,  # type: ignore[arg-type]  # checked in __post_init__
            )
        )
    return tuple(out)


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _strings(obj: Any, name: str, where: str = "policy.") -> tuple[str, ...]:
    value = _get(obj, name)
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}{name}: must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{where}{name}[{i}]: must be a string, got {item!r}")
    return tuple(value)


def _approver(obj: Any) -> ApproverConfig:
    kind = _get(obj, "kind") or "deny"
    url = _get(obj, "url")
    timeout = _get(obj, "timeout")
    if not isinstance(kind, str):
        raise ConfigError(f"policy.approver.kind: must be a string, got {kind!r}")
    if url is not None and not isinstance(url, str):
        url = str(url)  # pydantic's HttpUrl and friends
    if timeout is None:
        timeout = 60.0
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        # A timedelta from the spec is fine too.
        seconds = getattr(timeout, "total_seconds", None)
        if seconds is None:
            raise ConfigError(f"policy.approver.timeout: must be a number, got {timeout!r}")
        timeout = float(seconds())
    return ApproverConfig(kind=kind, url=url, timeout=float(timeout))  # type: ignore[arg-type]
