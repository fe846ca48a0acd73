"""``agentcorp run`` (filled by the actor work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import ConfigError


@app.command()
def run(
    path: Annotated[Path, typer.Argument(help="A company file, or a folder holding one company.")],
) -> int:
    """Run a company's tasks in dependency order on their sandboxes."""
    raise ConfigError("run is not built yet")
