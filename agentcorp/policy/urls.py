"""The URL policy: one decision, made on parsed URLs, shared by the gate and the browser.

``UrlPolicy(allow_urls).refusal(url)`` is the single function that says whether a URL may be
visited; the policy gate calls it for ``open_url``, typed URLs and the current page, and the
browser backend calls it from its request interception and navigation hooks for every request
and navigation (link clicks, redirects, form posts, ``window.open``, ``location=``, iframes,
downloads).

Semantics (docs/safety.md, "URL policy"):

* A pattern ``scheme://host[:port][/path]`` is split into components and each is a glob
  matched against the same component of the parsed URL only: ``*`` never spans from one
  component into another, and the query and fragment are never matched by anything.
* No port in a pattern means the scheme's default port (80, 443); ``:*`` means any port.
* No path (or ``/``, ``/*``) means any path. A path glob is matched against the URL's path
  with dot segments resolved (``/app/../admin`` is ``/admin``).
* A pattern without a scheme (``localhost:8000``, ``*.acme.test``) is a host pattern for
  ``http`` and ``https``.
* Only ``http`` and ``https`` are navigable, plus ``about:blank``. Any other scheme
  (``data:``, ``blob:``, ``file:``, ``javascript:``, ``chrome:``...) needs a pattern naming
  it: ``data:image/*`` (opaque URLs are globbed whole) or ``ftp://files.acme.test/*``.
* URLs with credentials (``user@host``) are always refused; so are malformed ones.
* An empty pattern list allows every ``http``/``https`` URL (and ``about:blank``) only.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ParsedUrl", "UrlPolicy", "UrlRefused", "parse_url"]

_WEB_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_ANY_PATH = ("", "/", "/*", "*")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*:", re.IGNORECASE)
_ALWAYS_OPAQUE = frozenset({"about:blank"})
# Longer URLs are refused outright: nothing legitimate needs them and globbing them is work.
MAX_URL_CHARS = 16_384


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A URL split into the components the policy matches (opaque URLs keep ``text`` only)."""

    text: str
    scheme: str
    host: str
    port: int
    path: str
    opaque: bool


class UrlRefused(ValueError):
    """``parse_url``'s reason for refusing a URL before any pattern is consulted."""


