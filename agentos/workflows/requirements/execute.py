"""One brief → one LLD: draft, review, redraft until APPROVED or out of iterations, then write the
LLD atomically. Every prompt, draft and review is kept under the item's state directory
(`<run-dir>/items/<id>/attempt-<n>/iteration-<k>/`) as the audit trail.

Whatever an agent answers is redacted (`ctx.redact`) as it arrives: a CLI agent that echoes its
environment must not put its key into the LLD, the audit trail, or the next prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from agentos import lld
from agentos.agents import AgentRequest
from agentos.agents.base import ToolPolicy
from agentos.beneath import Beneath, UnsafePath
from agentos.errors import ItemError
from agentos.item.context import ItemContext
from agentos.item.workflow import Item
from agentos.markdown import code_flags
from agentos.workflows.inputs import read_text
from agentos.workflows.requirements import prompts
from agentos.workflows.requirements.config import APPROVED_LLDS, DRAFTS
from agentos.workflows.requirements.verdict import APPROVED, verdict

if TYPE_CHECKING:
    from agentos.workflows.requirements.config import RequirementsConfig

_STATUS_LINE = re.compile(r"^\W*status\b[*_\s]*[:|]", re.IGNORECASE)
_FINAL_STATUS_LINE = re.compile(r"^\W*final\s+status\b[*_\s]*[:|]", re.IGNORECASE)
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*(?:markdown|md)?\s*$", re.IGNORECASE)
_HEADING = re.compile(r"^(#{1,6})(\s)")


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
        prompt = prompts.draft_prompt(title, brief, draft, review)
        ctx.keep(step / "draft-prompt.md", prompt)
        answer = config.drafter.run(
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
                tools=ToolPolicy.READ,  # it may look at the code; it edits nothing
            ),
            ctx,
        )
        draft = _unwrap(ctx.redact(answer))
        ctx.keep(step / "draft.md", draft)
        _check_draft(draft, prompt)
        prompt = prompts.review_prompt(title, brief, draft)
        ctx.keep(step / "review-prompt.md", prompt)
        review = ctx.redact(
            config.reviewer.run(
                AgentRequest(
                    "review",
                    prompt,
                    {
                        "brief": brief,
                        "draft": draft,
                        "iteration": str(iteration),
                    },
                    cwd=str(config.repo),
                    tools=ToolPolicy.READ,
                ),
                ctx,
            )
        )
        ctx.keep(step / "review.md", review)
        if _first_line(prompt) in review:
            raise ItemError("the reviewer's answer repeats the prompt instead of reviewing it")
        found = verdict(review)
        ctx.log(f"iteration {iteration}: {found}")
        if found == APPROVED:
            approved = True
            break
    # approved: where `agentos implement` takes it; a Draft stays beside, out of its way
    target = config.repo / (APPROVED_LLDS if approved else DRAFTS) / f"{slug}.md"
    text = _final(Rounds(draft, review, iteration, approved), title, brief_path, config)
    try:  # never through a link out of the repository (a cloned one may hold any)
        with Beneath(config.repo) as place:
            place.write_atomic(target.relative_to(config.repo), ctx.redact(text))
            if approved:  # a Draft of an earlier run (--redo-drafts) is now approved
                place.unlink(f"{DRAFTS}/{slug}.md")
    except UnsafePath as exc:
        raise ItemError(str(exc)) from None
    except OSError as exc:
        raise ItemError(f"cannot write {target.relative_to(config.repo)}: {exc.strerror}") from None
    outcome = "Approved" if approved else "Draft"
    ctx.detail = outcome
    ctx.log(f"wrote {target.relative_to(config.repo)} ({outcome})")


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "\0")


def _check_draft(draft: str, prompt: str) -> None:
    """A draft must be an LLD: an answer with none of its sections ("I cannot help with
    that.") or the prompt sent back is a failed attempt, retried, never an LLD on disk."""
    if _first_line(prompt) in draft:
        raise ItemError(
            "the drafter's answer repeats the prompt instead of answering it (a command that "
            "prints its input?)"
        )
    if not lld.sections_found(draft) and not lld.requirements(draft):
        start = _first_line(draft).strip()[:80] if draft.strip() else ""
        raise ItemError(
            "the drafter's answer is not an LLD: none of its sections ("
            + ", ".join(lld.SECTIONS)
            + ")"
            + (f"; it started with: {start!r}" if start else "; it was empty")
        )


def _unwrap(answer: str) -> str:
    """A whole answer in one ```markdown fence, as chat models like to send it: the LLD inside."""
    lines = answer.strip().splitlines()
    if len(lines) >= 2:
        opening = _FENCE.match(lines[0])
        if opening and lines[-1].strip() == opening.group(1):
            return "\n".join(lines[1:-1]) + "\n"
    return answer


def _body(draft: str) -> list[str]:
    """The draft without its title and the chat before it ("Here is the LLD:"), and without
    the drafter's own status lines (a header's `Status:`, a footer's `Final Status:`): the
    title and the status are agentos's to write."""
    lines = draft.strip("\n").splitlines()
    fenced = code_flags(lines)
    title = next(
        (n for n, line in enumerate(lines) if line.startswith("# ") and not fenced[n]), None
    )
    # an H1 after the draft's first sections is one of them, not its title
    if title is not None and not any(_HEADING.match(line) for line in lines[:title]):
        lines, fenced = lines[title + 1 :], fenced[title + 1 :]
    return [
        line
        for n, line in enumerate(lines)
        if fenced[n]
        or not (_FINAL_STATUS_LINE.match(line) or (n < 10 and _STATUS_LINE.match(line)))
    ]


def _demote(text: str, levels: int) -> str:
    """Headings `levels` deeper (at most ######), outside code blocks: a review quoted under
    `## Open review` must not add a title of its own."""
    lines = text.splitlines()
    fenced = code_flags(lines)
    out = []
    for n, line in enumerate(lines):
        heading = None if fenced[n] else _HEADING.match(line)
        if heading:
            line = "#" * min(6, len(heading.group(1)) + levels) + line[len(heading.group(1)) :]
        out.append(line)
    return "\n".join(out)


@dataclass(frozen=True)
class Rounds:
    """Where the draft-and-review rounds ended: the last draft and review, how many rounds."""

    draft: str
    review: str
    iterations: int
    approved: bool


def _final(rounds: Rounds, title: str, brief: Path, config: RequirementsConfig) -> str:
    """The LLD as written into the repository: a header saying who drafted and reviewed it,
    the draft, and for a Draft the review it did not pass."""
    draft, review, approved = rounds.draft, rounds.review, rounds.approved
    body = _body(draft)
    while body and not body[0].strip():
        body.pop(0)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    header = [
        f"# LLD: {title}",
        "",
        f"Status: {'Approved' if approved else 'Draft'}",
        f"Brief: {brief.relative_to(config.repo)}",
        f"Drafted by: {config.drafter.spec}; reviewed by: {config.reviewer.spec}; "
        f"iterations: {rounds.iterations}; date: {stamp}",
        "",
    ]
    text = "\n".join(header + body).rstrip() + "\n"
    if not approved:
        text += "\n## Open review\n\n" + _demote(review.strip(), 2) + "\n"
    return text
