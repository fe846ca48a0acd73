"""``agentcorp skills list | show TASK | forget [TASK]``: what agentcorp learned, per task.

The folder is ``--dir``, else ``$AGENTCORP_SKILLS_DIR``, else ``.agentcorp/skills`` in the
company folder (``--company``, default the current folder). The logic lives in
``agentcorp.grounding.cache``; this only parses flags and prints.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import ConfigError
from agentcorp.grounding.cache import ActionCache, ActionCacheError, default_skills_dir, describe

skills_app = typer.Typer(help="List, show and forget learned skills.", no_args_is_help=True)
app.add_typer(skills_app, name="skills")

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Skills folder (default $AGENTCORP_SKILLS_DIR or COMPANY/.agentcorp/skills)."
    ),
]
CompanyOption = Annotated[
    Path,
    typer.Option("--company", help="The company folder or file whose skills to use."),
]


def _store(directory: Path | None, company: Path) -> ActionCache:
    if directory is None:
        base = company.parent if company.is_file() else company
        directory = default_skills_dir(base, os.environ)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--dir {directory}: not a folder")
    return ActionCache(directory)


@skills_app.command("list")
def skills_list(directory: DirOption = None, company: CompanyOption = Path(".")) -> int:
    """One line per skill: task, actions, branches, when learned, the inputs it binds."""
    infos = _store(directory, company).entries()
    if not infos:
        typer.echo("no skills")
        return 0
    for i in infos:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(i.stored_at))
        bound = ", ".join(i.meta.get("inputs_bound", [])) or "-"
        task = i.meta.get("task", "?")
        typer.echo(
            f"{task}  {i.actions} actions  {i.branches} branch{'es' if i.branches != 1 else ''}"
            f"  inputs: {bound}  {when}Z  {i.key}"
        )
    return 0


@skills_app.command("show")
def skills_show(
    task: Annotated[str, typer.Argument(help="The task id (or a skill key from `list`).")],
    directory: DirOption = None,
    company: CompanyOption = Path("."),
) -> int:
    """Every branch and action of a task's skills, with anchors and postconditions."""
    store = _store(directory, company)
    infos = [i for i in store.entries() if task in (i.meta.get("task"), i.key)]
    if not infos:
        raise ActionCacheError(f"skills: no skill for {task!r} in {store.dir}")
    for info in infos:
        skill = store.load(info.key)
        if skill is None:
            continue
        typer.echo(f"{info.meta.get('task', '?')} ({info.key}):")
        for line in describe(skill):
            typer.echo(f"  {line}")
    return 0


@skills_app.command("forget")
def skills_forget(
    task: Annotated[str | None, typer.Argument(help="The task; every skill when omitted.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before forgetting all.")] = False,
    directory: DirOption = None,
    company: CompanyOption = Path("."),
) -> int:
    """Forget a task's skills (it is learned again on its next pass), or every skill."""
    store = _store(directory, company)
    asked = f"Forget every skill in {store.dir}?"
    if task is None and not yes and not typer.confirm(asked, default=False, err=True):
        typer.echo("nothing forgotten")
        return 1
    n = store.forget(task)
    typer.echo(f"forgot {n} skill{'s' if n != 1 else ''}")
    return 0
