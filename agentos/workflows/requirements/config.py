"""The requirements workflow's config: what the command line asked (`RequirementsOptions`),
checked and resolved into what every item uses (`RequirementsConfig`: the agents, the repository
whose LLD folders are safe to write)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentos.agents import Agent, require_agent, resolve_agent
from agentos.beneath import Beneath, UnsafePath
from agentos.errors import ConfigError, UsageError
from agentos.workflows.inputs import repo_path

#: where an LLD lands: approved, where the implement workflow takes it; a Draft, beside
APPROVED_LLDS = "docs/lld/active"
DRAFTS = "docs/lld/drafts"


@dataclass(frozen=True)
class RequirementsConfig:
    """What `requirements`'s command line asked, checked."""

    repo: Path
    drafter: Agent
    reviewer: Agent
    max_iterations: int
    force: bool
    redo_drafts: bool = False


@dataclass(frozen=True)
class RequirementsOptions:
    """What the command line asked for, by option name (the workflow's options below)."""

    repo: Path
    drafter: str | None
    reviewer: str | None
    max_iterations: int
    force: bool = False
    api_base: str | None = None
    redo_drafts: bool = False


def make_config(**values: Any) -> RequirementsConfig:
    """The run's config from the command line's values: checked, the agents found, the places
    the LLDs go checked for links out of the repository."""
    asked = RequirementsOptions(**values)
    if asked.max_iterations < 1:
        raise UsageError(f"--max-iterations must be at least 1 (got {asked.max_iterations})")
    repo = repo_path(asked.repo)
    try:  # a cloned repository may link docs/lld elsewhere: refused now, not after the agents ran
        with Beneath(repo) as place:
            place.check(APPROVED_LLDS)
            place.check(DRAFTS)
    except UnsafePath as exc:
        raise ConfigError(f"{exc}; agentos writes LLDs only inside --repo") from None
    drafting = require_agent(asked.drafter, "--drafter", "AGENTOS_DRAFTER", asked.api_base)
    reviewing = (
        resolve_agent(asked.reviewer, "--reviewer", asked.api_base) if asked.reviewer else drafting
    )
    return RequirementsConfig(
        repo, drafting, reviewing, asked.max_iterations, asked.force, asked.redo_drafts
    )
