"""`Item`: one unit of work, as `collect_items` makes it and `execute_item` takes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Item:
    """A small picklable record. `id` must satisfy `sanitize.ITEM_ID_PATTERN`; `data` is whatever
    the workflow's `execute_item` needs (a path, an argv list), and must pickle."""

    id: str
    title: str = ""
    source: str = ""
    data: Any = None
    seq: int = 0  # 1-based input position, assigned by the runner; GNU parallel's joblog "Seq"
    #: what the item *is*, for --resume: the same work has the same key in every pass, wherever
    #: it sits in the input (default: the id, assigned by the runner)
    key: str = ""
