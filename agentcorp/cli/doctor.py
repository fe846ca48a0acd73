"""``agentcorp doctor``: checks that this machine (or image) can run sandboxes."""

from __future__ import annotations

import shutil
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import SandboxUnavailable

# (program, Debian package, what needs it); the first group is required for any run.
REQUIRED = [
    ("Xvfb", "xvfb", "virtual desktop"),
    ("openbox", "openbox", "window manager"),
    ("tesseract", "tesseract-ocr", "OCR grounding"),
]
OPTIONAL = [
    ("chromium", "chromium", "browser sandboxes"),
    ("gnumeric", "gnumeric", "the sample company's spreadsheet"),
    ("mousepad", "mousepad", "the sample company's text editor"),
    ("x11vnc", "x11vnc", "--live-view"),
    ("websockify", "python3-websockify", "--live-view in a browser"),
]


@app.command()
def doctor(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
) -> int:
    """Check that the programs sandboxes need are installed; exit 3 if a required one is not."""
    missing: list[str] = []
    for group, required in ((REQUIRED, True), (OPTIONAL, False)):
        for program, package, purpose in group:
            path = shutil.which(program)
            if path is None and required:
                missing.append(f"{program} (apt-get install {package}) for {purpose}")
            if path is None and not quiet:
                typer.echo(f"missing  {program:<11} apt-get install {package}  ({purpose})")
            elif not quiet:
                typer.echo(f"ok       {program:<11} {path}")
    if missing:
        raise SandboxUnavailable("missing: " + "; ".join(missing))
    return 0
