"""Agents: who answers a workflow's prompts.

mock                 offline and deterministic: the demo's and the tests' (never a default)
cmd:<command line>   any CLI agent: prompt on stdin, answer on stdout
openai:<model>       an OpenAI-compatible HTTP API, a key per call from the governor
claude:<model>       Claude Code (claude -p), its refusals and costs read from its JSON
gemini:<model>       Gemini CLI (gemini), the same
llm:<model>          Simon Willison's llm, with any of its plugins' models
"""

from __future__ import annotations

from agentos.agents.base import Agent, AgentRequest
from agentos.errors import ConfigError, UsageError
from agentos.item.workflow import OnResume, Option
from agentos.usage.prices import ModelRef

__all__ = [
    "AGENT_HELP",
    "API_BASE_OPTION",
    "Agent",
    "AgentRequest",
    "agent_models",
    "keyless_agents",
    "require_agent",
    "resolve_agent",
]

AGENT_HELP = (
    "'claude:<model>' (Claude Code), "
    "'gemini:<model>' (Gemini CLI), 'llm:<model>' (llm and its plugins), 'cmd:<command line>' "
    "(any other CLI: prompt on stdin, answer on stdout), 'openai:<model>' (an "
    "OpenAI-compatible API at --api-base; needs keys) or 'mock' (offline and "
    "deterministic, for trying agentos)"
)

#: what to name when no agent is given
_CHOICES = "claude:<model>, gemini:<model>, llm:<model>, openai:<model>, cmd:<command> or mock"


def require_agent(spec: str | None, option: str, envvar: str, api_base: str | None = None) -> Agent:
    """The agent `spec` names; none given is a usage error (exit 2) that names the choices. No
    agent is a default: a forgotten option must not put an offline mock's work in a user's
    repository."""
    if spec is None or not spec.strip():
        raise UsageError(
            f"choose the agent with {option} SPEC (or {envvar}): {_CHOICES} (the offline "
            "demo agent)"
        )
    return resolve_agent(spec, option, api_base)


def resolve_agent(spec: str, option: str, api_base: str | None = None) -> Agent:
    """The agent a spec names; a ConfigError (exit 2) naming the option when it cannot work."""
    spec = spec.strip()
    if spec == "mock":
        from agentos.agents.mock import MockAgent

        return MockAgent()
    if spec.startswith("cmd:"):
        from agentos.agents.cmd import CommandAgent

        return CommandAgent.from_spec(spec, option)
    if spec.startswith("openai:"):
        from agentos.agents.openai import OpenAIAgent

        return OpenAIAgent.from_spec(spec, option, api_base)
    if spec.startswith("claude:"):
        from agentos.agents.claude import ClaudeAgent

        return ClaudeAgent.from_spec(spec, option)
    if spec.startswith("gemini:"):
        from agentos.agents.gemini import GeminiAgent

        return GeminiAgent.from_spec(spec, option)
    if spec.startswith("llm:"):
        from agentos.agents.llm import LlmAgent

        return LlmAgent.from_spec(spec, option)
    raise ConfigError(f"{option} {spec!r}: unknown agent; use {AGENT_HELP}")


def keyless_agents(agents: list[Agent]) -> str | None:
    """A reason to refuse the run before it starts, if an agent needs a key and none is given."""
    needing = sorted({a.spec for a in agents if a.needs_credential})
    return f"{', '.join(needing)} needs an API key" if needing else None


def agent_models(agents: list[Agent]) -> list[ModelRef | None]:
    """The models the agents call, as known before the run (see Agent.models)."""
    return [ref for agent in agents for ref in agent.models()]


def key_mode(agents: list[Agent]) -> str:
    """ "call" when every agent takes its keys per call, else "item" (each attempt leases one)."""
    return "call" if agents and all(a.keys_per_call for a in agents) else "item"


API_BASE_OPTION = Option(
    ("--api-base",),
    "api_base",
    "Base URL of the OpenAI-compatible API for openai: agents "
    "[default: https://api.openai.com/v1].",
    metavar="URL",
    # where the agent's API answers (a proxy that moved), not which agent: a resume may change it
    on_resume=OnResume.CHANGE,
)
