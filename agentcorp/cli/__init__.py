"""The ``agentcorp`` command line: thin typer commands over library functions.

Exit codes: 0 ok, 1 a task failed, 2 invalid input (spec, flags, recording), 3 environment
error (missing Xvfb/Chromium, unreachable endpoint, bad key, exhausted quota).
"""

from __future__ import annotations

import sys

import click

from agentcorp.cli import _commands  # noqa: F401  (registers the commands)
from agentcorp.cli._app import app
from agentcorp.errors import AgentcorpError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every ``AgentcorpError`` becomes one line on stderr and its exit code."""
    try:
        result = app(args=argv, prog_name="agentcorp", standalone_mode=False)
    except AgentcorpError as exc:
        print(f"agentcorp: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Abort:
        print("agentcorp: aborted", file=sys.stderr)
        return 130
    except click.exceptions.ClickException as exc:
        exc.show()
        return 2 if exc.exit_code == 2 else exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0


def _entry() -> None:
    sys.exit(main())
