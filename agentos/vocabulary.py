"""`StrEnum`, the base of every vocabulary agentos writes down or sends between processes.

Each vocabulary is defined once, where the floors of the package let everyone who uses it import
it:

    agentos.rundir.statuses     Status (an item's or an attempt's), Phase (a run's): the words
                                of journal.jsonl, summary.json and state.json
    agentos.item.refusal_kinds  RefusalKind: the four kinds of a provider's "no"
    agentos.item.keys           KeyOutcome: how a lease or a call ended, as the governor is told
    agentos.governor.states     KeyState: a key's state in the governor's snapshot

A member is its value, a `str`: it is written to JSON, compared with what an older run directory
holds and printed exactly as that string, so the files keep their format. `enum.StrEnum` is
Python 3.11's; this is the same class for 3.10.
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, Enum):
        """A str enum whose members print as their value (3.11's `enum.StrEnum`)."""

        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, format_spec: str) -> str:
            return str.__format__(self, format_spec)


__all__ = ["StrEnum"]
