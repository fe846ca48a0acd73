"""The browser backend against the real back office (Django admin over SQLite)."""

from __future__ import annotations

import socket
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcorp.errors import PolicyViolation, SandboxError, SandboxUnavailable
from agentcorp.sandbox.browser import BrowserComputer, url_allowed
from agentcorp.sandbox.services import ServiceSpec
from agentcorp.types import Box

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrowserComputer, Path, str]]:
    db = tmp_path_factory.mktemp("backoffice") / "db.sqlite3"
    port = _port()
    base = f"http://127.0.0.1:{port}"
    spec = ServiceSpec(
        "backoffice",
        [
            sys.executable,
            str(ROOT / "sandboxes/backoffice/serve.py"),
            "--port",
            str(port),
            "--db",
            str(db),
        ],
        env={"BACKOFFICE_ADMIN_PASSWORD": "${secrets.backoffice_admin}"},
        ready_url=f"{base}/admin/login/",
    )
    with BrowserComputer(
        start_url=f"{base}/admin/",
        allow_urls=[f"{base}/*"],
        services=[spec],
        secrets={"backoffice_admin": "s3cret-€-pw"},
    ) as browser:
        yield browser, db, base


def _field(b: BrowserComputer, label: str) -> Box:
    found = b.dom_locate(label, "field")
    assert found, f"no field {label!r}"
    return found[0][0]


def _login(b: BrowserComputer, base: str) -> None:
    if "/login/" not in b.url:
        return
    b.click(*_field(b, "Username").center)
    b.type("admin")
    pw = _field(b, "Password")
    b.click(*pw.center)
    focused = b.focused_field()
    assert focused is not None and focused[1] is True  # the safety layer sees a password field
    b.type("${secrets.backoffice_admin}\n")
    b.settle(timeout=5.0)
    assert b.url == f"{base}/admin/", b.url


def test_fill_and_submit_a_form_lands_in_the_database(
    office: tuple[BrowserComputer, Path, str],
) -> None:
    b, db, base = office
    _login(b, base)
    b.goto(f"{base}/admin/crm/customer/add/")
    for label, value in (
        ("Name", "Zoë Ångström"),
        ("Email", "zoe@example.org"),
        ("Company", "Fjord & Co"),
    ):
        b.click(*_field(b, label).center)
        b.type(value)
    save = [box for box, text in b.dom_locate("Save", "button") if text == "Save"]
    assert save, b.dom_locate("Save", "button")
    before = b.screenshot()
    b.click(*save[0].center)
    result = b.settle(timeout=5.0, since=before)
    assert result.changed is not None
    assert b.url.endswith("/admin/crm/customer/"), b.url
    rows = (
        sqlite3.connect(db)
        .execute(
            "select name, email, company from crm_customer where email = ?", ("zoe@example.org",)
        )
        .fetchall()
    )
    assert rows == [("Zoë Ångström", "zoe@example.org", "Fjord & Co")]


def test_navigation_outside_allow_urls_is_blocked(
    office: tuple[BrowserComputer, Path, str],
) -> None:
    b, _, base = office
    with pytest.raises(PolicyViolation, match=r"navigation to http://example\.org/ blocked"):
        b.goto("http://example.org/")
    assert b.url.startswith(base)
    # A link the page itself follows is stopped by the route handler on the request.
    b._page.set_content('<a id="out" href="http://example.org/x" style="font-size:40px">out</a>')
    (box, _), *_ = b.dom_locate("out", "link")
    b.click(*box.center)
    with pytest.raises(PolicyViolation, match=r"example\.org/x blocked"):
        b.settle(timeout=3.0)
    assert "http://example.org/x" in b.blocked
    # Sub-resource requests are refused too, not only navigations.
    b.goto(f"{base}/admin/")
    status = b._page.evaluate(
        "() => fetch('http://127.0.0.2:9/leak').then(() => 'sent', () => 'refused')"
    )
    assert status == "refused"
    assert any(u.startswith("http://127.0.0.2:9/") for u in b.blocked)


def test_capture_keys_and_regions(office: tuple[BrowserComputer, Path, str]) -> None:
    b, _, base = office
    b.goto(f"{base}/admin/")
    frame = b.screenshot()
    assert frame.size == (1280, 800) == b.size
    part = b.screenshot(Box(100, 50, 200, 120))
    assert part.size == (200, 120) and part.origin == (100, 50)
    with pytest.raises(SandboxError, match="not inside"):
        b.screenshot(Box(1200, 0, 100, 10))
    with pytest.raises(SandboxError, match="outside"):
        b.click(1280, 5)
    with pytest.raises(SandboxError, match="malformed key combo"):
        b.key("ctrl++shift")
    with pytest.raises(SandboxError, match="unknown secret 'nope'"):
        b.type("${secrets.nope}")
    with pytest.raises(SandboxError, match="unknown role"):
        b.dom_locate("x", "widget")
    b.goto(f"{base}/admin/crm/invoice/")
    b.back()
    assert b.url == f"{base}/admin/"


def test_url_globs() -> None:
    allow = ["http://127.0.0.1:8765/*"]
    assert url_allowed("http://127.0.0.1:8765/admin/", allow)
    assert not url_allowed("http://127.0.0.1:8766/admin/", allow)
    assert not url_allowed("https://evil.example/http://127.0.0.1:8765/", allow)
    assert url_allowed("about:blank", allow)
    assert url_allowed("https://anything/", [])


def test_missing_chromium_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match=r"apt-get install chromium") as info:
        BrowserComputer(chromium=str(tmp_path / "no-chromium"))
    assert info.value.exit_code == 3
