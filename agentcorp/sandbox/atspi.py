"""The accessibility tree of a desktop (AT-SPI over D-Bus), read with a pure-Python client.

Each ``XvfbDesktop`` runs its own session bus and AT-SPI bus launcher (see ``xvfb.py``); the
apps it starts register on that bus, so the tree holds only this desktop's apps. ``AtspiTree``
connects to the accessibility bus (``jeepney``, no GObject bindings) and takes a *snapshot*:
every showing element with its name, role, states and screen box. Requests are pipelined
per tree level, so a snapshot of a calculator (a few hundred elements) costs one round trip
per level rather than one per call; the owner caches a snapshot until the next input.

The tree is data from other programs: names are shown and matched, never executed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentcorp.errors import SandboxError
from agentcorp.types import Box

__all__ = ["Accessible", "AtspiTree", "Snapshot", "a11y_bus_address"]

_ACC = "org.a11y.atspi.Accessible"
_ROOT = ("org.a11y.atspi.Registry", "/org/a11y/atspi/accessible/root")
_NULL = "/org/a11y/atspi/null"

# AtspiStateType bit numbers (at-spi2-core atspi-constants.h).
_STATES = {
    "active": 1,
    "checked": 4,
    "editable": 7,
    "enabled": 8,
    "focusable": 11,
    "focused": 12,
    "selected": 23,
    "sensitive": 24,
    "showing": 25,
    "visible": 30,
}
# AtspiRelationType: the element is labelled by / a label for the targets.
_RELATIONS = {2: "labelled_by", 1: "label_for"}
#: Roles a person types into even when a toolkit leaves out the "editable" state (a plain
#: "text" is also a calculator's read-only display, so it needs the state).
EDITABLE_ROLES = frozenset({"entry", "password text", "spin button", "spin box", "editbar"})
#: Roles that cover what lies below them while open.
POPUP_ROLES = frozenset({"menu", "popup menu", "window", "dialog", "alert", "tool tip", "list box"})
_MAX_NODES = 5000  # a tree bigger than this is a data grid: stop walking, OCR still works


@dataclass(frozen=True, slots=True)
class Accessible:
    """One showing element: where it is on screen, its accessible name, role and states."""

    ref: tuple[str, str]  # (bus name, object path): stable while the element lives
    name: str
    role: str
    box: Box
    states: frozenset[str]
    parent: tuple[str, str] | None = None
    depth: int = 0
    app: str = ""

    @property
    def editable(self) -> bool:
        """Whether a person can type into it (an editable state or a text-entry role)."""
        return "editable" in self.states or self.role in EDITABLE_ROLES


@dataclass(slots=True)
class Snapshot:
    """Every showing element of every app at one moment, in tree order."""

    nodes: list[Accessible]
    taken: float
    ms: float
    truncated: bool = False
    by_ref: dict[tuple[str, str], Accessible] = field(default_factory=dict)
    #: The text each field or display shows (password fields never), by element.
    texts: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_ref = {n.ref: n for n in self.nodes}

    def focused(self) -> Accessible | None:
        """The element with keyboard focus, if any app reports one."""
        found = [n for n in self.nodes if "focused" in n.states]
        # Qt marks the current page tab "focused" too; the real focus can take focus.
        real = [n for n in found if "focusable" in n.states]
        return (real or found)[-1] if found else None

    def at(self, x: int, y: int) -> list[Accessible]:
        """Elements whose box holds (x, y), deepest (most specific) last."""
        return sorted((n for n in self.nodes if n.box.contains(x, y)), key=lambda n: n.depth)

    def ancestors(self, node: Accessible) -> list[Accessible]:
        """The showing elements above ``node``, nearest first (its window last)."""
        out: list[Accessible] = []
        ref = node.parent
        while ref is not None and ref in self.by_ref and len(out) < 64:
            up = self.by_ref[ref]
            out.append(up)
            ref = up.parent
        return out


def a11y_bus_address(session_bus: str, timeout: float = 5.0) -> str:
    """Ask the session bus's ``org.a11y.Bus`` (at-spi-bus-launcher) for the AT-SPI bus."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            with open_dbus_connection(session_bus) as conn:
                msg = new_method_call(
                    DBusAddress("/org/a11y/bus", "org.a11y.Bus", "org.a11y.Bus"), "GetAddress"
                )
                reply = conn.send_and_get_reply(msg, timeout=max(0.1, deadline - time.monotonic()))
                if reply.header.message_type.name == "error":
                    raise SandboxError(f"org.a11y.Bus.GetAddress failed: {reply.body}")
                return str(reply.body[0])
        except (OSError, TimeoutError, SandboxError) as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise SandboxError(f"the AT-SPI bus did not come up on {session_bus}: {last}")
        time.sleep(0.05)


