"""Items of the implement workflow: one per approved LLD in `<repo>/docs/lld/active/`.

An LLD is approved when its header (`Status: Approved`) or its footer (`Final Status:
APPROVED`) says so. One whose header and footer disagree is left alone, by name: implementing
a design whose final review may still be pending is work nobody can trust.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from agentos.text import plural
from agentos.workflows import lld
from agentos.workflows.inputs import markdown_files, name_items, read_head
from agentos.workflows.items import Item

if TYPE_CHECKING:
    from agentos.workflows.implement import ImplementConfig

ACTIVE = "docs/lld/active"
BUNDLES = "docs/implementations"
#: an LLD's status may be in its footer: read the whole file (LLDs are tens of KiB)
_READ_LIMIT = 1 << 20
_NUMBER = re.compile(r"^(?:lld[-_ ]?)?0*(\d+)(?:$|[-_ .])", re.IGNORECASE)
log = logging.getLogger("agentos")


def lld_id(name: str) -> str | None:
    """`LLD-137.md`, `LLD-019.md` and `137-title.md` → `lld-137`, `lld-19`."""
    match = _NUMBER.match(name.removesuffix(".md"))
    return f"lld-{match.group(1)}" if match else None


def collect_items(config: ImplementConfig) -> list[Item]:
    """Pending approved LLDs: those without `docs/implementations/<id>/REPORT.md`."""
    folder = config.repo / ACTIVE
    names = markdown_files(folder, config.repo, "approved LLDs")
    approved: list[str] = []
    titles: dict[str, str] = {}
    conflicts: list[str] = []
    others: dict[str, list[str]] = {}
    for name in names:
        text = read_head(folder / name, _READ_LIMIT)
        if text is None:
            approved.append(name)  # unreadable: the item fails saying why, it does not vanish
            continue
        status = lld.approval(text)
        if status.approved:
            approved.append(name)
            titles[name] = lld.title_of(text, "")
        elif status.conflict:
            conflicts.append(f"{name} ({status.describe()})")
        else:
            others.setdefault(status.describe(), []).append(name)
    _report_left_alone(conflicts, others)
    bundles = config.repo / BUNDLES
    items = []
    done = 0
    named = sorted(name_items(approved, lld_id, ACTIVE), key=lambda pair: int(pair[0][4:]))
    for item_id, name in named:
        if not config.force and os.path.exists(f"{bundles}/{item_id}/REPORT.md"):
            done += 1
            continue
        items.append(
            Item(
                id=item_id,
                title=titles.get(name) or item_id,
                source=f"{ACTIVE}/{name}",
                data={"path": f"{folder}/{name}"},
            )
        )
    if done and not items:
        log.info(
            "every approved LLD in %s (%d) has a bundle in %s: nothing to do; to start over: "
            "--force redoes them (the bundled demo: make demo-reset)",
            ACTIVE,
            done,
            BUNDLES,
        )
    return items


def _report_left_alone(conflicts: list[str], others: dict[str, list[str]]) -> None:
    if conflicts:
        log.warning(
            "%s in %s left alone, header and footer disagree about approval (make them agree): %s",
            plural(len(conflicts), "LLD"),
            ACTIVE,
            "; ".join(conflicts),
        )
    if others:
        count = sum(len(names) for names in others.values())
        log.info(
            "%s in %s not Approved, left alone: %s",
            plural(count, "LLD"),
            ACTIVE,
            "; ".join(f"{status}: {', '.join(names)}" for status, names in others.items()),
        )
