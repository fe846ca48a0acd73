"""The operator console's web server: stdlib ``http.server`` in a thread, one token per run.

Every route answers 401 without the run's token: ``?token=`` on the first visit (which sets
an HttpOnly, SameSite=Strict cookie), the cookie afterwards, or ``Authorization: Bearer`` for
the run's own processes (approvers, help requests, control checks). Changes from the page
(POST) also need the ``X-Agentcorp-Console`` header, which no other site can send here.

Routes: ``/`` the page; ``/api/state`` and ``/api/events`` (server-sent events) the run's
state; ``/api/frame/TASK`` a running task's last frame; ``/api/live/TASK`` its newest live
frame while a person holds it; ``/api/questions/ID`` answers an approval or a help question;
``/api/lease/TASK`` takes, renews or hands back control; ``/api/input/TASK`` queues the lease
holder's click, keys, text or scroll for the sandbox. For the run's processes:
``/api/approvals`` (the ``console`` approver, webhook protocol), ``/api/help``
(``request_help``), ``/api/control/TASK`` (is a person holding this task?) and
``/api/control/TASK/live`` (the parked agent's poll: live frame up, inputs down).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from markupsafe import Markup

from agentcorp.console.lease import LeaseBook
from agentcorp.console.live import LiveBook, describe_input, parse_input
from agentcorp.console.state import ConsoleState
from agentcorp.errors import ConfigError

__all__ = ["ConsoleServer", "parse_bind"]

_COOKIE = "agentcorp_console"
_HEADER = "X-Agentcorp-Console"
_MAX_BODY = 1 << 20
_ASSETS = Path(__file__).parent / "assets"


def parse_bind(text: str | None) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (loopback by default; 0 picks a free port)."""
    raw = (text or "").strip() or "127.0.0.1:0"
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = "", raw
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--console: {raw!r} is not HOST:PORT (e.g. 127.0.0.1:0)") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"--console: port {number} is out of range 0-65535")
    return host, number


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class ConsoleServer:
    """Serves ``state`` on ``host:port`` until ``close()``; ``url`` carries the token."""

    def __init__(
        self,
        state: ConsoleState,
        leases: LeaseBook,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        audit: Any = None,
    ) -> None:
        self.state = state
        self.leases = leases
        self.live = LiveBook(self._live_changed)
        self.audit = audit  # an AuditLog for what people do here (or None)
        self.token = secrets.token_urlsafe(24)
        self._audit_lock = threading.Lock()
        self._unwritten: list[tuple[str, dict[str, Any]]] = []
        self._closing = threading.Event()
        handler = type("Handler", (_Handler,), {"console": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"--console: cannot listen on {host}:{port}: {exc}") from None
        self.httpd.daemon_threads = True
        self.host, self.port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="agentcorp-console", daemon=True
        )
        css, js = (_ASSETS / "console.css").read_text(), (_ASSETS / "console.js").read_text()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_ASSETS),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.csp = (
            "default-src 'none'; img-src 'self' data:; connect-src 'self'; "
            f"style-src {_sha256(css)}; script-src {_sha256(js)}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        self.page = env.get_template("console.html").render(
            csp=self.csp, css=Markup(css), script=Markup(js)
        )

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without the token."""
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to open, token included."""
        return f"{self.base_url}/?token={self.token}"

    def start(self) -> ConsoleServer:
        """Serve in a daemon thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; open event streams end."""
        self._closing.set()
        with self.state.cond:
            self.state.changed()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def closing(self) -> bool:
        """``close()`` was called."""
        return self._closing.is_set()

    def _live_changed(self, frame_only: bool) -> None:
        if frame_only:
            self.state.live_changed()
        else:
            with self.state.cond:
                self.state.changed()

    def record(self, kind: str, **fields: Any) -> None:
        """Audit what a person (or a bad request) did, and show it in the audit tail."""
        self.state.note(kind, **fields)
        with self._audit_lock:
            if self.audit is None:
                self._unwritten.append((kind, fields))  # before the run made its folder
                return
            self._write(kind, fields)

    def set_audit(self, audit: Any) -> None:
        """Audit to ``audit`` from now on, starting with what happened before it existed."""
        with self._audit_lock:
            self.audit = audit
            for kind, fields in self._unwritten:
                self._write(kind, fields)
            self._unwritten.clear()

    def _write(self, kind: str, fields: dict[str, Any]) -> None:
        try:
            self.audit.append(f"console.{kind}", **fields)
        except OSError:
            self.state.note("console.error", message="could not write the audit log")


