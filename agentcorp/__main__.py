"""``python -m agentcorp``."""

from agentcorp.cli import _entry

_entry()
