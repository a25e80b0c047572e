"""Items of the requirements workflow: one per brief in `<repo>/ideas/active/`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentos.workflows.inputs import first_heading, markdown_files, name_items, names_in, slugify
from agentos.workflows.items import Item

if TYPE_CHECKING:
    from agentos.workflows.requirements import RequirementsConfig

BRIEFS = "ideas/active"
DRAFTS = "docs/lld/drafts"


def brief_id(name: str) -> str | None:
    slug = slugify(name.removesuffix(".md"))
    return f"brief-{slug}" if slug else None


def collect_items(config: RequirementsConfig) -> list[Item]:
    """Pending briefs: those without `docs/lld/drafts/<slug>.md` (all of them with --force)."""
    folder = config.repo / BRIEFS
    names = markdown_files(folder, config.repo, "briefs")
    done = set() if config.force else names_in(config.repo / DRAFTS)
    items = []
    for item_id, name in name_items(names, brief_id, BRIEFS):
        slug = item_id.removeprefix("brief-")
        if f"{slug}.md" in done:
            continue
        path = f"{folder}/{name}"
        items.append(
            Item(
                id=item_id,
                title=first_heading(path, slug),
                source=f"{BRIEFS}/{name}",
                data={"path": path, "slug": slug},
            )
        )
    return items
