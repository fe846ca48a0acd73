"""The writable live view: a person takes over, acts on the sandbox from the console page in
real Chromium, hands back, and the model resumes. A desktop task (real Xvfb and mousepad, in
this process) and a browser task (real Chromium through Playwright, in a worker process), with
the fake OpenAI server over HTTP; plus the bad inputs over real loopback HTTP."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

import agentcorp
from agentcorp.console import Console
from agentcorp.record.session import open_session
from agentcorp.testing import FakeOpenAIServer
from agentcorp.types import ActionStep
from tests.console.conftest import _Quiet


def _act(name: str, **args: Any) -> dict[str, Any]:
    return {"when": {"purpose": "act"}, "tool_calls": [{"name": name, "arguments": args}]}


def _after_hand_back(name: str, **args: Any) -> dict[str, Any]:
    return {
        "when": {"purpose": "act", "text_contains": "control held by a person"},
        "tool_calls": [{"name": name, "arguments": args}],
    }


#: The model asks for help, meets the lease on its next action (parked: the person acts),
#: and after hand-back looks again and finishes.
SCRIPT = [
    _act("request_help", question="Please do this one for me."),
    _act("key", keys="ctrl+End"),
    _after_hand_back("done", summary="a person did it"),
]


def _wait(cond: Any, what: str, timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _ocr(jpeg: bytes) -> str:
    from agentcorp.grounding.ocr import OcrEngine

    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    return " ".join(line.text for line in OcrEngine.shared().read(rgb))


def _shows(console: Console, task_id: str, text: str, timeout: float = 30.0) -> None:
    """Wait until OCR reads every word of ``text`` in the task's newest live frame."""
    seen = [""]

    def read() -> bool:
        seen[0] = _ocr(_live_frame(console, task_id)[1])
        return _reads(seen[0], text)

    try:
        _wait(read, f"{text!r} in the live frame", timeout)
    except AssertionError:
        Path("/tmp/live-frame.jpg").write_bytes(_live_frame(console, task_id)[1])
        raise AssertionError(f"{text!r} not in the live frame, which reads {seen[0]!r}") from None


def _reads(ocr: str, text: str) -> bool:
    # OCR may cut a monospaced line at its wide gaps and read the pieces in another order.
    squashed = "".join(ocr.split())
    return all(word in squashed for word in text.split())


def _live_frame(console: Console, task_id: str) -> tuple[int, bytes]:
    info = console.server.live.snapshot().get(task_id) or {}
    frame = console.server.live.frame(task_id)
    return int(info.get("frame") or 0), frame or b""


def _take_over_on_help(page: Any, task_id: str) -> None:
    """The model asked for help: take over, then answer; its next action parks it."""
    page.wait_for_selector(".q[data-kind=help]", timeout=120_000)
    # An answer typed before the page redraws (the take-over changes the state) survives it.
    page.locator(".q[data-kind=help] input.answer").fill("over to you")
    page.locator(f".card[data-task={task_id}] button.takeover").click()
    page.wait_for_selector(f".live-view[data-task={task_id}][data-mine='1']")
    page.locator(".q[data-kind=help] button.send").click()
    page.wait_for_selector(f".live-view[data-task={task_id}][data-parked='1']", timeout=120_000)


def _click_screen(page: Any, task_id: str, x: int, y: int, size: tuple[int, int]) -> None:
    """Click the live image where the sandbox's (x, y) is drawn."""
    img = page.locator(f".live-view[data-task={task_id}] img.screen")
    box = img.bounding_box()
    assert box is not None
    img.click(position={"x": x * box["width"] / size[0], "y": y * box["height"] / size[1]})


def _all_done(console: Console, task_id: str, n: int) -> bool:
    info = console.server.live.snapshot().get(task_id) or {}
    return int(info.get("done") or 0) >= n and not info.get("queued")


DESK_CO = """\
version: 1
company: desk-co
roles:
  writer: {title: Writer, sandbox: notes}
sandboxes:
  notes:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}
    files: {"~/notes.txt": notes.txt}
tasks:
  - id: note
    role: writer
    description: Append the line to the notes and save them.
    success: {check: file_contains, path: "~/notes.txt", text: "Typed by a person 42"}
"""

