"""Imports every command module so each registers itself on the app."""

import agentcorp.cli.audit  # registers `agentcorp audit verify`
import agentcorp.cli.skills  # noqa: F401  (agentcorp skills list|show|forget)
from agentcorp.cli import doctor, fleet, replay, run, validate  # noqa: F401
