"""``PolicyGate``: the deterministic policy check every action passes before the ``Computer``.

No model is involved and nothing here can be argued with: the checks are precompiled regular
expressions, globs and key sets built once from a ``PolicyConfig``. In order, an action is
refused when

1. any of its text fields carries a secret's literal value (the model must never have one);
2. it acts on a window or page outside ``allow_apps`` / ``allow_urls``;
3. it opens, or types, a URL outside ``allow_urls`` (or with credentials, or a placeholder);
4. it presses a forbidden key combination (baseline + ``forbid_keys``);
5. it types more than ``max_type_chars`` characters at once, or text matching
   ``forbid_text`` (also across consecutive ``type`` actions);
6. it types a ``${secrets.NAME}`` placeholder anywhere but a permitted field and domain;

and then, if its target matches a ``confirm`` rule, the approver decides.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from agentcorp.policy.approvers import Approval, Approver, DenyApprover, PendingAction
from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.policy.config import BASELINE_FORBID_KEYS, PolicyConfig
from agentcorp.policy.keys import KeyCombo, expand_pattern, parse_sequence
from agentcorp.policy.probe import SandboxProbe
from agentcorp.policy.secrets import (
    PLACEHOLDER_OPENER,
    PLACEHOLDER_RE,
    SecretVault,
    blank_regions,
)
from agentcorp.policy.urls import UrlPolicy, UrlRefused, parse_url
from agentcorp.types import Action, Box

if TYPE_CHECKING:
    from agentcorp.sandbox.base import Frame

__all__ = ["PolicyGate"]

# Actions that touch what is on screen; pointer moves, waits and done/fail touch nothing.
_INTERACTIONS = frozenset({"click", "double_click", "right_click", "drag", "scroll", "type", "key"})
_CONFIRMABLE = frozenset(
    {"click", "double_click", "right_click", "drag", "type", "key", "open_url"}
)
_TEXT_FIELDS = ("text", "url", "keys", "target", "into", "summary", "intent")
_TYPED_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)[^\s<>\"'`]+")
_TYPED_BUFFER = 256
# Keys that only leave a page: allowed even on a page outside allow_urls, so a model that
# landed there (a redirect, a blocked navigation's error page) can get back out.
_ESCAPE_KEYS = frozenset({"alt+left", "escape", "browserback"})


@dataclass(frozen=True, slots=True)
class _Refusal:
    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class _Confirm:
    rule: str
    reason: str


@dataclass(slots=True)
class _TaskState:
    typed: str = ""
    secret_boxes: list[Box] = field(default_factory=list)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)


class PolicyGate(ActionGate):
    """Enforces a ``PolicyConfig`` (and the vault's secret rules) on every action.

    Thread-safe: per-task state (recently typed text, boxes of fields holding a secret) is kept
    under a lock. Approvers are called outside the lock so one slow approval does not stall
    other tasks' actions.
    """

    def __init__(
        self,
        config: PolicyConfig,
        vault: SecretVault | None = None,
        approver: Approver | None = None,
        text_at: Callable[[int, int], str | None] | None = None,
        computer: object | None = None,
    ) -> None:
        """Build the gate; ``computer`` and ``text_at`` let it read the sandbox directly.

        With ``computer`` (the task's ``Computer``), context the loop left empty — page URL,
        focused window class/title, the focused field — is read from the backend
        (``SandboxProbe``). ``text_at(x, y)`` (or the computer's own ``text_at``) reads the
        screen text at a click point: confirmation rules match it, so a model that clicks
        "Delete" by coordinates alone is still asked. When a probe raises, the gate refuses
        (or, for confirmation rules, asks) rather than guess.
        """
        self.config = config
        self._probe = (
            SandboxProbe(computer, text_at)
            if (computer is not None or text_at is not None)
            else None
        )
        self.vault = vault
        self.approver = approver if approver is not None else DenyApprover()
        self._keys: list[tuple[str, KeyCombo]] = [
            (pattern, combo)
            for pattern in (*BASELINE_FORBID_KEYS, *config.forbid_keys)
            for combo in expand_pattern(pattern)
        ]
        self._forbid_text = [(p, re.compile(p)) for p in config.forbid_text]
        self._confirm = [(p, re.compile(p, re.IGNORECASE)) for p in config.confirm]
        self._urls = UrlPolicy(config.allow_urls)
        self._apps = [(p, _glob(p)) for p in config.allow_apps]
        self._fields: dict[str, list[re.Pattern[str]]] = {}
        self._domains: dict[str, list[tuple[bool, re.Pattern[str]]]] = {}
        if vault is not None:
            for name in vault.names:
                spec = vault.spec(name)
                assert spec is not None
                self._fields[name] = [_glob(f) for f in spec.allow_fields]
                self._domains[name] = [(":" in d, _glob(d)) for d in spec.allow_domains]
        self._state: dict[str, _TaskState] = {}
        self._lock = threading.Lock()

    # --- the ActionGate interface ---------------------------------------------------------

    def check(self, action: Action, context: GateContext) -> GateDecision:
        """Allowed, denied (with the rule and a message for the model), or the approver's say."""
        enriched = self._enrich(action, context)
        if isinstance(enriched, _Refusal):
            verdict: _Refusal | _Confirm | None = enriched
        else:
            context = enriched
            verdict = self._evaluate(action, context)
        if isinstance(verdict, _Refusal):
            return GateDecision(
                False,
                "denied",
                verdict.rule,
                None,
                f"refused by policy ({verdict.rule}): {verdict.message}",
            )
        if isinstance(verdict, _Confirm):
            pending = PendingAction(action, context, verdict.rule, verdict.reason)
            try:
                answer = self.approver.decide(pending)
            except Exception as exc:  # an approver bug must not let the action through
                answer = Approval(False, self.approver.name, f"approver failed: {exc!r}")
            if not answer.approved:
                return GateDecision(
                    False,
                    "rejected",
                    verdict.rule,
                    answer.by,
                    f"needs approval ({verdict.rule}: {verdict.reason}); {answer.reason}",
                )
            self._remember(action, context)
            return GateDecision(True, "approved", verdict.rule, answer.by, answer.reason)
        self._remember(action, context)
        return GateDecision(True, "allowed")

    def redact_frame(self, frame: Frame, task_id: str) -> Frame:
        """``frame`` with every field a secret was typed into (in this task) blanked."""
        with self._lock:
            state = self._state.get(task_id)
            boxes = list(state.secret_boxes) if state else []
        return blank_regions(frame, boxes) if boxes else frame

    def secret_regions(self, task_id: str) -> tuple[Box, ...]:
        """Boxes of fields that hold a typed secret in ``task_id``'s sandbox."""
        with self._lock:
            state = self._state.get(task_id)
            return tuple(state.secret_boxes) if state else ()

    def forget_task(self, task_id: str) -> None:
        """Drop a finished task's state (typed-text window, secret field boxes)."""
        with self._lock:
            self._state.pop(task_id, None)

    # --- the checks -----------------------------------------------------------------------

    def _enrich(self, action: Action, ctx: GateContext) -> GateContext | _Refusal:
        """Fill context the loop left empty from the sandbox itself."""
        probe = self._probe
        if probe is None:
            return ctx
        changes: dict[str, object] = {}
        if ctx.url is None:
            try:
                url = probe.url()
            except Exception:  # a page mid-navigation: leave the URL unknown
                url = None
            if url is not None:
                changes["url"] = url
        restricted = bool(self._apps) or self._urls.restricted
        if (
            restricted
            and action.kind in _INTERACTIONS
            and ctx.window_class is None
            and ctx.window_title is None
        ):
            try:
                cls, title = probe.window()
            except Exception as exc:
                return _Refusal("allow_apps", f"the focused window could not be read ({exc!r})")
            changes["window_class"], changes["window_title"] = cls, title
        if (
            action.kind == "type"
            and PLACEHOLDER_OPENER in (action.text or "")
            and ctx.field_box is None
            and ctx.field_is_password is None
        ):
            try:
                field = probe.focused_field()
            except Exception:  # unknown field: the secret rules refuse below
                field = None
            if field is not None:
                changes["field_box"], changes["field_is_password"] = field
        return replace(ctx, **changes) if changes else ctx  # type: ignore[arg-type]

    def _evaluate(self, action: Action, ctx: GateContext) -> _Refusal | _Confirm | None:
        refusal = (
            self._check_literal_secrets(action)
            or self._check_environment(action, ctx)
            or self._check_kind(action, ctx)
        )
        if refusal is not None:
            return refusal
        return self._check_confirm(action, ctx)

    def _check_literal_secrets(self, action: Action) -> _Refusal | None:
        if self.vault is None:
            return None
        for name in _TEXT_FIELDS:
            value = getattr(action, name)
            if isinstance(value, str) and self.vault.find_literal(value) is not None:
                return _Refusal(
                    "secrets:literal",
                    f"the action's {name} holds a secret's value; secrets are only ever "
                    "typed as ${secrets.NAME} placeholders",
                )
        return None

    def _check_environment(self, action: Action, ctx: GateContext) -> _Refusal | None:
        if action.kind not in _INTERACTIONS:
            return None
        if self._apps and ctx.window_class is not None and not self._app_allowed(ctx.window_class):
            return _Refusal(
                "allow_apps",
                f"the focused window ({ctx.window_class!r}) is not an allowed app",
            )
        if self._urls_restricted():
            if ctx.url is not None and not _only_escape_keys(action):
                bad = self._url_refusal(ctx.url, "the current page")
                if bad is not None:
                    return bad
            if ctx.window_title:
                for m in _TYPED_URL.finditer(ctx.window_title):
                    bad = self._url_refusal(m.group(0), "the window shows a page that")
                    if bad is not None:
                        return bad
        return None

    def _check_kind(self, action: Action, ctx: GateContext) -> _Refusal | None:
        if action.kind == "open_url":
            return self._check_open_url(action.url or "")
        if action.kind == "key":
            return self._check_keys(action.keys or "")
        if action.kind == "type":
            return self._check_type(action.text or "", ctx, action.into)
        if action.kind in ("done", "fail") and action.summary:
            # A summary lands in results, reports and logs: text that may never be typed
            # may not be reported either.
            return self._forbidden_text(action.summary, "summary")
        return None

    def _check_open_url(self, url: str) -> _Refusal | None:
        if PLACEHOLDER_OPENER in url:
            return _Refusal("secrets:url", "a secret placeholder may not be part of a URL")
        bad = self._forbidden_text(url, "URL")
        if bad is not None:
            return bad
        return self._url_refusal(url, "the URL")

    def _check_keys(self, keys: str) -> _Refusal | None:
        try:
            combos = parse_sequence(keys)
        except ValueError as exc:
            return _Refusal("forbid_keys", f"unreadable key combination ({exc})")
        for combo in combos:
            for pattern, forbidden in self._keys:
                if forbidden.covers(combo):
                    return _Refusal(
                        f"forbid_keys:{pattern}", f"the key combination {combo} is forbidden"
                    )
        return None

    def _check_type(self, text: str, ctx: GateContext, into: str | None) -> _Refusal | None:
        limit = self.config.max_type_chars
        if len(text) > limit:
            return _Refusal(
                "max_type_chars",
                f"the text is {len(text):,} characters; one type action may carry at most "
                f"{limit:,} (split it, or raise policy.max_type_chars)",
            )
        with self._lock:
            before = self._state.get(ctx.task_id, _TaskState()).typed
        bad = self._forbidden_text(text, "text", before)
        if bad is not None:
            return bad
        if self._urls_restricted():
            for m in _TYPED_URL.finditer(text):
                bad = self._url_refusal(m.group(0), "the typed URL")
                if bad is not None:
                    return bad
        if text.count(PLACEHOLDER_OPENER) != len(PLACEHOLDER_RE.findall(text)):
            return _Refusal("secrets:syntax", "malformed secret placeholder; write ${secrets.NAME}")
        for m in PLACEHOLDER_RE.finditer(text):
            bad = self._secret_target(m.group(1), ctx, into)
            if bad is not None:
                return bad
        return None

    def _secret_target(self, name: str, ctx: GateContext, into: str | None) -> _Refusal | None:
        spec = self.vault.spec(name) if self.vault is not None else None
        if spec is None:
            return _Refusal("secrets:unknown", f"no secret named {name!r} is declared")
        label = ctx.field_label
        if label is None and ctx.source == "script":
            # A scripted step's ``into`` was written by the task's author, not the model.
            label = into
        by_label = (
            label is not None
            and ctx.field_box is not None
            and any(p.fullmatch(label.strip()) for p in self._fields[name])
        )
        if not (ctx.field_is_password is True or by_label):
            where = "a password field"
            if spec.allow_fields:
                where += " or a field labelled " + " / ".join(repr(f) for f in spec.allow_fields)
            seen = f"the focused field is {label!r}" if label else "no such field is focused"
            return _Refusal(
                "secrets:field", f"secret {name!r} may only be typed into {where}; {seen}"
            )
        if self._domains[name]:
            try:
                parsed = parse_url(ctx.url) if ctx.url else None
            except UrlRefused:
                parsed = None
            host = parsed.host if parsed is not None and not parsed.opaque else None
            port = parsed.port if parsed is not None else 0
            if host is None or not any(
                rx.fullmatch(f"{host}:{port}" if with_port else host)
                for with_port, rx in self._domains[name]
            ):
                return _Refusal(
                    "secrets:domain",
                    f"secret {name!r} may only be typed on "
                    + ", ".join(spec.allow_domains)
                    + (f"; this page's host is {host!r}" if host else "; the page is unknown"),
                )
        return None

    def _check_confirm(self, action: Action, ctx: GateContext) -> _Confirm | None:
        if action.kind not in _CONFIRMABLE or not self._confirm:
            return None
        texts = [t for t in (action.target, action.into, ctx.target_text, action.url) if t]
        point = _point(action)
        if self._probe is not None and self._probe.has_text_at and point is not None:
            try:
                seen = self._probe.text_at(*point)
            except Exception as exc:  # a broken probe must not wave the click through
                return _Confirm("confirm:unreadable", f"the text at {point} is unknown ({exc!r})")
            if seen:
                texts.append(seen)
        for pattern, rx in self._confirm:
            for t in texts:
                if rx.search(t):
                    return _Confirm(f"confirm:{pattern}", f"the target {t[:80]!r} needs approval")
        return None

    # --- helpers --------------------------------------------------------------------------

    def _forbidden_text(self, text: str, what: str, before: str = "") -> _Refusal | None:
        joined = before + text
        for pattern, rx in self._forbid_text:
            for m in rx.finditer(joined):
                # Only a match that reaches into the new text counts: text already typed was
                # allowed when it was typed.
                if m.end() > len(before):
                    return _Refusal(
                        f"forbid_text:{pattern}",
                        f"the {what} matches a pattern that may never be typed",
                    )
        return None

    def _urls_restricted(self) -> bool:
        return self._urls.restricted

    def _url_refusal(self, url: str, what: str) -> _Refusal | None:
        reason = self._urls.refusal(url)
        return None if reason is None else _Refusal("allow_urls", f"{what} {reason}")

    def _app_allowed(self, window_class: str) -> bool:
        names = {window_class, *window_class.replace("\x00", ".").split(".")} - {""}
        return any(rx.fullmatch(n) for _, rx in self._apps for n in names)

    def _remember(self, action: Action, ctx: GateContext) -> None:
        if action.kind != "type" or not action.text:
            return
        with self._lock:
            state = self._state.setdefault(ctx.task_id, _TaskState())
            state.typed = (state.typed + action.text)[-_TYPED_BUFFER:]
            box = ctx.field_box
            if (
                box is not None
                and box not in state.secret_boxes
                and PLACEHOLDER_RE.search(action.text)
            ):
                state.secret_boxes.append(box)


def _point(action: Action) -> tuple[int, int] | None:
    if action.kind in ("click", "double_click", "right_click") and action.x is not None:
        return (action.x, action.y) if action.y is not None else None
    if action.kind == "drag" and action.path:
        return action.path[0]
    return None


def _only_escape_keys(action: Action) -> bool:
    if action.kind != "key" or not action.keys:
        return False
    try:
        return all(str(c) in _ESCAPE_KEYS for c in parse_sequence(action.keys))
    except ValueError:
        return False
