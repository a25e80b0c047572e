"""One brief → one LLD: draft, review, redraft until APPROVED or out of iterations, then write the
LLD atomically. Every prompt, draft and review is kept under the item's state directory
(`<run-dir>/items/<id>/attempt-<n>/iteration-<k>/`) as the audit trail."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.agents import AgentRequest
from agentos.errors import ItemError
from agentos.workflows import lld
from agentos.workflows.inputs import read_text
from agentos.workflows.items import Item
from agentos.workflows.parallel.context import ItemContext
from agentos.workflows.parallel.journal import atomic_write_text
from agentos.workflows.requirements import prompts
from agentos.workflows.requirements.collect import DRAFTS

if TYPE_CHECKING:
    from agentos.workflows.requirements import RequirementsConfig

_STATUS_LINE = re.compile(r"^\W*status\W*:", re.IGNORECASE)


def execute_item(item: Item, ctx: ItemContext) -> None:
    config: RequirementsConfig = ctx.config
    brief_path = Path(item.data["path"])
    slug = item.data["slug"]
    brief = read_text(brief_path, "brief")
    title = lld.title_of(brief, item.title or slug)
    trail = ctx.state_dir / f"attempt-{ctx.attempt}"
    draft = review = ""
    approved = False
    iteration = 0
    for iteration in range(1, config.max_iterations + 1):
        step = trail / f"iteration-{iteration}"
        step.mkdir(parents=True, exist_ok=True)
        prompt = prompts.draft_prompt(title, brief, draft, review)
        (step / "draft-prompt.md").write_text(prompt)
        draft = config.drafter.run(
            AgentRequest(
                "draft",
                prompt,
                {
                    "brief": brief,
                    "title": title,
                    "slug": slug,
                    "review": review,
                    "previous_draft": draft,
                    "iteration": str(iteration),
                },
                cwd=str(config.repo),
            ),
            ctx,
        )
        (step / "draft.md").write_text(draft)
        prompt = prompts.review_prompt(title, brief, draft)
        (step / "review-prompt.md").write_text(prompt)
        review = config.reviewer.run(
            AgentRequest(
                "review",
                prompt,
                {
                    "brief": brief,
                    "draft": draft,
                    "iteration": str(iteration),
                },
                cwd=str(config.repo),
            ),
            ctx,
        )
        (step / "review.md").write_text(review)
        verdict = _verdict(review)
        ctx.log(f"iteration {iteration}: {verdict}")
        if verdict == "APPROVED":
            approved = True
            break
    target = config.repo / DRAFTS / f"{slug}.md"
    try:
        atomic_write_text(
            target, _final(draft, title, brief_path, config, iteration, approved, review)
        )
    except OSError as exc:
        raise ItemError(f"cannot write {target.relative_to(config.repo)}: {exc.strerror}") from None
    ctx.log(f"wrote {target.relative_to(config.repo)} ({'Approved' if approved else 'Draft'})")


def _verdict(review: str) -> str:
    for line in review.splitlines():
        word = line.strip().strip("*#:").strip().upper()
        if not word:
            continue
        for verdict in ("APPROVED", "REVISE"):
            if word.startswith(verdict):
                return verdict
        raise ItemError(
            "the reviewer's answer must start with APPROVED or REVISE on its first "
            f"line; it started with: {line.strip()[:80]!r}"
        )
    raise ItemError("the reviewer's answer was empty")


def _final(
    draft: str,
    title: str,
    brief: Path,
    config: RequirementsConfig,
    iterations: int,
    approved: bool,
    review: str,
) -> str:
    lines = draft.strip("\n").splitlines()
    if not lines or not lines[0].startswith("# "):
        lines = [f"# LLD: {title}", "", *lines]
    # the drafter's own status line, if it wrote one, gives way to the verdict
    body = [line for n, line in enumerate(lines[1:]) if n >= 10 or not _STATUS_LINE.match(line)]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    header = [
        lines[0],
        "",
        f"Status: {'Approved' if approved else 'Draft'}",
        f"Brief: {brief.relative_to(config.repo)}",
        f"Drafted by: {config.drafter.spec}; reviewed by: {config.reviewer.spec}; "
        f"iterations: {iterations}; date: {stamp}",
    ]
    text = "\n".join(header + body).rstrip() + "\n"
    if not approved:
        text += "\n## Open review\n\n" + review.strip() + "\n"
    return text
