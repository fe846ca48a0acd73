"""``agentcorp validate`` and ``agentcorp schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import ConfigError, SpecError
from agentcorp.spec import DEFAULT_MAX_BYTES, company_json_schema, validate_paths

__all__ = ["schema", "validate"]


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Company files or folders to validate.")
    ] = None,
    max_bytes: Annotated[
        str,
        typer.Option("--max-bytes", help="Largest spec file accepted, in bytes."),
    ] = str(DEFAULT_MAX_BYTES),
) -> int:
    """Validate company/task YAML files; print every error and warning; exit 2 on errors."""
    # Arguments are checked here rather than by typer so a bad one is one line and exit 2
    # however the command is invoked (typer's own errors escape agentcorp.cli.main).
    if not paths:
        typer.echo("agentcorp: error: validate needs at least one PATH (file or folder)", err=True)
        raise typer.Exit(code=ConfigError.exit_code)
    if not max_bytes.isdigit() or int(max_bytes) < 1:
        typer.echo(
            f"agentcorp: error: --max-bytes must be a positive whole number, got {max_bytes!r}",
            err=True,
        )
        raise typer.Exit(code=ConfigError.exit_code)
    issues = validate_paths(paths, max_bytes=int(max_bytes))
    for issue in issues:
        typer.echo(str(issue), err=True)
    errors = [i for i in issues if not i.warning]
    warned = len(issues) - len(errors)
    also = f" and {_count(warned, 'warning')}" if warned else ""
    if errors:
        files = len({i.file for i in errors})
        typer.echo(
            f"agentcorp: {_count(len(errors), 'error')}{also} in {_count(files, 'file')}",
            err=True,
        )
        raise typer.Exit(code=SpecError.exit_code)
    # Warnings name what will not work as written, but the spec itself is valid.
    also = f" ({_count(warned, 'warning')})" if warned else ""
    typer.echo(f"agentcorp: ok: {', '.join(str(p) for p in paths)}{also}", err=True)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@app.command()
def schema() -> int:
    """Print the JSON Schema of the company spec on stdout."""
    typer.echo(json.dumps(company_json_schema(), indent=2, sort_keys=False))
    return 0
