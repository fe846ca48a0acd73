"""``agentcorp audit verify PATH``: check an audit log's hash chain.

Exit 0 when intact, 1 when tampered with (the first bad line is named), 2 when unreadable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from agentcorp._io import read_bounded
from agentcorp.cli._app import app
from agentcorp.policy.audit import MAX_AUDIT_BYTES
from agentcorp.policy.audit import verify as verify_log

audit_app = typer.Typer(help="Inspect and verify audit logs.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="An audit log (audit.jsonl) to check.")],
    head: Annotated[
        str | None,
        typer.Option(help="The head hash recorded elsewhere; detects entries cut off the end."),
    ] = None,
) -> int:
    """Check every entry's hash and the chain linking them; name the first bad line."""
    problems = verify_log(path, expect_head=head)
    if not problems:
        count = sum(1 for line in read_bounded(path, MAX_AUDIT_BYTES).split(b"\n") if line)
        print(f"{path}: intact ({count} entries)")
        return 0
    first = problems[0]
    print(f"{path}: tampered at line {first.line}: {first.message}", file=sys.stderr)
    for p in problems[1:]:
        print(f"  also {p}", file=sys.stderr)
    return 1
