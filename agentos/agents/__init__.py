"""Agents: who answers a workflow's prompts.

mock                 offline and deterministic; the default for the demo and the tests
cmd:<command line>   any CLI agent: prompt on stdin, answer on stdout
"""

from __future__ import annotations

from agentos.agents.base import Agent, AgentRequest
from agentos.errors import ConfigError

__all__ = ["AGENT_HELP", "Agent", "AgentRequest", "resolve_agent"]

AGENT_HELP = (
    "'mock' (offline, deterministic: the default) or 'cmd:<command line>' (prompt on stdin, "
    "answer on stdout, e.g. 'cmd:claude -p')"
)


def resolve_agent(spec: str, option: str) -> Agent:
    """The agent a spec names; a ConfigError (exit 2) naming the option when it cannot work."""
    spec = spec.strip()
    if spec == "mock":
        from agentos.agents.mock import MockAgent

        return MockAgent()
    if spec.startswith("cmd:"):
        from agentos.agents.command import CommandAgent

        return CommandAgent.from_spec(spec, option)
    raise ConfigError(f"{option} {spec!r}: unknown agent; use {AGENT_HELP}")
