from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from agentcorp.cli import main
from agentcorp.record.report import render_html, trace_steps, write_animation
from agentcorp.record.session import open_session
from tests.record._app import Recorded

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_report_is_self_contained(recorded: Recorded, tmp_path: Path) -> None:
    s = open_session(recorded.folder)
    page = render_html(s)
    # nothing that could reach a network: no http(s) URLs in src/href, frames are data: URIs
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert re.search(r"data:image/(png|jpeg);base64,", page)
    assert "default-src &#39;none&#39;" in page  # the CSP, entity-escaped in its attribute
    # the recorded reasoning and tool call are in the page
    assert "I will focus the name field." in page
    assert "click({" in page


def test_trace_in_headless_chromium(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.html"
    gif = tmp_path / "trace.gif"
    assert main(["report", str(recorded.folder), "-o", str(out), "--gif", str(gif)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out), str(gif)]
    s = open_session(recorded.folder)
    n_steps = len(trace_steps(s))
    assert n_steps == 4  # click, type, click, done (done shows the final screen)
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_selector("#timeline button")
            assert page.locator("#timeline button").count() == n_steps
            assert page.locator("#pos").inner_text() == f"1 / {n_steps}"
            first = page.get_attribute("#frame", "data-frame")
            assert first and page.evaluate("document.getElementById('frame').naturalWidth") > 0
            assert page.locator("#overlay circle").count() >= 1  # the click is drawn
            page.keyboard.press("ArrowRight")
            assert page.locator("#pos").inner_text() == f"2 / {n_steps}"
            second = page.get_attribute("#frame", "data-frame")
            assert second and second != first
            assert "type: Alice" in page.locator("#overlay").inner_html()
            page.keyboard.press("ArrowLeft")
            assert page.get_attribute("#frame", "data-frame") == first
            page.keyboard.press("End")
            assert page.locator("#pos").inner_text() == f"{n_steps} / {n_steps}"
            assert "pass" in page.locator("#checks").inner_text()
            info = page.locator("#timeline").evaluate(
                "() => { document.querySelector('#timeline button').click();"
                " return document.getElementById('info').innerText; }"
            )
            assert "1200 in / 20 out" in info
            # Where the action's time went, phase by phase.
            assert re.search(
                r"phases\s+act [\d.]+ ms · settle [\d.]+ ms · capture [\d.]+ ms · encode", info
            )
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    with Image.open(gif) as anim:
        assert anim.n_frames == n_steps
        assert anim.size[0] == 640


def test_report_of_an_incomplete_session_warns(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (recorded.folder / "manifest.json").unlink()
    s = open_session(recorded.folder)
    (recorded.folder / "blobs" / s.observations[-1].refs["image"]).unlink()  # never written
    assert (
        main(
            [
                "report",
                str(recorded.folder),
                "-o",
                str(tmp_path / "t.html"),
                "--gif",
                str(tmp_path / "t.gif"),
            ]
        )
        == 0
    )
    assert "manifest.json" in capsys.readouterr().err
    page = (tmp_path / "t.html").read_text()
    assert "incomplete" in page and "frame not shown" in page


def test_animation_needs_a_known_suffix(recorded: Recorded, tmp_path: Path) -> None:
    s = open_session(recorded.folder)
    webp = write_animation(s, tmp_path / "t.webp")
    with Image.open(webp) as anim:
        assert anim.n_frames == len(trace_steps(s))
    assert (
        main(
            [
                "report",
                str(recorded.folder),
                "-o",
                str(tmp_path / "x.html"),
                "--gif",
                str(tmp_path / "t.mp4"),
            ]
        )
        == 2
    )


def test_report_escapes_hostile_text(tmp_path: Path) -> None:
    from agentcorp.record.recorder import SessionRecorder
    from agentcorp.types import Action, ActionStep

    rec = SessionRecorder(
        tmp_path / "s",
        task_id="</script><script>alert(1)</script>",
        spec_hash="h",
        sandbox_info={},
        models={},
    )
    rec.write(
        ActionStep(
            1,
            0.0,
            Action("type", text="</script><img src=x onerror=alert(1)>"),
            "model",
            reasoning="<!-- -->",
        )
    )
    rec.finish("pass")
    page = render_html(open_session(tmp_path / "s"))
    assert "<img src=x" not in page and "</script><script>alert" not in page
    data = page.split("id='trace-data'>", 1)[1].split("</script>", 1)[0]
    parsed = json.loads(data)
    assert parsed["steps"][0]["action"]["text"] == "</script><img src=x onerror=alert(1)>"
    assert parsed["task"].startswith("</script>")


def test_report_bad_inputs_are_one_line(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "t.html")]) == 2
    assert main(["report", str(recorded.folder), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "no such session folder" in err[0] and "is a folder" in err[1]
