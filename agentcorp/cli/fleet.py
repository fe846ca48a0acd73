"""``agentcorp fleet ...`` (filled by the fleet work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import fleet_app
from agentcorp.errors import ConfigError


@fleet_app.command("run")
def fleet_run(
    path: Annotated[Path, typer.Argument(help="A company file, or a folder holding one company.")],
) -> int:
    """Run a company on a pool of workers, resumable from its ledger."""
    raise ConfigError("fleet run is not built yet")


@fleet_app.command("status")
def fleet_status() -> int:
    """Show the ledger of a fleet run."""
    raise ConfigError("fleet status is not built yet")
