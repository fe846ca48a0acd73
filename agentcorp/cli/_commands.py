"""Imports every command module so each registers itself on the app."""

import agentcorp.cli.audit  # registers `agentcorp audit verify`
import agentcorp.cli.cache  # noqa: F401  (agentcorp cache ls|show|clear)
from agentcorp.cli import doctor, fleet, replay, run, validate  # noqa: F401
