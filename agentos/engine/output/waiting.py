"""What the run says while it waits for keys: every key busy or cooling, all out of quota.

The words of the status line and of the errors that stop a run for want of keys, made from the
governor's `KeyStatus` (through whatever hosts it, so read with getattr where a field may be
missing).
"""

from __future__ import annotations

import time
from typing import Any

from agentos.text import seconds


def all_out(status: Any) -> str:
    """`all 3 keys out of quota until 17:00 UTC; rerun then (done items are kept)`."""
    usable = status.total - status.revoked
    if not usable:
        return (
            f"every key was rejected by the provider ({status.total} of {status.total}); "
            "check the keys in --credentials-file or AGENTOS_CREDENTIALS"
        )
    keys = f"all {usable} keys" if usable > 1 else "the only key"
    back = getattr(status, "back_at", None)
    if back is None or back == float("inf") or back > time.time() + 7 * 86400:
        return f"{keys} out of quota for this run; rerun when it is back (done items are kept)"
    when = time.strftime("%H:%M UTC", time.gmtime(back))
    return f"{keys} out of quota until {when}; rerun then (done items are kept)"


def keys_busy(status: Any) -> str:
    """`all 2 keys are busy or cooling; next free in 42 s`: retired (revoked) keys are not counted
    as waited for, since they do not come back this run."""
    usable = status.total - status.revoked
    which = "usable key" if status.revoked else "key"
    if usable > 1:
        said = f"all {usable} {which}s are busy or cooling"
    else:
        said = f"the only {which} is busy or cooling"
    if status.revoked:
        said += f" ({status.revoked} retired)"
    if getattr(status, "parked", 0):
        said += f"; {status.parked} parked, out of quota"
    if status.next_free_in is not None:
        said += f"; next free in {seconds(status.next_free_in)}"
    return said
