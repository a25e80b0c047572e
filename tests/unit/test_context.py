"""The item's context: `ctx.run`'s options for commands that call no model (no key in their
environment, stderr merged into stdout in order, a time limit of their own), and no key in what
it shows of itself."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agentos.item.context import AttemptSetup, ItemContext
from agentos.item.keys import AttemptKeys
from agentos.item.workflow import Item

KEY = "sk-context-run-key-0123456789"
KEYS = ["sk-alpha-0000000001", "sk-bravo-0000000002"]


def context(tmp_path: Path) -> ItemContext:
    return ItemContext(
        Item("x"), 1, tmp_path, None, AttemptKeys(KEY, "k1"), AttemptSetup(parallel=False)
    )


def test_a_command_that_calls_no_model_gets_no_key(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    show = [sys.executable, "-c", "import os; print(os.environ.get('AGENTOS_API_KEY'))"]
    assert ctx.run(show, capture_stdout=True).stdout.decode().strip() == KEY
    assert ctx.run(show, capture_stdout=True, with_key=False).stdout.decode().strip() == "None"


def test_stderr_merged_into_stdout_keeps_the_order(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "for n in range(3):\n"
        "    print(n, flush=True)\n"
        "    print(f'e{n}', file=sys.stderr, flush=True)\n"
    )
    done = context(tmp_path).run([sys.executable, "-c", script], capture_stdout=True,
                                 merge_stderr=True)  # fmt: skip
    assert done.stdout.decode().split() == ["0", "e0", "1", "e1", "2", "e2"]
    assert done.returncode == 0 and not done.timed_out


def test_a_time_limit_kills_the_command_and_says_so(tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = context(tmp_path).run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert done.timed_out
    assert time.monotonic() - t0 < 10


def test_no_key_in_the_repr_of_what_an_item_holds(tmp_path: Path) -> None:
    """An item that prints or logs its context or its call grant (`f"{ctx}"`, a debugger, a
    traceback with locals) must not print the key it was given."""
    from agentos.governor.governor import CallGrant
    from agentos.item.context import ItemContext
    from agentos.item.keys import AttemptKeys
    from agentos.item.workflow import Item

    ctx = ItemContext(
        item=Item("a"),
        attempt=1,
        run_dir=tmp_path,
        config=None,
        keys=AttemptKeys(KEYS[0], "key-1"),
    )
    grant = CallGrant(7, KEYS[1], "key-2", 0.0)
    for shown in (repr(ctx), str(ctx), repr(grant), f"{grant}"):
        assert KEYS[0] not in shown and KEYS[1] not in shown
    assert "key-1" in repr(ctx) and "key-2" in repr(grant)  # which key: still there
