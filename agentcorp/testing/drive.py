"""Run a step generator (the actor loop, the planner, a task) to its end in a test."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

__all__ = ["drive"]

Y = TypeVar("Y")
R = TypeVar("R")


def drive(gen: Generator[Y, None, R]) -> tuple[list[Y], R]:
    """Every record ``gen`` yields, in order, and the value it returned."""
    items: list[Y] = []
    while True:
        try:
            items.append(next(gen))
        except StopIteration as stop:
            return items, stop.value
