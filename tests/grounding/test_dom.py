"""DomGrounder on a real Chromium page (the browser backend), and the DOM-then-OCR chain."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentcorp.grounding.base import DomLocator, Hint
from agentcorp.grounding.dom import CompositeGrounder, DomGrounder
from agentcorp.grounding.ocr_grounder import OcrGrounder
from agentcorp.grounding.resolve import Ambiguous, NotFound, resolve
from agentcorp.sandbox.browser import BrowserComputer
from agentcorp.types import Box

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body{font-family:DejaVu Sans,sans-serif;margin:24px} label{display:inline-block;width:120px}
.row{margin:10px 0} input{width:220px} td{padding:4px 12px;border:1px solid #ccc}
button.primary{background:#2563eb;color:#fff;border:0;padding:6px 14px}
</style></head><body>
<div class="row"><label for="c">Customer</label><input id="c"></div>
<div class="row"><label for="a">Amount</label><input id="a"></div>
<div class="row"><button class="primary">Save order</button><button>Cancel</button></div>
<table><tr><td>Acme Corp</td><td><a href="#">Edit</a></td></tr>
<tr><td>Globex Ltd</td><td><a href="#">Edit</a></td></tr></table>
<canvas id="cv" width="300" height="40"></canvas>
<script>const g=document.getElementById('cv').getContext('2d');
g.font='18px DejaVu Sans';g.fillText('Painted total',10,28);</script>
</body></html>"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserComputer]:
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(PAGE, encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        with BrowserComputer(
            start_url=f"{base}/index.html", allow_urls=[f"{base}/*"], capture="png"
        ) as b:
            yield b
    finally:
        srv.shutdown()
        srv.server_close()


def test_browser_is_a_dom_locator(browser: BrowserComputer) -> None:
    assert isinstance(browser, DomLocator)
    with pytest.raises(TypeError, match="has no dom_locate"):
        DomGrounder(object())  # type: ignore[arg-type]


def test_button_text_and_label_to_field(browser: BrowserComputer) -> None:
    g = DomGrounder(browser)
    save = resolve(g.locate(None, "Save order"))
    assert not isinstance(save, Ambiguous | NotFound) and save.source == "dom"
    # Clicking the centre really hits the button (checked by the page, not our capture).
    assert (
        browser._page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).textContent", list(save.box.center)
        )
        == "Save order"
    )
    field = resolve(g.locate(None, "Customer", Hint(role="field")))
    assert not isinstance(field, Ambiguous | NotFound)
    assert (
        browser._page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).id", list(field.box.center)
        )
        == "c"
    )


def test_duplicates_are_reported_and_near_resolves_them(browser: BrowserComputer) -> None:
    g = DomGrounder(browser)
    assert isinstance(resolve(g.locate(None, "Edit")), Ambiguous)
    edit = resolve(g.locate(None, "Edit", Hint(near="Globex Ltd")))
    globex = resolve(g.locate(None, "Globex Ltd"))
    assert not isinstance(edit, Ambiguous | NotFound)
    assert not isinstance(globex, Ambiguous | NotFound)
    assert abs(edit.box.center[1] - globex.box.center[1]) < 6
    assert resolve(g.locate(None, "Nothing like this")) == NotFound("")


def test_composite_falls_back_to_ocr_for_painted_text(browser: BrowserComputer) -> None:
    chain = CompositeGrounder(DomGrounder(browser), OcrGrounder())
    frame = browser.screenshot()
    dom_first = chain.locate(frame, "Save order")
    assert dom_first and dom_first[0].source == "dom"
    painted = resolve(chain.locate(frame, "Painted total"))
    assert not isinstance(painted, Ambiguous | NotFound) and painted.source == "ocr"
    canvas = browser._page.evaluate(
        "() => { const r = document.getElementById('cv').getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height]; }"
    )
    assert Box(*(round(v) for v in canvas)).contains(*painted.box.center)
    chain.update(frame, None)  # passes through to the OCR grounder
    with pytest.raises(ValueError, match="at least one"):
        CompositeGrounder()
