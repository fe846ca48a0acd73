"""``agentcorp cache ls|show|clear``: inspect and clear the action cache.

The directory is ``--dir``, else ``$AGENTCORP_CACHE_DIR``, else ``~/.cache/agentcorp/actions``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.grounding.cache import ActionCache, ActionCacheError

cache_app = typer.Typer(help="Inspect and clear the action cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Cache directory (default $AGENTCORP_CACHE_DIR or ~/.cache/agentcorp/actions).",
    ),
]


def _cache(directory: Path | None) -> ActionCache:
    if directory is None:
        env = os.environ.get("AGENTCORP_CACHE_DIR")
        directory = Path(env) if env else Path.home() / ".cache" / "agentcorp" / "actions"
    if directory.exists() and not directory.is_dir():
        raise ActionCacheError(f"--dir {directory}: not a directory")
    return ActionCache(directory)


@cache_app.command("ls")
def cache_ls(directory: DirOption = None) -> int:
    """List cached action sequences: key, number of actions, when stored, task."""
    infos = _cache(directory).entries()
    if not infos:
        typer.echo("no cached action sequences")
        return 0
    for i in infos:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(i.stored_at))
        task = i.meta.get("task", "")
        typer.echo(f"{i.key}  {i.actions:>4} actions  {when}Z  {task}")
    return 0


@cache_app.command("show")
def cache_show(
    key: Annotated[str, typer.Argument(help="The cache key (see `agentcorp cache ls`).")],
    directory: DirOption = None,
) -> int:
    """Print one cached sequence: each action with its anchor and postcondition."""
    cache = _cache(directory)
    entries = cache.lookup(key)
    if entries is None:
        raise ActionCacheError(f"cache key {key!r}: not in {cache.dir}")
    for n, e in enumerate(entries):
        a = e.action
        what = {
            k: v
            for k, v in (
                ("x", a.x),
                ("y", a.y),
                ("text", a.text),
                ("keys", a.keys),
                ("target", a.target),
            )
            if v is not None
        }
        line = f"{n:>3}  {a.kind:<12} {json.dumps(what, ensure_ascii=False)}"
        if e.anchor is not None:
            b = e.anchor.box
            line += f"  anchor={e.anchor.text!r}@[{b.x},{b.y},{b.w},{b.h}]#{e.anchor.phash}"
        if e.post is not None and e.post.changed is not None:
            b = e.post.changed
            line += f"  post=[{b.x},{b.y},{b.w},{b.h}]"
            if e.post.expect_text:
                line += f" expects {e.post.expect_text!r}"
        typer.echo(line)
    return 0


@cache_app.command("clear")
def cache_clear(
    key: Annotated[str | None, typer.Argument(help="One key to remove; all when omitted.")] = None,
    directory: DirOption = None,
) -> int:
    """Remove one cached sequence, or all of them."""
    n = _cache(directory).clear(key)
    typer.echo(f"removed {n} cached sequence{'s' if n != 1 else ''}")
    return 0