TYPED = "Typed by a person 42"


@pytest.mark.slow
def test_take_over_and_act_on_a_desktop_from_the_console_page(
    tmp_path: Path, chromium: Any
) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(DESK_CO, encoding="utf-8")
    (co / "notes.txt").write_text("Notes\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    out: list[Any] = []
    with FakeOpenAIServer(SCRIPT) as srv, Console("127.0.0.1:0") as console:

        def go() -> None:
            out.append(
                agentcorp.run(
                    co,
                    sessions=run_dir,
                    observers=[console.observer],
                    no_cache=True,
                    base_url=srv.base_url,
                    actor_model="fake-actor",
                    no_plan=True,
                    help_timeout_s=120,
                )
            )

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        page = chromium.new_page(viewport={"width": 1300, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(console.url)
        _take_over_on_help(page, "note")
        # A second viewer sees the same live view, read-only.
        other = chromium.new_page()
        other.goto(console.url)
        other.wait_for_selector(".live-view[data-task=note][data-mine='0']")
        assert other.locator(".live-view[data-task=note] .live-controls").is_hidden()
        page.wait_for_selector(".live-view[data-task=note] img.screen[src*='/api/live/']")
        n0, before = _wait(
            lambda: _live_frame(console, "note")[0] and _live_frame(console, "note"), "a live frame"
        )
        assert not _reads(_ocr(before), TYPED)
        # Click into the editor's text, then keys and text straight on the live image.
        _click_screen(page, "note", 400, 300, (800, 600))
        screen = page.locator(".live-view[data-task=note] img.screen")
        screen.press("Control+End")
        screen.press("Enter")
        page.keyboard.type(TYPED)
        page.wait_for_timeout(400)  # the page sends typed characters in runs
        page.locator(".live-view[data-task=note] input.live-keys").fill("ctrl+s")
        page.locator(".live-view[data-task=note] button.live-press").click()
        _wait(lambda: _all_done(console, "note", 5), "the 5 inputs to run", 60)
        # The effect is in the app's real state and in the live frame the page shows.
        notes = run_dir / ".agentcorp" / "sandboxes" / "notes" / "notes.txt"
        _wait(lambda: TYPED in notes.read_text(encoding="utf-8"), "the saved file", 30)
        _shows(console, "note", TYPED)
        n1 = _live_frame(console, "note")[0]
        assert n1 > n0

        def shown() -> int:
            src = screen.get_attribute("src") or "n=0"
            return int(src.rpartition("n=")[2])

        _wait(lambda: shown() >= n1, "the page to show the newest live frame", 30)
        _wait(
            lambda: (
                page.evaluate("document.querySelector('.live-view img.screen').naturalWidth") > 0
            ),
            "the live image to load",
            30,
        )
        # Hand back: the model looks again and finishes; the task passes on the person's work.
        page.locator(".card[data-task=note] button.handback").click()
        thread.join(180)
        assert out and out[0].passed, (out and out[0].results[0].reason, srv.requests)
        srv.assert_complete()
        assert not errors, errors
    # The person's frames and inputs are not model input nor agent steps; typed text is
    # audited by its length only.
    bodies = " ".join(str(r.body) for r in srv.chat_requests)
    assert "control held by a person" in bodies and TYPED not in bodies
    session = open_session(next(p for p in (run_dir / "note").glob("*") if p.is_dir()))
    acted = [e.step.action.kind for e in session.events if isinstance(e.step, ActionStep)]
    assert "type" not in acted and "click" not in acted, acted
    console_audit = (run_dir / "audit-console.jsonl").read_text(encoding="utf-8")
    run_audit = "".join(p.read_text() for p in run_dir.glob("audit-2*.jsonl"))
    assert TYPED not in console_audit and TYPED not in run_audit
    people = [json.loads(x) for x in run_audit.splitlines() if '"person.action"' in x]
    assert [p["action"] for p in people] == ["click", "key", "key", "type", "key"]
    assert people[3]["text_length"] == len(TYPED) and all(p["ok"] for p in people)
    assert people[0]["x"] == pytest.approx(400, abs=3) and people[0]["y"] == pytest.approx(
        300, abs=3
    )
    assert console_audit.count('"console.person.action"') == 5


class _Site(_Quiet):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()


def serve_form_site(root: Path) -> tuple[str, list[str], ThreadingHTTPServer]:
    """A real site with a form under ``root``: its URL, the paths asked for, the server."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(
        "<body style='margin:0'><h1 style='font-size:28px'>Order</h1>"
        "<form action='done.html'><input name='q' style='position:absolute;left:100px;"
        "top:150px;width:400px;height:40px;font-size:24px'></form></body>"
    )
    (root / "done.html").write_text("<h1 style='font-size:28px'>Thanks for ordering</h1>")
    seen: list[str] = []
    handler = type("H", (_Site,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", seen, httpd


@pytest.fixture
def form_site(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The form site; the paths it was asked for are its real state."""
    url, seen, httpd = serve_form_site(tmp_path / "form-site")
    try:
        yield url, seen
    finally:
        httpd.shutdown()
        httpd.server_close()


WEB_CO = """\
version: 1
company: web-co
roles:
  clerk: {{title: Clerk, sandbox: web}}
sandboxes:
  web:
    kind: browser
    screen: [800, 600]
    start_url: {site}/index.html
tasks:
  - id: order
    role: clerk
    description: Order the blue mug.
    success: {{check: url_matches, url: "{site}/done.html?q=blue*"}}
"""


@pytest.mark.slow
def test_take_over_and_act_on_a_browser_in_a_worker_process(
    tmp_path: Path, chromium: Any, form_site: tuple[str, list[str]]
) -> None:
    site, seen = form_site
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(WEB_CO.format(site=site), encoding="utf-8")
    run_dir = tmp_path / "run"
    out: list[Any] = []
    with FakeOpenAIServer(SCRIPT) as srv, Console("127.0.0.1:0") as console:

        def go() -> None:
            out.append(
                agentcorp.run(
                    co,
                    sessions=run_dir,
                    observers=[console.observer],
                    no_cache=True,
                    base_url=srv.base_url,
                    actor_model="fake-actor",
                    no_plan=True,
                    help_timeout_s=120,
                    workers=2,
                )
            )

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        page = chromium.new_page(viewport={"width": 1300, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(console.url)
        _take_over_on_help(page, "order")
        _shows(console, "order", "Order", 90)
        # Click the field, type with the page's text box, submit with its Enter button.
        _click_screen(page, "order", 300, 170, (800, 600))
        page.locator(".live-view[data-task=order] input.live-text").fill("blue mug")
        page.locator(".live-view[data-task=order] button.live-type").click()
        page.locator(".live-view[data-task=order] button.live-key[data-keys=enter]").click()
        _wait(lambda: _all_done(console, "order", 3), "the 3 inputs to run", 60)
        # The site got the order (its real state), and the live frame shows its answer.
        _wait(lambda: any(p.startswith("/done.html?q=blue+mug") for p in seen), "the order")
        _shows(console, "order", "ordering")
        page.locator(".card[data-task=order] button.handback").click()
        thread.join(180)
        assert out and out[0].passed, (out and out[0].results[0].reason, srv.requests)
        assert out[0].backend == "local"
        srv.assert_complete()
        assert not errors, errors
    run_audit = "".join(p.read_text() for p in run_dir.glob("audit-*.jsonl"))
    people = [json.loads(x) for x in run_audit.splitlines() if '"person.action"' in x]
    assert [p["action"] for p in people] == ["click", "type", "key"], people
    assert "blue mug" not in run_audit


def test_live_view_bad_inputs_get_clear_replies_and_are_audited(tmp_path: Path) -> None:
    """No lease, a stranger's key, malformed events, a finished task: refused, audited."""
    with Console("127.0.0.1:0") as console:
        base, token = console.server.base_url, console.server.token
        page = {"Authorization": f"Bearer {token}", "X-Agentcorp-Console": "1"}
        agent = {"Authorization": f"Bearer {token}"}
        with console.state.cond:
            console.state.task("t").status = "running"
            console.state.task("gone").status = "pass"
        click = {"kind": "click", "x": 10, "y": 20}

        def send(task: str, body: dict[str, Any], headers: dict[str, str] = page) -> Any:
            return httpx.post(f"{base}/api/input/{task}", json=body, headers=headers, timeout=10)

        # Without the lease: 409.
        r = send("t", {"who": "ann", "key": "x", "event": click})
        assert r.status_code == 409 and "holds no control lease" in r.json()["error"]
        took = httpx.post(
            f"{base}/api/lease/t", json={"op": "take", "who": "ann"}, headers=page, timeout=10
        )
        key = took.json()["key"]
        assert key and key not in json.dumps(console.state.snapshot())
        # Another person (or a page without the taker's key) is refused too.
        assert send("t", {"who": "bob", "key": key, "event": click}).status_code == 409
        assert send("t", {"who": "ann", "key": "guess", "event": click}).status_code == 409
        # Without the page's header: 403; without the token: 401.
        assert send("t", {"who": "ann", "key": key, "event": click}, agent).status_code == 403
        assert send("t", {"who": "ann", "key": key, "event": click}, {}).status_code == 401
        # Malformed events: 400, one line naming what is wrong.
        for event, says in (
            ({"kind": "jump"}, "kind: 'jump' is not one of"),
            ({"kind": "click", "x": -1, "y": 3}, "x: -1 is outside"),
            ({"kind": "type", "text": ""}, "text: needs 1 to"),
            ({"kind": "type", "text": "${secrets.PW}"}, "secrets"),
            ({"kind": "key", "keys": "ctrl+Nope"}, "unknown key 'Nope'"),
            ("click", "needs a JSON object"),
        ):
            r = send("t", {"who": "ann", "key": key, "event": event})
            assert r.status_code == 400, (event, r.text)
            assert says in r.json()["error"] and "\n" not in r.json()["error"]
        # A finished task: 409.
        r = send("gone", {"who": "ann", "key": key, "event": click})
        assert r.status_code == 409 and "not running" in r.json()["error"]
        # Good inputs queue for the agent; typed text is audited by its length only.
        assert send("t", {"who": "ann", "key": key, "event": click}).json()["id"] == 1
        typed = {"kind": "type", "text": "hunter2-password"}
        assert send("t", {"who": "ann", "key": key, "event": typed}).json()["id"] == 2
        # The parked agent's poll gets them in order; a frame that is not a JPEG is refused.
        poll = f"{base}/api/control/t/live?wait=0.1"
        bad = httpx.post(poll, json={"frame": "bm90IGEganBlZw=="}, headers=agent, timeout=10)
        assert bad.status_code == 400 and "not a JPEG" in bad.json()["error"]
        got = httpx.post(poll, json={}, headers=agent, timeout=10).json()
        assert got["held"] and [e["id"] for e in got["events"]] == [1, 2]
        assert got["events"][1]["text"] == "hunter2-password"
        # The agent reports a failed input: the page and the audit say so.
        failed = {"results": [{"id": 2, "ok": False, "error": "type: no text field has the focus"}]}
        httpx.post(poll, json=failed, headers=agent, timeout=10)
        live = httpx.get(f"{base}/api/state", headers=agent, timeout=10).json()["live"]["t"]
        assert live["done"] == 2 and "no text field" in live["error"] and live["parked"]
        # Hand back: the poll says so with the note; later inputs are refused.
        httpx.post(
            f"{base}/api/lease/t",
            json={"op": "release", "who": "ann", "note": "all yours"},
            headers=page,
            timeout=10,
        )
        got = httpx.post(poll, json={}, headers=agent, timeout=10).json()
        assert got["released"] and got["note"] == "all yours" and got["events"] == []
        assert send("t", {"who": "ann", "key": key, "event": click}).status_code == 409
        # A new lease starts a clean view: nothing of the last one's progress or errors.
        again = httpx.post(
            f"{base}/api/lease/t", json={"op": "take", "who": "bob"}, headers=page, timeout=10
        ).json()
        assert again["key"] != key
        live = httpx.get(f"{base}/api/state", headers=agent, timeout=10).json()["live"]["t"]
        assert live["frame"] is None and live["done"] == 0 and live["error"] == ""
        assert send("t", {"who": "bob", "key": again["key"], "event": click}).json()["id"] == 3
    lines = console.state.snapshot()["audit"]
    kinds = [a["kind"] for a in lines]
    assert kinds.count("person.action") == 3 and kinds.count("person.refused") >= 10
    assert "person.failed" in kinds
    assert "hunter2" not in json.dumps(lines)
    typed_entry = [a for a in lines if a["kind"] == "person.action"][1]
    assert typed_entry["action"] == "type" and typed_entry["text_length"] == 16


@pytest.mark.slow
def test_the_agent_side_drains_inputs_and_ends_on_a_lapse_or_a_gone_console(
    tmp_path: Path,
) -> None:
    """The parked agent's loop on a real desktop: inputs sent before it parked still run
    after a hand-back, a lapsed lease ends it, and so does a console that went away."""
    from agentcorp.console.client import ConsoleClient
    from agentcorp.console.live import LiveDriver
    from agentcorp.policy.audit import AuditLog
    from agentcorp.sandbox.apps import AppSpec
    from agentcorp.sandbox.xvfb import XvfbDesktop

    (tmp_path / "notes.txt").write_text("Notes\n", encoding="utf-8")
    home = tmp_path / "home"
    desk = XvfbDesktop(
        screen=(800, 600),
        apps=[AppSpec("editor", ["mousepad", "~/notes.txt"], wait_for_window="notes")],
        files={"~/notes.txt": tmp_path / "notes.txt"},
        home=home,
    )
    audit = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    try:
        with Console("127.0.0.1:0", lease_ttl_s=1.5) as console:
            base, token = console.server.base_url, console.server.token
            page = {"Authorization": f"Bearer {token}", "X-Agentcorp-Console": "1"}
            with console.state.cond:
                console.state.task("t").status = "running"
            client = ConsoleClient(base, token)
            driver = LiveDriver(desk, audit=audit)

            def lease(op: str, **body: Any) -> Any:
                return httpx.post(
                    f"{base}/api/lease/t", json={"op": op, "who": "ann", **body}, headers=page
                ).json()

            # Inputs sent while the agent is still busy, then handed back before it parks.
            key = lease("take")["key"]
            for event in (
                {"kind": "click", "x": 400, "y": 300},
                {"kind": "key", "keys": "ctrl+End"},
                {"kind": "type", "text": "Queued 7"},
                {"kind": "key", "keys": "ctrl+s"},
            ):
                r = httpx.post(
                    f"{base}/api/input/t",
                    json={"who": "ann", "key": key, "event": event},
                    headers=page,
                )
                assert r.status_code == 200, r.text
            lease("release", note="did it myself")
            # The agent's next check runs them first, then tells it to look again.
            assert client.control("t", live=driver) == "did it myself"
            assert "Queued 7" in (home / "notes.txt").read_text(encoding="utf-8")
            assert client.control("t", live=driver) is None  # nothing held, nothing queued
            # A lease whose holder went away (no heartbeat) lapses: the agent goes on.
            lease("take")
            assert "lapsed" in (client.control("t", live=driver) or "")
            # A console that goes away mid-lease ends the live view too.
            lease("take")
            got: list[str | None] = []
            agent = threading.Thread(target=lambda: got.append(client.control("t", live=driver)))
            agent.start()
            _wait(lambda: (console.server.live.snapshot().get("t") or {}).get("parked"), "park")
            console.leases.ttl_s = 60.0
            lease("heartbeat")
        agent.join(30)
        assert got == ["the operator console could not be reached"]
    finally:
        desk.close()
        audit.close()
    entries = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    people = [e for e in entries if e["kind"] == "person.action"]
    assert [p["action"] for p in people] == ["click", "key", "type", "key"]
    assert all(p["ok"] for p in people) and "Queued 7" not in json.dumps(entries)
