"""Items of the requirements workflow: one per brief in `<repo>/ideas/active/`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentos.workflows.inputs import first_heading, markdown_files, name_items, slugify
from agentos.workflows.items import Item

if TYPE_CHECKING:
    from agentos.workflows.requirements import RequirementsConfig

BRIEFS = "ideas/active"
DRAFTS = "docs/lld/drafts"


def collect_items(config: RequirementsConfig) -> list[Item]:
    """Pending briefs: those without `docs/lld/drafts/<slug>.md` (all of them with --force)."""
    repo = config.repo
    files = markdown_files(repo / BRIEFS, repo, "briefs")
    named = name_items(
        files, lambda p: f"brief-{slugify(p.stem)}" if slugify(p.stem) else None, repo
    )
    items = []
    for item_id, path in named:
        slug = item_id.removeprefix("brief-")
        if not config.force and (repo / DRAFTS / f"{slug}.md").exists():
            continue
        items.append(
            Item(
                id=item_id,
                title=first_heading(path, slug),
                source=str(path.relative_to(repo)),
                data={"path": str(path), "slug": slug},
            )
        )
    return items
