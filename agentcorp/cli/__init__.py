"""The ``agentcorp`` command line: thin typer commands over library functions.

Exit codes: 0 ok, 1 a task failed, 2 invalid input (spec, flags, recording), 3 environment
error (missing Xvfb/Chromium, unreachable endpoint, bad key, exhausted quota).
"""

from __future__ import annotations

import os
import sys

import click
import typer

from agentcorp.cli import _commands  # noqa: F401  (registers the commands)
from agentcorp.cli._app import app
from agentcorp.errors import AgentcorpError

__all__ = ["app", "main"]

_EXITS = (click.exceptions.Exit, typer.Exit)
_ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error becomes one line on stderr and its exit code, never a traceback.

    ``AGENTCORP_DEBUG=1`` lets unexpected exceptions through with their traceback.
    """
    try:
        result = app(args=argv, prog_name="agentcorp", standalone_mode=False)
    except AgentcorpError as exc:
        print(f"agentcorp: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except _EXITS as exc:
        return int(exc.exit_code)
    except _ABORTS as exc:
        print("agentcorp: aborted", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    except Exception as exc:
        # typer vendors its own copy of click, so its usage errors are not click's classes:
        # recognise them by shape. One line, like every other bad input.
        fmt = getattr(exc, "format_message", None)
        if callable(fmt) and isinstance(getattr(exc, "exit_code", None), int):
            where = getattr(getattr(exc, "ctx", None), "command_path", "agentcorp")
            text = " ".join(str(fmt()).split())
            print(f"{where}: error: {text} (see --help)", file=sys.stderr)
            return 2
        if os.environ.get("AGENTCORP_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"agentcorp: internal error: {type(exc).__name__}: {msg} "
            "(set AGENTCORP_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return result if isinstance(result, int) else 0


def _entry() -> None:
    sys.exit(main())
