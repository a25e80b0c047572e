"""The implement workflow: approved LLDs (`docs/lld/active/*.md`) → one branch per LLD with a
commit whose tests pass, one item per LLD.

    base (--base, default HEAD)                the user's checkout is never touched
      └─ worktree <top>/.agentos/worktrees/<id> on branch agentos/<id>     (made in the worker)
           agent edits there (its tools, under a stated policy) or answers with files (text)
           tests (--test-cmd, or detected) ── fail → their tail to the agent, ≤ --max-iterations
           commit (trailers: LLD, run, agent, attempts, cost, tests) ── --push REMOTE
      done: worktree removed, branch kept      failed: worktree kept for a look

The workflow is its two callbacks, `collect_items` and `execute_item`; the shared runner does the
rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agentos.agents import (
    AGENT_HELP,
    API_BASE_OPTION,
    agent_models,
    key_mode,
    keyless_agents,
)
from agentos.item.workflow import Item, OnResume, Option, Workflow
from agentos.workflows.implement.collect import collect_items
from agentos.workflows.implement.config import (
    EDITS_TEXT,
    EDITS_TOOLS,
    ImplementConfig,
    make_config,
)
from agentos.workflows.implement.execute import execute_item
from agentos.workflows.implement.git import WORKTREES

__all__ = ["WORKFLOW", "ImplementConfig", "execute_item"]

log = logging.getLogger("agentos")


def say_plan(config: ImplementConfig) -> None:
    """What a run with items to do will do, said once before it starts."""
    repository = config.repository
    base = f"{repository.base_name} ({repository.base[:10]})"
    if repository.dirty:
        log.info(
            "%s has uncommitted changes; the branches start from %s without them",
            repository.top,
            base,
        )
    if config.tests is None:
        log.warning(
            "no test command found (pytest, npm or make test): items will end 'done "
            "(unverified)'; --test-cmd CMD gives the repository's"
        )
    else:
        log.info("tests: %s (%s)", config.tests.line, config.tests.source)
    how = (
        f"{config.implementer.spec} edits with its tools (files in its worktree, and only "
        "the test command in its shell)"
        if config.edits_with_tools
        else f"{config.implementer.spec} answers with files, agentos writes them"
    )
    log.debug("branches from %s in %s; %s", base, WORKTREES, how)


def announced(config: ImplementConfig, items: list[Item]) -> list[Item]:
    if items:
        say_plan(config)
    return items


WORKFLOW = Workflow(
    name="implement",
    summary="Implement approved LLDs (<repo>/docs/lld/active/*.md): one branch per LLD "
    "(agentos/<id>), made in its own git worktree, committed once the repository's tests pass.",
    epilog="Agents: "
    + AGENT_HELP
    + ". With --edits tools (the default), Claude Code and Gemini CLI edit their worktree "
    "with their own tools: files under it, and no shell command but the test command "
    "(--allow-tool adds Claude Code permission rules). HTTP and llm agents, and every agent "
    "with --edits text, answer with '### path' + fenced block pairs, which agentos writes into "
    "the worktree. Done items' worktrees are removed, failed ones are kept for a look; the "
    "branches stay for review and merge.",
    collect_items=lambda config: announced(config, collect_items(config)),
    execute_item=execute_item,
    options=(
        Option(("--repo",), "repo", "The repository to work in.", kind="path", default=Path(".")),
        Option(
            ("--implementer",),
            "implementer",
            "Agent that writes the code (required; see below).",
            kind="agent",
            metavar="SPEC",
            envvar="AGENTOS_IMPLEMENTER",
        ),
        Option(
            ("--base",),
            "base",
            "Commit the branches start from (uncommitted changes are not included).",
            default="HEAD",
            metavar="REF",
        ),
        Option(
            ("--test-cmd",),
            "test_cmd",
            "Shell command that runs the repository's tests in a worktree [default: found: "
            "pytest, npm test or make test].",
            metavar="CMD",
        ),
        Option(
            ("--test-timeout",),
            "test_timeout",
            "Time limit of one run of the tests.",
            kind="float",
            default=600.0,
            metavar="SECONDS",
            on_resume=OnResume.CHANGE,
        ),
        Option(
            ("--max-iterations",),
            "max_iterations",
            "Agent/test rounds per attempt: failing tests go back to the agent.",
            kind="int",
            default=3,
            metavar="N",
            on_resume=OnResume.CHANGE,
        ),
        Option(
            ("--edits",),
            "edits",
            "How the agent changes files: 'tools' (agents with tools edit their worktree under "
            "agentos's permission policy) or 'text' (every agent answers with files).",
            kind="choice",
            choices=(EDITS_TOOLS, EDITS_TEXT),
            default=EDITS_TOOLS,
        ),
        Option(
            ("--allow-tool",),
            "allow_tool",
            "Another Claude Code permission rule for editing agents, e.g. 'Bash(npm install:*)' "
            "(repeatable).",
            metavar="RULE",
            multiple=True,
            default=(),
        ),
        Option(
            ("--require-red",),
            "require_red",
            "New test files must fail on the base (red) before they pass on the branch (green).",
            kind="flag",
        ),
        Option(
            ("--push",),
            "push",
            "Push each verified branch to this remote.",
            metavar="REMOTE",
            on_resume=OnResume.CHANGE,
        ),
        Option(
            ("--force",),
            "force",
            "Implement LLDs whose branch is verified again, on a fresh branch.",
            kind="flag",
        ),
        API_BASE_OPTION,
    ),
    make_config=make_config,
    workspace=lambda config: config.repo,
    key_mode=lambda config: key_mode([config.implementer]),
    needs_keys=lambda config: keyless_agents([config.implementer]),
    models=lambda config: agent_models([config.implementer]),
    # the worktrees, and the repository's own git folder (branches, objects, worktree records)
    outputs=lambda config: [
        config.repository.top / WORKTREES,
        config.repository.git_dir,
    ],
)

__all__ = ["WORKFLOW", "ImplementConfig", "collect_items", "execute_item"]