class AtspiTree:
    """A connection to one desktop's accessibility bus; ``snapshot()`` reads the tree."""

    def __init__(self, address: str, timeout: float = 2.0) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self.address = address
        self.timeout = timeout
        self._lock = threading.Lock()
        try:
            self._conn: Any = open_dbus_connection(address)
        except (OSError, TimeoutError) as exc:
            raise SandboxError(f"cannot connect to the AT-SPI bus {address}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (safe twice)."""
        with contextlib.suppress(Exception):
            self._conn.close()

    # --- pipelined calls ------------------------------------------------------------------

    def _calls(
        self, calls: Sequence[tuple[tuple[str, str], str, str, str, tuple[Any, ...]]]
    ) -> list[Any]:
        """Send every call at once, then collect the replies (``None`` for an error)."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.low_level import HeaderFields, MessageType

        serials: dict[int, int] = {}
        for i, ((bus, path), iface, method, sig, args) in enumerate(calls):
            msg = new_method_call(DBusAddress(path, bus, iface), method, sig or None, args)
            serial = next(self._conn.outgoing_serial)
            self._conn.send(msg, serial=serial)
            serials[serial] = i
        out: list[Any] = [None] * len(calls)
        left = len(serials)
        deadline = time.monotonic() + self.timeout
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                reply = self._conn.receive(timeout=remaining)
            except TimeoutError:
                break
            rs = reply.header.fields.get(HeaderFields.reply_serial)
            if rs not in serials:
                continue  # a signal, or a reply to a call we gave up on
            idx = serials.pop(rs)
            left -= 1
            if reply.header.message_type == MessageType.method_return:
                out[idx] = reply.body
        return out

    # --- the snapshot ---------------------------------------------------------------------

    def app_count(self) -> int:
        """How many apps are registered on the bus (0 when the registry does not answer)."""
        with self._lock:
            apps = self._calls([(_ROOT, _ACC, "GetChildren", "", ())])[0]
        return len(apps[0]) if apps else 0

    def snapshot(self) -> Snapshot:
        """Every showing element of every registered app, with screen boxes."""
        t0 = time.perf_counter()
        with self._lock:
            apps = self._calls([(_ROOT, _ACC, "GetChildren", "", ())])[0]
            level: list[tuple[tuple[str, str], tuple[str, str] | None, str]] = [
                ((str(b), str(p)), None, "") for b, p in (apps[0] if apps else [])
            ]
            nodes: list[Accessible] = []
            depth = 0
            truncated = False
            while level:
                level, found = self._level(level, depth)
                nodes.extend(found)
                depth += 1
                if len(nodes) > _MAX_NODES:
                    truncated = True
                    break
        return Snapshot(nodes, time.time(), (time.perf_counter() - t0) * 1000, truncated)

    def _level(
        self, level: list[tuple[tuple[str, str], tuple[str, str] | None, str]], depth: int
    ) -> tuple[list[tuple[tuple[str, str], tuple[str, str] | None, str]], list[Accessible]]:
        per = 5
        calls: list[tuple[tuple[str, str], str, str, str, tuple[Any, ...]]] = []
        for ref, _, _ in level:
            calls += [
                (ref, "org.freedesktop.DBus.Properties", "Get", "ss", (_ACC, "Name")),
                (ref, _ACC, "GetRoleName", "", ()),
                (ref, _ACC, "GetState", "", ()),
                (ref, "org.a11y.atspi.Component", "GetExtents", "u", (0,)),
                (ref, _ACC, "GetChildren", "", ()),
            ]
        replies = self._calls(calls)
        nxt: list[tuple[tuple[str, str], tuple[str, str] | None, str]] = []
        found: list[Accessible] = []
        for i, (ref, parent, app) in enumerate(level):
            name_r, role_r, state_r, ext_r, kids_r = replies[i * per : i * per + per]
            states = _states(state_r[0] if state_r else ())
            name = str(name_r[0][1]) if name_r else ""
            role = str(role_r[0]) if role_r else ""
            app_name = app or (name if depth == 0 else "")
            if depth > 0 and "showing" not in states:
                continue  # hidden (a closed menu's items): neither it nor its children count
            if ext_r:
                x, y, w, h = (int(v) for v in ext_r[0])
                if w > 0 and h > 0 and depth > 0:
                    found.append(
                        Accessible(
                            ref, name, role, Box(x, y, w, h), states, parent, depth, app_name
                        )
                    )
            for bus, path in kids_r[0] if kids_r else ():
                if str(path) != _NULL:
                    nxt.append(((str(bus), str(path)), ref, app_name))
        return nxt, found

    # --- one element ----------------------------------------------------------------------

    def texts_of(self, refs: Sequence[tuple[str, str]]) -> list[str | None]:
        """The text of each element (None where it has no Text interface), pipelined."""
        if not refs:
            return []
        with self._lock:
            got = self._calls([(r, "org.a11y.atspi.Text", "GetText", "ii", (0, -1)) for r in refs])
        return [str(g[0]) if g else None for g in got]

    def states_of(self, ref: tuple[str, str]) -> frozenset[str] | None:
        """An element's states now (one call), or None when it is gone."""
        with self._lock:
            got = self._calls([(ref, _ACC, "GetState", "", ())])[0]
        return _states(got[0]) if got else None

    def text_of(self, ref: tuple[str, str]) -> str | None:
        """The text an element holds (its Text interface), or None when it has none."""
        with self._lock:
            got = self._calls([(ref, "org.a11y.atspi.Text", "GetText", "ii", (0, -1))])[0]
        return str(got[0]) if got else None

    def relations(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, list[tuple[str, str]]]]:
        """Each element's ``labelled_by`` and ``label_for`` targets, pipelined (one round trip).

        A toolkit ties a label to the field it names this way (GTK ``set_mnemonic_widget``,
        Qt ``setBuddy``), wherever the two are drawn. Elements without any are left out.
        """
        if not refs:
            return {}
        with self._lock:
            got = self._calls([(r, _ACC, "GetRelationSet", "", ()) for r in refs])
        out: dict[tuple[str, str], dict[str, list[tuple[str, str]]]] = {}
        for ref, reply in zip(refs, got, strict=True):
            for kind, targets in reply[0] if reply else ():
                key = _RELATIONS.get(int(kind))
                if key:
                    found = out.setdefault(ref, {"labelled_by": [], "label_for": []})
                    found[key].extend((str(b), str(p)) for b, p in targets)
        return out

    def range_extents(self, ref: tuple[str, str], start: int, end: int) -> Box | None:
        """Screen box of an element's characters ``start:end`` (Text.GetRangeExtents)."""
        with self._lock:
            got = self._calls(
                [(ref, "org.a11y.atspi.Text", "GetRangeExtents", "iiu", (start, end, 0))]
            )[0]
        if not got:
            return None
        x, y, w, h = (int(v) for v in got[:4]) if len(got) >= 4 else (int(v) for v in got[0])
        return Box(x, y, w, h) if w > 0 and h > 0 else None

    def set_text(self, ref: tuple[str, str], text: str) -> bool:
        """Replace an editable element's text (EditableText.SetTextContents)."""
        with self._lock:
            got = self._calls(
                [(ref, "org.a11y.atspi.EditableText", "SetTextContents", "s", (text,))]
            )[0]
        return bool(got and got[0])


def _states(words: Iterable[int]) -> frozenset[str]:
    bits = 0
    for i, word in enumerate(words):
        bits |= int(word) << (32 * i)
    return frozenset(name for name, bit in _STATES.items() if bits >> bit & 1)
