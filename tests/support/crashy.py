"""A test workflow whose items crash their worker in chosen ways (importable by workers).

    python tests/support/crashy.py --items-spec "ok,sigkill,ok" -j 2 ...

Each item named after a crash mode crashes on its first attempt only (a marker file in the item's
state directory remembers), so with --retries 1 every item ends done.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from agentos.item.context import ItemContext
from agentos.item.workflow import Item, Option, Workflow


def crash(mode: str) -> None:
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "os_exit":
        os._exit(3)
    elif mode == "segfault":
        ctypes.string_at(0)
    elif mode == "abort":
        os.abort()
    elif mode == "exception":
        raise ValueError("bad input in the item")
    elif mode == "sys_exit":
        sys.exit(4)
    elif mode == "hang":
        time.sleep(3600)


def collect(config: dict) -> list[Item]:  # type: ignore[type-arg]
    modes = config["items_spec"].split(",")
    return [Item(id=f"{n}-{mode}", title=mode, data=mode) for n, mode in enumerate(modes, start=1)]


def execute(item: Item, ctx: ItemContext) -> None:
    marker = ctx.state_dir / "crashed-once"
    print(f"running {item.id} attempt {ctx.attempt}", flush=True)
    if item.data != "ok" and (ctx.config["always"] or not marker.exists()):
        marker.touch()
        crash(item.data)
    time.sleep(float(ctx.config["sleep"]))
    print(f"finished {item.id}", flush=True)


WORKFLOW = Workflow(
    name="crashy",
    summary="Items that crash their worker.",
    collect_items=collect,
    execute_item=execute,
    options=(
        Option(("--items-spec",), "items_spec", "comma-separated crash modes"),
        Option(("--sleep",), "sleep", "seconds each item works", kind="float", default=0.3),
        Option(("--always",), "always", "crash on every attempt", kind="flag"),
    ),
)

if __name__ == "__main__":
    from agentos.commands.cli import run_workflow_cli

    run_workflow_cli(WORKFLOW, prog_name="crashy")
