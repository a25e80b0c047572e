"""Items of the requirements workflow: one per brief in `<repo>/ideas/active/`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agentos import lld
from agentos.item.workflow import Item
from agentos.text import plural
from agentos.workflows.inputs import (
    first_heading,
    markdown_files,
    name_items,
    names_in,
    read_head,
    slugify,
)
from agentos.workflows.requirements.config import APPROVED_LLDS, DRAFTS

if TYPE_CHECKING:
    from agentos.workflows.requirements.config import RequirementsConfig

BRIEFS = "ideas/active"
#: how a rerun starts over, said when it has nothing to do
START_OVER = (
    "--redo-drafts drafts the Drafts again, --force redoes every brief "
    "(the bundled demo: make demo-reset)"
)
log = logging.getLogger("agentos")


def brief_id(name: str) -> str | None:
    slug = slugify(name.removesuffix(".md"))
    return f"brief-{slug}" if slug else None


def collect_items(config: RequirementsConfig) -> list[Item]:
    """Pending briefs: those without an LLD (`docs/lld/active/<slug>.md` once approved,
    `docs/lld/drafts/<slug>.md` while a Draft), those whose LLD is still a Draft with
    --redo-drafts, all of them with --force."""
    folder = config.repo / BRIEFS
    names = markdown_files(folder, config.repo, "briefs")
    active = set() if config.force else names_in(config.repo / APPROVED_LLDS)
    existing = set() if config.force else names_in(config.repo / DRAFTS)
    items = []
    approved = 0
    drafts: list[str] = []
    for item_id, name in name_items(names, brief_id, BRIEFS):
        slug = item_id.removeprefix("brief-")
        lld_name = f"{slug}.md"
        if (
            lld_name in active
            and lld.approval(read_head(config.repo / APPROVED_LLDS / lld_name) or "").approved
        ):
            approved += 1
            continue
        if lld_name in existing or lld_name in active:
            drafts.append(item_id)
            if not config.redo_drafts:
                continue
        path = f"{folder}/{name}"
        items.append(
            Item(
                id=item_id,
                title=lld.clean_title(first_heading(path, slug)) or slug,
                source=f"{BRIEFS}/{name}",
                data={"path": path, "slug": slug},
            )
        )
    if not items and (approved or drafts):
        counts = []
        if approved:
            counts.append(f"{approved} Approved")
        if drafts:
            counts.append(f"{len(drafts)} Draft: {', '.join(drafts)}")
        log.info(
            "every brief in %s has an LLD in %s or %s (%s): nothing to do; to start over: %s",
            BRIEFS,
            APPROVED_LLDS,
            DRAFTS,
            "; ".join(counts),
            START_OVER,
        )
    elif drafts and not config.redo_drafts:
        log.info(
            "%s ended as a Draft LLD in %s and %s left alone: %s; --redo-drafts drafts them again",
            plural(len(drafts), "brief"),
            DRAFTS,
            "are" if len(drafts) != 1 else "is",
            ", ".join(drafts),
        )
    return items
