"""The implement workflow's config: what the command line asked (`ImplementOptions`), checked
and resolved into what every item uses (`ImplementConfig`: the agent, the repository at --base,
the test command)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentos.agents import Agent, require_agent
from agentos.agents.base import ToolPolicy
from agentos.errors import UsageError
from agentos.workflows.implement import tests_gate
from agentos.workflows.implement.git import Repository
from agentos.workflows.implement.tests_gate import TestCommand
from agentos.workflows.inputs import repo_path

#: `--edits`: how the agent changes files
EDITS_TOOLS = "tools"
EDITS_TEXT = "text"


@dataclass(frozen=True)
class ImplementConfig:
    """What `implement`'s command line asked, checked."""

    repo: Path  # where --repo points (the LLDs are under it)
    implementer: Agent
    force: bool
    repository: Repository
    tests: TestCommand | None
    test_timeout: float = 600.0
    max_iterations: int = 3
    #: EDIT: an agent that can edit does, under agentos's policy; NONE: every agent answers
    #: with files, which agentos writes
    policy: ToolPolicy = ToolPolicy.EDIT
    allow: tuple[str, ...] = ()
    require_red: bool = False
    push: str | None = None

    @property
    def edits_with_tools(self) -> bool:
        return self.policy is ToolPolicy.EDIT and self.implementer.edits_files


@dataclass(frozen=True)
class ImplementOptions:
    """What the command line asked for, by option name (the workflow's options below)."""

    repo: Path
    implementer: str | None
    force: bool = False
    base: str = "HEAD"
    test_cmd: str | None = None
    test_timeout: float = 600.0
    max_iterations: int = 3
    edits: str = EDITS_TOOLS
    allow_tool: tuple[str, ...] = ()
    require_red: bool = False
    push: str | None = None
    api_base: str | None = None


def make_config(**values: Any) -> ImplementConfig:
    """The run's config from the command line's values: checked, the agent found, the
    repository opened at --base, the test command chosen. A usage error names what to fix."""
    asked = ImplementOptions(**values)
    if asked.max_iterations < 1:
        raise UsageError(f"--max-iterations must be at least 1 (got {asked.max_iterations})")
    if asked.test_timeout <= 0:
        raise UsageError(f"--test-timeout must be more than 0 (got {asked.test_timeout:g})")
    agent = require_agent(asked.implementer, "--implementer", "AGENTOS_IMPLEMENTER", asked.api_base)
    folder = repo_path(asked.repo)
    repository = Repository.open(folder, asked.base)
    repository.check_identity()
    if asked.push:
        repository.check_remote(asked.push)
    test_cmd = asked.test_cmd
    if test_cmd is not None and not test_cmd.strip():
        raise UsageError("--test-cmd is empty: give the command that runs the tests")
    tests = TestCommand(test_cmd, "--test-cmd") if test_cmd else tests_gate.detect(repository)
    config = ImplementConfig(
        repo=folder,
        implementer=agent,
        force=asked.force,
        repository=repository,
        tests=tests,
        test_timeout=asked.test_timeout,
        max_iterations=asked.max_iterations,
        policy=ToolPolicy.EDIT if asked.edits == EDITS_TOOLS else ToolPolicy.NONE,
        allow=tuple(asked.allow_tool),
        require_red=asked.require_red,
        push=asked.push,
    )
    if config.require_red and config.tests is None:
        raise UsageError("--require-red needs tests to run: give --test-cmd")
    return config
