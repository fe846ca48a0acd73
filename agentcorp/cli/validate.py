"""``agentcorp validate`` and ``agentcorp schema`` (filled by the spec work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import ConfigError


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Company files or folders to validate.")],
) -> int:
    """Validate company/task YAML files; print every error; exit 2 if any."""
    raise ConfigError("validate is not built yet")


@app.command()
def schema() -> int:
    """Print the JSON Schema of the company spec on stdout."""
    raise ConfigError("schema is not built yet")
