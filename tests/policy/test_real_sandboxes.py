"""The gate reading real sandboxes: Chromium's focused field decides where a secret may go, and
the Xvfb desktop's focused window class decides ``allow_apps``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from agentcorp.actor import ActorConfig, EpisodeTask, run_episode
from agentcorp.policy import AuditedGate, GateContext, PolicyGate, build_gate, verify
from agentcorp.policy.config import PolicyConfig
from agentcorp.testing.scripted import ScriptedLLM, tool_reply
from agentcorp.types import Action, ObservationStep, PolicyStep, Step

SECRET = "Br0wser-Kiwi-Lantern-77"

PAGE = b"""<!doctype html><html><body style="margin:0;font:20px sans-serif">
<form method="post" action="/login">
  <input name="user" value="admin"
         style="position:absolute;left:100px;top:60px;width:300px;height:40px">
  <input name="password" type="password"
         style="position:absolute;left:100px;top:140px;width:300px;height:40px">
  <button type="submit" style="position:absolute;left:100px;top:200px">Log in</button>
</form>
<form method="post" action="/chat">
  <textarea name="msg" style="position:absolute;left:100px;top:300px;width:500px;height:80px">
</textarea>
</form></body></html>"""


class _Site:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, list[str]]]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(PAGE)

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                site.posts.append((self.path, parse_qs(self.rfile.read(n).decode())))
                self._send(b"<html><body><h1>Welcome</h1></body></html>")

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def site() -> Iterator[_Site]:
    s = _Site()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def _run(gen: object) -> tuple[list[Step], object]:
    steps: list[Step] = []
    while True:
        try:
            steps.append(next(gen))  # type: ignore[call-overload]
        except StopIteration as stop:
            return steps, stop.value


@pytest.mark.slow
def test_browser_secret_goes_only_into_the_password_field(site: _Site, tmp_path: Path) -> None:
    from agentcorp.sandbox.browser import BrowserComputer

    audit = tmp_path / "audit.jsonl"
    with BrowserComputer(
        start_url=site.url, secrets={"BO_PW": SECRET}, allow_urls=["http://127.0.0.1:*/*"]
    ) as browser:
        gate = build_gate(
            {"allow_urls": ["http://127.0.0.1:*/*"]},
            [{"name": "BO_PW", "allow_domains": ["127.0.0.1:*"]}],
            audit=audit,
            environ={"BO_PW": SECRET},
            computer=browser,
            scope="login",
        )
        assert isinstance(gate, AuditedGate)
        llm = ScriptedLLM(
            [
                tool_reply("click", x=300, y=340),  # the chat box
                tool_reply("type", text="${secrets.BO_PW}"),  # injected: "paste it here"
                tool_reply("click", x=250, y=160),  # the password field
                tool_reply("type", text="${secrets.BO_PW}"),
                tool_reply("key", keys="Return"),
                tool_reply("done", summary="logged in"),
            ]
        )
        task = EpisodeTask("login", goal="Log in", role="ops", sandbox="web")
        steps, result = _run(
            run_episode(browser, task, gate=gate, model=llm, config=ActorConfig(long_side=1280))
        )
        gate.audit.close()
        assert getattr(result, "status", None) == "done", (result, steps[-3:])
        llm.assert_complete()
        # The real server got the password from the password field, and no chat message.
        assert [p for p, _ in site.posts] == ["/login"]
        assert site.posts[0][1]["password"] == [SECRET]
        # The chat-box attempt was refused by the focused-field rule and audited.
        refused = [s for s in steps if isinstance(s, PolicyStep) and s.decision == "denied"]
        assert [s.rule for s in refused] == ["secrets:field"]
        rows = [json.loads(x) for x in audit.read_text().splitlines()]
        uses = [r for r in rows if r["kind"] == "secret_use"]
        assert [(u["name"], u["field_is_password"]) for u in uses] == [("BO_PW", True)]
        assert SECRET not in audit.read_text()
        assert verify(audit) == []
        # Nothing the model was sent holds the value.
        assert all(SECRET not in json.dumps(c.messages) for c in llm.calls)
        # The field it went into is blanked in frames the loop stores or sends on.
        inner = gate.inner
        assert isinstance(inner, PolicyGate)
        (box,) = inner.secret_regions("login")
        assert (box.x, box.y) == (100, 140) and 300 <= box.w <= 320 and 40 <= box.h <= 50
        # The loop itself passes every frame through the gate's redaction, so the frame it
        # yielded after typing is already blanked; the one before typing is not.
        typed_frame = next(s.frame for s in steps if isinstance(s, ObservationStep) and s.step == 4)
        before = next(s.frame for s in steps if isinstance(s, ObservationStep) and s.step == 3)
        assert typed_frame.pil().getpixel(box.center) == (0, 0, 0)
        assert gate.redact_frame(typed_frame, "login").sha256 == typed_frame.sha256
        assert before.pil().getpixel(box.center) != (0, 0, 0)


@pytest.mark.slow
def test_desktop_window_class_decides_allow_apps(tmp_path: Path) -> None:
    from tests.sandbox.conftest import mousepad_desktop

    (tmp_path / "home").mkdir()
    with mousepad_desktop(tmp_path, text="hello\n") as desk:
        ctx = GateContext("notes", "support", "notes", "model")
        typing = Action("type", text="x")
        only_calc = PolicyGate(PolicyConfig(allow_apps=("gnumeric",)), computer=desk)
        d = only_calc.check(typing, ctx)
        assert not d.allowed and d.rule == "allow_apps" and "Mousepad" in d.message
        notes = PolicyGate(PolicyConfig(allow_apps=("mousepad",)), computer=desk)
        assert notes.check(typing, ctx).allowed
        assert notes.check(Action("key", keys="ctrl+alt+t"), ctx).rule == ("forbid_keys:ctrl+alt+t")
