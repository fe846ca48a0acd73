"""``agentcorp replay`` and ``agentcorp report`` (filled by the record work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import ConfigError


@app.command()
def replay(
    session: Annotated[Path, typer.Argument(help="A recorded session folder.")],
) -> int:
    """Replay a recorded session as a test."""
    raise ConfigError("replay is not built yet")


@app.command()
def report(
    session: Annotated[Path, typer.Argument(help="A recorded session folder.")],
) -> int:
    """Write a self-contained HTML trace of a session."""
    raise ConfigError("report is not built yet")
