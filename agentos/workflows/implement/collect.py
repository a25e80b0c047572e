"""Items of the implement workflow: one per approved LLD in `<repo>/docs/lld/active/`."""

from __future__ import annotations

import logging
import os
import re
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


def lld_id(name: str) -> str | None:
    """`LLD-137.md` and `137-title.md` → `lld-137`."""
    match = _NUMBER.match(name.removesuffix(".md"))
    return f"lld-{match.group(1)}" if match else None


def _approved(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16384).decode("utf-8", errors="replace")
    except OSError:
        return True  # let the item fail with the read error rather than vanish
    return lld.status_of(head) == "approved"


def collect_items(config: ImplementConfig) -> list[Item]:
    """Pending approved LLDs: those without `docs/implementations/<id>/REPORT.md`."""
    folder = config.repo / ACTIVE
    names = markdown_files(folder, config.repo, "approved LLDs")
    approved = [name for name in names if _approved(f"{folder}/{name}")]
    if len(approved) < len(names):
        log.info(
            "%d LLD(s) in %s are not Approved and are left alone",
            len(names) - len(approved),
            ACTIVE,
        )
    bundles = config.repo / BUNDLES
    items = []
    named = sorted(name_items(approved, lld_id, ACTIVE), key=lambda pair: int(pair[0][4:]))
    for item_id, name in named:
        if not config.force and os.path.exists(f"{bundles}/{item_id}/REPORT.md"):
            continue
        path = f"{folder}/{name}"
        items.append(
            Item(
                id=item_id,
                title=lld.without_lld_prefix(first_heading(path, item_id)) or item_id,
                source=f"{ACTIVE}/{name}",
                data={"path": path},
            )
        )
    return items
