"""``agentcorp doctor [PATH]``: checks that this machine (or image) can run sandboxes.

The checks live in ``agentcorp.sandbox.doctor``; this command only loads the company, prints
one line per finding and exits 3 when a required piece is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import SandboxUnavailable


@app.command()
def doctor(
    path: Annotated[
        Path | None,
        typer.Argument(help="A company file or folder: also check the programs it names."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
) -> int:
    """Check the programs and models sandboxes need; exit 3 if a required one is missing."""
    from agentcorp.sandbox.doctor import diagnose, missing_required
    from agentcorp.spec import load_company

    findings = diagnose(load_company(path) if path is not None else None)
    for f in findings:
        if not quiet or not f.ok:
            typer.echo(f.line())
    missing = missing_required(findings)
    if missing:
        raise SandboxUnavailable(
            "missing: " + "; ".join(f"{f.what} ({f.fix}) for {f.purpose}" for f in missing)
        )
    return 0