class _Handler(BaseHTTPRequestHandler):
    console: ConsoleServer
    protocol_version = "HTTP/1.1"
    server_version = "agentcorp-console"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the token is in the first URL, and stderr is the run's progress."""

    # --- plumbing -------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _token_ok(self, query: dict[str, list[str]]) -> tuple[bool, bool]:
        """(authorised, by the query string) for this request."""
        want = self.console.token.encode()
        got = [t.encode() for t in query.get("token", [])]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            got.append(auth[7:].strip().encode())
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == _COOKIE:
                got.append(value.encode())
        by_query = bool(query.get("token")) and hmac.compare_digest(
            query["token"][0].encode(), want
        )
        return any(hmac.compare_digest(g, want) for g in got), by_query

    def _body(self) -> dict[str, Any] | None:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 <= n <= _MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "body: missing length or larger than 1 MiB")
            return None
        try:
            data = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "body: not JSON")
            return None
        if not isinstance(data, dict):
            self._error(HTTPStatus.BAD_REQUEST, "body: not a JSON object")
            return None
        return data

    def _authorise(self) -> tuple[str, dict[str, list[str]], bool] | None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        ok, by_query = self._token_ok(query)
        if not ok:
            self.console.record(
                "denied", path=parts.path, reason="missing or wrong console token", status=401
            )
            if self.command == "POST":
                self.rfile.read(min(int(self.headers.get("Content-Length") or 0), _MAX_BODY))
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"401: this console needs the token from the URL the run printed\n",
                "text/plain; charset=utf-8",
            )
            return None
        return parts.path, query, by_query

    # --- GET ------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Page, state, events, frames."""
        got = self._authorise()
        if got is None:
            return
        path, _, by_query = got
        if path == "/":
            headers = {"Content-Security-Policy": self.console.csp, "X-Frame-Options": "DENY"}
            if by_query:
                headers["Set-Cookie"] = (
                    f"{_COOKIE}={self.console.token}; HttpOnly; SameSite=Strict; Path=/"
                )
            self._send(
                HTTPStatus.OK, self.console.page.encode(), "text/html; charset=utf-8", headers
            )
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self._snapshot())
        elif path == "/api/events":
            self._events()
        elif path.startswith("/api/frame/"):
            self._frame(path.removeprefix("/api/frame/"))
        elif path.startswith("/api/live/"):
            task_id = path.removeprefix("/api/live/")
            image = self.console.live.frame(task_id)
            if image is None:
                self._error(HTTPStatus.NOT_FOUND, f"{task_id}: no live frame")
            else:
                self._send(HTTPStatus.OK, image, "image/jpeg")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"{path}: no such page")

    def _snapshot(self) -> dict[str, Any]:
        snap = self.console.state.snapshot()
        snap["leases"] = self.console.leases.snapshot()
        snap["live"] = {
            t: v for t, v in self.console.live.snapshot().items() if t in snap["leases"]
        }
        return snap

    def _frame(self, task_id: str) -> None:
        with self.console.state.cond:
            t = self.console.state.tasks.get(task_id)
            image = t.frame if t is not None else None
        if image is None:
            self._error(HTTPStatus.NOT_FOUND, f"{task_id}: no frame yet")
            return
        ctype = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
        self._send(HTTPStatus.OK, image, ctype)

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        state, seen, seen_live = self.console.state, -1, -1
        try:
            while not self.console.closing:
                version, live = state.wait_any(seen, seen_live, 10.0)
                if version != seen:
                    seen, seen_live = version, live
                    data = json.dumps(self._snapshot(), separators=(",", ":"))
                    self.wfile.write(f"data: {data}\n\n".encode())
                elif live != seen_live:
                    # A new live frame: only the live views' numbers, not the whole state.
                    seen_live = live
                    frames = json.dumps(self._snapshot()["live"], separators=(",", ":"))
                    self.wfile.write(f"event: live\ndata: {frames}\n\n".encode())
                else:
                    self.wfile.write(b": keep-alive\n\n")  # also notices a gone viewer
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    # --- POST -----------------------------------------------------------------------

    def do_POST(self) -> None:
        """Answers from the page; approvals, help and control checks from the run."""
        got = self._authorise()
        if got is None:
            return
        path, query, _ = got
        body = self._body()
        if body is None:
            return
        if path == "/api/approvals":
            self._approval(body, query)
        elif path == "/api/help":
            self._help(body)
        elif path.startswith("/api/control/") and path.endswith("/live"):
            self._live_poll(path.removeprefix("/api/control/").removesuffix("/live"), body, query)
        elif path.startswith("/api/control/"):
            self._control(path.removeprefix("/api/control/"), query)
        elif self.headers.get(_HEADER) != "1":
            self._error(
                HTTPStatus.FORBIDDEN, f"changes need the {_HEADER} header (the page sends it)"
            )
        elif path.startswith("/api/questions/"):
            self._answer(path.removeprefix("/api/questions/"), body)
        elif path.startswith("/api/lease/"):
            self._lease(path.removeprefix("/api/lease/"), body)
        elif path.startswith("/api/input/"):
            self._input(path.removeprefix("/api/input/"), body)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"{path}: no such action")

    def _approval(self, body: dict[str, Any], query: dict[str, list[str]]) -> None:
        """The ``console`` approver's call: hold it until a person decides or time runs out."""
        timeout = _seconds(query.get("timeout", ["60"])[0], 60.0)
        ctx = body.get("context")
        task_id = str(ctx.get("task_id") or "?") if isinstance(ctx, dict) else "?"
        action = body.get("action")
        what = json.dumps(action)[:300] if isinstance(action, dict) else "?"
        text = f"{what} (rule {body.get('rule')}: {body.get('reason')})"
        state = self.console.state
        q = state.ask("approval", task_id, text, timeout)
        answer = state.await_answer(q)
        if answer is None:
            self.console.record("approval", task=task_id, id=q.id, decision="deny", by="timeout")
            self._json(
                HTTPStatus.OK, {"decision": "deny", "reason": f"no answer within {timeout:g}s"}
            )
            return
        self._json(HTTPStatus.OK, answer)

    def _help(self, body: dict[str, Any]) -> None:
        """``request_help``: the question waits for a person's answer, or ``no answer``."""
        task_id = str(body.get("task") or "?")
        question = str(body.get("question") or "")[:2000]
        timeout = _seconds(body.get("timeout"), 300.0)
        state = self.console.state
        q = state.ask("help", task_id, question, timeout)
        self.console.record("help.asked", task=task_id, id=q.id, question=question)
        answer = state.await_answer(q)
        if answer is None:
            self.console.record("help.timeout", task=task_id, id=q.id)
            self._json(HTTPStatus.OK, {"answer": None, "reason": f"no answer within {timeout:g}s"})
            return
        self._json(HTTPStatus.OK, answer)

    def _control(self, task_id: str, query: dict[str, list[str]]) -> None:
        """The agent asks before each action: free, or (after waiting) the hand-back note."""
        live = query.get("live") == ["1"]
        # Inputs sent before the agent parked and then handed back still run first.
        drain = live and self.console.live.pending(task_id) > 0
        if self.console.leases.held(task_id) is None and not drain:
            self._json(HTTPStatus.OK, {"held": False})
            return
        self.console.record("control.refused", task=task_id, reason="control held by a person")
        if live:
            # The agent serves the live view (``/api/control/TASK/live``) until hand-back.
            self._json(HTTPStatus.OK, {"held": True, "released": False, "live": True})
            return
        wait = _seconds(query.get("wait", ["30"])[0], 30.0)
        note = self.console.leases.wait_released(task_id, wait)
        self._json(HTTPStatus.OK, {"held": True, "released": note is not None, "note": note or ""})

    def _answer(self, qid: str, body: dict[str, Any]) -> None:
        who = _who(body)
        decision = body.get("decision")
        answer: dict[str, Any]
        if decision in ("approve", "deny"):
            answer = {"decision": decision, "by": who}
        elif isinstance(body.get("answer"), str) and body["answer"].strip():
            answer = {"answer": body["answer"][:4000], "by": who}
        else:
            self._error(
                HTTPStatus.BAD_REQUEST, "give decision (approve|deny) or a non-empty answer"
            )
            return
        why = self.console.state.answer(qid, answer)
        fields = {k: v for k, v in answer.items() if k != "answer"}
        if why is not None:
            self.console.record("answer.refused", id=qid, reason=why, **fields)
            self._error(HTTPStatus.CONFLICT, why)
            return
        self.console.record("answer", id=qid, **fields)
        self._json(HTTPStatus.OK, {"ok": True})

    def _lease(self, task_id: str, body: dict[str, Any]) -> None:
        who, op = _who(body), body.get("op")
        state = self.console.state
        with state.cond:
            t = state.tasks.get(task_id)
            status = t.status if t is not None else None
            finished = t is not None and t.finished
        if status is None:
            self._refuse_lease(HTTPStatus.NOT_FOUND, task_id, who, op, f"{task_id}: no such task")
            return
        if op == "take" and (finished or status != "running"):
            why = f"{task_id}: is {status}, not running: nothing to take over"
            self._refuse_lease(HTTPStatus.CONFLICT, task_id, who, op, why)
            return
        books = self.console.leases
        if op == "take":
            if books.held(task_id) is None:
                self.console.live.restart(task_id)  # no frame of an earlier lease shows
            got: Any = books.take(task_id, who)
        elif op == "heartbeat":
            got = books.heartbeat(task_id, who)
        elif op == "release":
            got = books.release(task_id, who, str(body.get("note") or "")[:500])
        else:
            self._error(HTTPStatus.BAD_REQUEST, "op must be take, heartbeat or release")
            return
        if isinstance(got, str):
            self._refuse_lease(HTTPStatus.CONFLICT, task_id, who, op, got)
            return
        if op != "heartbeat":
            self.console.record(f"lease.{op}", task=task_id, by=who)
        if op == "release":
            self.console.live.wake()
        with state.cond:
            state.changed()
        reply: dict[str, Any] = {"ok": True, "leases": books.snapshot()}
        if op == "take":
            reply["key"] = got.key  # the taker's page only: its inputs carry it
        self._json(HTTPStatus.OK, reply)

    def _input(self, task_id: str, body: dict[str, Any]) -> None:
        """The lease holder's input for the sandbox: queued for the parked agent."""
        who = _who(body)
        status = _task_status(self.console.state, task_id)
        key = body.get("key")
        if status is None:
            why, code = f"{task_id}: no such task", HTTPStatus.NOT_FOUND
        elif status != "running":
            why, code = (
                f"{task_id}: is {status}, not running: the input was not sent",
                HTTPStatus.CONFLICT,
            )
        elif not isinstance(key, str) or not self.console.leases.holds(task_id, who, key):
            why, code = (
                f"{task_id}: {who} holds no control lease on it (take over first)",
                HTTPStatus.CONFLICT,
            )
        else:
            try:
                action = parse_input(body.get("event"), self.console.live.size(task_id))
            except ValueError as exc:
                why, code = f"{task_id}: {exc}", HTTPStatus.BAD_REQUEST
            else:
                got = self.console.live.push(task_id, action)
                if isinstance(got, int):
                    self.console.record(
                        "person.action", task=task_id, by=who, input=got, **describe_input(action)
                    )
                    self._json(HTTPStatus.OK, {"ok": True, "id": got})
                    return
                why, code = got, HTTPStatus.TOO_MANY_REQUESTS
        self.console.record("person.refused", task=task_id, by=who, reason=why, status=int(code))
        self._error(code, why)

    def _live_poll(self, task_id: str, body: dict[str, Any], query: dict[str, list[str]]) -> None:
        """The parked agent's poll: its live frame and results in, the person's inputs out."""
        frame: bytes | None = None
        raw, size = body.get("frame"), body.get("size")
        try:
            if isinstance(raw, str) and raw:
                frame = base64.b64decode(raw, validate=True)
            got_size = (int(size[0]), int(size[1])) if isinstance(size, list) else None
        except (ValueError, TypeError, IndexError):
            self._error(HTTPStatus.BAD_REQUEST, "frame: not base64, or size not [width, height]")
            return
        if frame is not None and not frame.startswith(b"\xff\xd8"):
            self._error(HTTPStatus.BAD_REQUEST, "frame: not a JPEG")
            return
        results = [r for r in body.get("results") or () if isinstance(r, dict)]
        for r in results:
            if not r.get("ok"):
                self.console.record(
                    "person.failed", task=task_id, input=r.get("id"), error=str(r.get("error"))
                )
        leases = self.console.leases
        events = self.console.live.exchange(
            task_id,
            frame,
            got_size,
            results,
            min(_seconds(query.get("wait", ["0.25"])[0], 0.25), 5.0),
            lambda: leases.held(task_id) is not None,
        )
        held = leases.held(task_id) is not None
        reply: dict[str, Any] = {"held": held, "released": not held, "events": events}
        if not held:
            self.console.live.leave(task_id)
            reply["note"] = leases.wait_released(task_id, 0.0) or "control handed back"
        self._json(HTTPStatus.OK, reply)

    def _refuse_lease(self, status: int, task_id: str, who: str, op: Any, why: str) -> None:
        self.console.record("lease.refused", task=task_id, by=who, op=str(op), reason=why)
        self._error(status, why)


def _task_status(state: ConsoleState, task_id: str) -> str | None:
    with state.cond:
        t = state.tasks.get(task_id)
        if t is None:
            return None
        return "finished" if t.finished else t.status


def _who(body: dict[str, Any]) -> str:
    name = body.get("who")
    name = " ".join(name.split())[:40] if isinstance(name, str) else ""
    return f"console:{name or 'operator'}"


def _seconds(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return min(max(v, 0.1), 86400.0)
