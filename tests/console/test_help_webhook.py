"""request_help through a webhook approver's URL, alone and racing the console (real HTTP)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentcorp.console import Console
from agentcorp.console.client import console_client, first_answer, webhook_asker


class _Hook(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(body)
        reply = b'{"answer": "use Zebra"}' if "word" in body["question"] else b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_answers_help_and_wins_over_a_silent_console(hook: str) -> None:
    ask = webhook_asker(hook, 5.0)
    assert ask("t1", "Which word?") == "use Zebra"
    assert _Hook.seen[-1] == {"kind": "help", "task": "t1", "question": "Which word?"}
    assert ask("t1", "Anything else?").startswith("no answer")
    with Console("127.0.0.1:0") as console:
        client = console_client()
        assert client is not None
        both = first_answer(client.asker(1.0), ask)
        assert both("t2", "Which word?") == "use Zebra"  # the hook answered first
        assert both("t2", "Silence?").startswith("no answer")  # neither answered
        asked = [a for a in console.state.snapshot()["audit"] if a["kind"] == "help.asked"]
        assert len(asked) == 2  # the console showed both questions
    assert webhook_asker("http://127.0.0.1:9/none", 2.0)("t", "q").startswith("no answer")


def test_a_lease_lapses_without_heartbeats_and_is_audited() -> None:
    import time

    import httpx

    with Console("127.0.0.1:0", lease_ttl_s=0.5) as console:
        with console.state.cond:
            console.state.task("job").status = "running"
        headers = {
            "Authorization": f"Bearer {console.server.token}",
            "X-Agentcorp-Console": "1",
        }
        base = console.server.base_url
        r = httpx.post(base + "/api/lease/job", json={"op": "take", "who": "ann"}, headers=headers)
        assert r.status_code == 200 and r.json()["leases"]["job"]["holder"] == "console:ann"
        client = console_client()
        assert client is not None
        # The agent's check waits while it is held, and is freed by the lapse, saying so.
        assert "lapsed" in str(client.control("job", wait_s=5.0))
        assert client.control("job") is None
        kinds = [a["kind"] for a in console.state.snapshot()["audit"]]
        assert "lease.lapsed" in kinds and "control.refused" in kinds
        time.sleep(0.01)
        late = httpx.post(
            base + "/api/lease/job", json={"op": "heartbeat", "who": "ann"}, headers=headers
        )
        assert late.status_code == 409 and "holds no control lease" in late.json()["error"]
