"""The typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="agentcorp",
    help="Run an AI-only company on computers: validate, run, replay and report task YAMLs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
fleet_app = typer.Typer(
    help="Run a company across worker processes or a Ray cluster.", no_args_is_help=True
)
app.add_typer(fleet_app, name="fleet")
