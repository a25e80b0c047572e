"""The requirements workflow: issue briefs (`ideas/active/*.md`) → low-level designs, drafted and
reviewed by agents, one item per brief: an approved LLD lands in `docs/lld/active/<slug>.md`,
where the implement workflow takes it; one still a Draft in `docs/lld/drafts/<slug>.md`. The
agents may read the repository (a read-only tool policy) and change nothing in it.

The workflow is its two callbacks, `collect_items` and `execute_item`; the shared runner does the
rest (options, dry-run, parallel workers, keys, output, Ctrl+C, summary).
"""

from __future__ import annotations

from pathlib import Path

from agentos.agents import (
    AGENT_HELP,
    API_BASE_OPTION,
    agent_models,
    key_mode,
    keyless_agents,
)
from agentos.item.workflow import OnResume, Option, Workflow
from agentos.workflows.requirements.collect import collect_items
from agentos.workflows.requirements.config import (
    APPROVED_LLDS,
    DRAFTS,
    RequirementsConfig,
    make_config,
)
from agentos.workflows.requirements.execute import execute_item

__all__ = ["WORKFLOW", "RequirementsConfig", "execute_item"]


WORKFLOW = Workflow(
    name="requirements",
    summary="Turn issue briefs (<repo>/ideas/active/*.md) into reviewed low-level designs: "
    "approved ones in <repo>/docs/lld/active/<slug>.md (where implement takes them), Drafts in "
    "<repo>/docs/lld/drafts/<slug>.md.",
    epilog="Agents: " + AGENT_HELP + ". Each brief is drafted, reviewed (APPROVED or REVISE on "
    "the first line, a checked '[x] APPROVED' box or a 'Verdict: ...' line) and redrafted up to "
    "--max-iterations times; an LLD still not approved is written as a Draft, and the summary "
    "says so. Every prompt, draft and review is kept under <run-dir>/items/<id>/.",
    collect_items=collect_items,
    execute_item=execute_item,
    options=(
        Option(("--repo",), "repo", "The repository to work in.", kind="path", default=Path(".")),
        Option(
            ("--drafter",),
            "drafter",
            "Agent that writes the LLD (required; see below).",
            kind="agent",
            metavar="SPEC",
            envvar="AGENTOS_DRAFTER",
        ),
        Option(
            ("--reviewer",),
            "reviewer",
            "Agent that reviews it [default: the drafter].",
            kind="agent",
            metavar="SPEC",
        ),
        Option(
            ("--max-iterations",),
            "max_iterations",
            "Draft/review rounds per brief.",
            kind="int",
            default=3,
            metavar="N",
            on_resume=OnResume.CHANGE,
        ),
        Option(("--force",), "force", "Redo briefs that already have an LLD.", kind="flag"),
        Option(
            ("--redo-drafts",),
            "redo_drafts",
            "Redo briefs whose LLD is still a Draft (not the approved ones).",
            kind="flag",
        ),
        API_BASE_OPTION,
    ),
    make_config=make_config,
    workspace=lambda config: config.repo,
    outputs=lambda config: [config.repo / APPROVED_LLDS, config.repo / DRAFTS],
    key_mode=lambda config: key_mode([config.drafter, config.reviewer]),
    needs_keys=lambda config: keyless_agents([config.drafter, config.reviewer]),
    models=lambda config: agent_models([config.drafter, config.reviewer]),
)

__all__ = ["WORKFLOW", "RequirementsConfig", "collect_items", "execute_item"]
