"""Items of the implement workflow: one per approved LLD in `<repo>/docs/lld/active/`."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.workflows import lld
from agentos.workflows.inputs import first_heading, markdown_files, name_items
from agentos.workflows.items import Item

if TYPE_CHECKING:
    from agentos.workflows.implement import ImplementConfig

ACTIVE = "docs/lld/active"
BUNDLES = "docs/implementations"
_NUMBER = re.compile(r"^(?:lld[-_ ]?)?0*(\d+)(?:$|[-_ .])", re.IGNORECASE)
log = logging.getLogger("agentos")


def lld_id(path: Path) -> str | None:
    """`LLD-137.md` and `137-title.md` → `lld-137`."""
    match = _NUMBER.match(path.stem)
    return f"lld-{match.group(1)}" if match else None


def _approved(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16384).decode("utf-8", errors="replace")
    except OSError:
        return True  # let the item fail with the read error rather than vanish
    return lld.status_of(head) == "approved"


def collect_items(config: ImplementConfig) -> list[Item]:
    """Pending approved LLDs: those without `docs/implementations/<id>/REPORT.md`."""
    repo = config.repo
    files = markdown_files(repo / ACTIVE, repo, "approved LLDs")
    approved = [p for p in files if _approved(p)]
    if len(approved) < len(files):
        log.info(
            "%d LLD(s) in %s are not Approved and are left alone",
            len(files) - len(approved),
            ACTIVE,
        )
    items = []
    named = sorted(name_items(approved, lld_id, repo), key=lambda pair: int(pair[0][4:]))
    for item_id, path in named:
        if not config.force and (repo / BUNDLES / item_id / "REPORT.md").exists():
            continue
        items.append(
            Item(
                id=item_id,
                title=lld.without_lld_prefix(first_heading(path, item_id)) or item_id,
                source=str(path.relative_to(repo)),
                data={"path": str(path)},
            )
        )
    return items
