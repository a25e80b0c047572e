"""The implement workflow: approved LLDs (`docs/lld/active/*.md`) → implementation bundles
(`docs/implementations/<id>/`: the files the agent wrote, and a REPORT.md), one item per LLD.

The workflow is its two callbacks, `collect_items` and `execute_item`; the shared runner does the
rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentos.agents import (
    AGENT_HELP,
    API_BASE_OPTION,
    Agent,
    agent_models,
    key_mode,
    keyless_agents,
    resolve_agent,
)
from agentos.workflows.implement.collect import collect_items
from agentos.workflows.implement.execute import execute_item
from agentos.workflows.inputs import repo_path
from agentos.workflows.items import Option, Workflow


@dataclass(frozen=True)
class ImplementConfig:
    repo: Path
    implementer: Agent
    force: bool


def make_config(
    repo: Path, implementer: str, force: bool, api_base: str | None = None
) -> ImplementConfig:
    agent = resolve_agent(implementer, "--implementer", api_base)
    return ImplementConfig(repo_path(repo), agent, force)


WORKFLOW = Workflow(
    name="implement",
    summary="Turn approved LLDs (<repo>/docs/lld/active/*.md) into implementation bundles "
    "(<repo>/docs/implementations/<id>/).",
    epilog="Agents: " + AGENT_HELP + ". The agent answers with files as '### path' + fenced "
    "block pairs; unsafe paths fail the item and nothing is written.",
    collect_items=collect_items,
    execute_item=execute_item,
    options=(
        Option(("--repo",), "repo", "The repository to work in.", kind="path", default=Path(".")),
        Option(
            ("--implementer",),
            "implementer",
            "Agent that writes the code.",
            kind="agent",
            default="mock",
            metavar="SPEC",
        ),
        Option(("--force",), "force", "Redo LLDs that already have a bundle.", kind="flag"),
        API_BASE_OPTION,
    ),
    make_config=make_config,
    workspace=lambda config: config.repo,
    key_mode=lambda config: key_mode([config.implementer]),
    needs_keys=lambda config: keyless_agents([config.implementer]),
    models=lambda config: agent_models([config.implementer]),
)

__all__ = ["WORKFLOW", "ImplementConfig", "collect_items", "execute_item"]