def _resolve_dots(path: str) -> str:
    """RFC 3986 dot-segment removal (with ``%2e`` read as a dot, as browsers do)."""
    segments = re.sub("%2e", ".", path, flags=re.IGNORECASE).split("/")
    out: list[str] = []
    for seg in segments[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    trailing = segments[-1] in (".", "..") and len(segments) > 1
    return "/" + "/".join(out) + ("/" if trailing and out else "")


def parse_url(text: str) -> ParsedUrl:
    """``text`` parsed for the policy; ``UrlRefused`` when malformed or with credentials."""
    raw = text.strip()
    if len(raw) > MAX_URL_CHARS:
        raise UrlRefused(f"is longer than {MAX_URL_CHARS} characters")
    if raw.lower().startswith("www."):
        raw = "http://" + raw
    if any(ord(c) < 0x20 for c in raw):
        raise UrlRefused("contains control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is a malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME_RE.match(raw):
        raise UrlRefused("has no scheme (write https://...)")
    if not parts.netloc:
        if scheme in _WEB_SCHEMES:
            raise UrlRefused("has no host")
        return ParsedUrl(raw, scheme, "", 0, "", opaque=True)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("carries credentials (user@host)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UrlRefused("has no host")
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return ParsedUrl(raw, scheme, host, port, _resolve_dots(parts.path or "/"), opaque=False)


@dataclass(frozen=True, slots=True)
class _Pattern:
    source: str
    scheme: re.Pattern[str] | None  # None: http or https
    host: re.Pattern[str] | None
    port: re.Pattern[str] | None  # None: the scheme's default port
    path: re.Pattern[str] | None  # None: any path
    opaque: re.Pattern[str] | None  # scheme-only URLs such as about:blank, data:image/*

    def matches(self, url: ParsedUrl) -> bool:
        if url.opaque or self.opaque is not None:
            return (
                url.opaque
                and self.opaque is not None
                and self.opaque.fullmatch(url.text) is not None
            )
        if self.scheme is None:
            if url.scheme not in _WEB_SCHEMES:
                return False
        elif not self.scheme.fullmatch(url.scheme):
            return False
        assert self.host is not None
        if not self.host.fullmatch(url.host):
            return False
        if self.port is None:
            if url.port != _DEFAULT_PORTS.get(url.scheme, 0):
                return False
        elif not self.port.fullmatch(str(url.port)):
            return False
        return self.path is None or self.path.fullmatch(url.path) is not None


def _split_hostport(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):  # an IPv6 literal; the URL parser drops the brackets
        host, _, tail = hostport[1:].partition("]")
        return host, (tail[1:] or "*") if tail.startswith(":") else None
    if ":" in hostport:
        host, _, port = hostport.rpartition(":")
        return host, port or "*"
    return hostport, None


def _compile(pattern: str) -> _Pattern:
    p = pattern.strip()
    scheme: re.Pattern[str] | None = None
    after = p
    if "://" in p:
        scheme_text, _, after = p.partition("://")
        scheme = _glob(scheme_text)
    elif re.match(r"^[a-z][a-z0-9+.\-]*:(?![\d*])", p, re.IGNORECASE):
        return _Pattern(pattern, None, None, None, None, _glob(p))
    # A pattern's query or fragment is dropped: URLs are never matched on theirs.
    after = re.split(r"[?#]", after, maxsplit=1)[0]
    hostport, slash, rest = after.partition("/")
    host, port = _split_hostport(hostport)
    path = "/" + rest if slash else ""
    return _Pattern(
        source=pattern,
        scheme=scheme,
        host=_glob(host.lower()),
        port=_glob(port) if port is not None else None,
        path=None if path in _ANY_PATH else _glob(_resolve_dots(path)),
        opaque=None,
    )


class UrlPolicy:
    """Compiled ``allow_urls`` patterns and the one decision about a URL."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.sources = tuple(patterns)
        self._patterns = [_compile(p) for p in self.sources]

    @property
    def restricted(self) -> bool:
        """Whether any pattern was given (else every http/https URL is allowed)."""
        return bool(self._patterns)

    def refusal(self, url: str) -> str | None:
        """``None`` when ``url`` may be visited, else why not (a short phrase after the URL)."""
        try:
            parsed = parse_url(url)
        except UrlRefused as exc:
            return str(exc)
        return self.refusal_parsed(parsed)

    def refusal_parsed(self, parsed: ParsedUrl) -> str | None:
        """``refusal`` for an already parsed URL."""
        if parsed.opaque and parsed.text.lower() in _ALWAYS_OPAQUE:
            return None
        if not self._patterns:
            if parsed.scheme in _WEB_SCHEMES and not parsed.opaque:
                return None
            return f"uses the {parsed.scheme}: scheme"
        if any(p.matches(parsed) for p in self._patterns):
            return None
        if parsed.opaque or parsed.scheme not in _WEB_SCHEMES:
            return f"uses the {parsed.scheme}: scheme, which no allowed URL names"
        port = "" if parsed.port == _DEFAULT_PORTS.get(parsed.scheme) else f":{parsed.port}"
        return f"({parsed.scheme}://{parsed.host}{port}{parsed.path}) is not in the allowed URLs"

    def allows(self, url: str) -> bool:
        """``refusal(url) is None``."""
        return self.refusal(url) is None

    def host_ports(self) -> list[tuple[str, int | None]]:
        """The (host glob, port) pairs the patterns allow; ``None`` for a port means any.

        For guards that see a connection, not a URL (a WebSocket, which no request
        interception pauses): they can hold it to these hosts and ports only. A pattern whose
        port is a partial glob (``80*``) is left out, as are opaque ones, so such a guard
        refuses what it cannot express rather than let it through.
        """
        out: list[tuple[str, int | None]] = []
        for source, pattern in zip(self.sources, self._patterns, strict=True):
            if pattern.opaque is not None:
                continue
            p = source.strip()
            scheme, sep, after = p.partition("://")
            if not sep:
                scheme, after = "", p
            hostport = re.split(r"[?#/]", after, maxsplit=1)[0]
            host, port = _split_hostport(hostport)
            if hostport.startswith("[") and ":" not in host:
                continue  # a bracket glob (``[a-c].example``), not an IPv6 literal
            if port == "*":
                out.append((host.lower(), None))
            elif port is not None and port.isdigit():
                out.append((host.lower(), int(port)))
            elif port is None:
                schemes = [scheme.lower()] if scheme and "*" not in scheme else ["http", "https"]
                out += [(host.lower(), _DEFAULT_PORTS[s]) for s in schemes if s in _DEFAULT_PORTS]
        return out
