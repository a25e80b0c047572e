"""Item ids: the rule, the check, and turning arbitrary text into an id.

An item id names a log file (`logs/<id>.log`), a state directory (`items/<id>/`) and prefixes every
output line, so it must be safe as a single path component and short enough to read:
`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$` and no `..` anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ITEM_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_ID_LENGTH = 64
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_.-]+")


def id_problem(item_id: str) -> str | None:
    """Why `item_id` is not a valid id, or None when it is."""
    if not item_id:
        return "it is empty"
    if len(item_id) > MAX_ID_LENGTH:
        return f"it is longer than {MAX_ID_LENGTH} characters"
    if ITEM_ID_PATTERN.fullmatch(item_id) is None:
        return "use letters, digits, '_', '.' and '-' only, starting with a letter or digit"
    if ".." in item_id:
        return "it contains '..'"
    return None


def is_valid_id(item_id: str) -> bool:
    return id_problem(item_id) is None


def sanitize_id(text: str, *, fallback: str = "item") -> str:
    """Make a valid id from any text: runs of other characters become '_', '..' collapses, the
    result starts with a letter or digit and is cut to 64 characters."""
    cleaned = _INVALID_RUN.sub("_", text.strip())
    while ".." in cleaned:
        cleaned = cleaned.replace("..", ".")
    cleaned = cleaned.lstrip("_.-")[:MAX_ID_LENGTH].rstrip("_.-")
    return cleaned if cleaned else fallback


def duplicate_ids(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once, in first-seen order."""
    seen: set[str] = set()
    dupes: dict[str, None] = {}
    for item_id in ids:
        if item_id in seen:
            dupes[item_id] = None
        seen.add(item_id)
    return list(dupes)
