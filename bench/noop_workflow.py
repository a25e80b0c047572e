"""A workflow of Python items that do nothing, for measuring the executor's own cost per item.

python -m bench.noop_workflow --count 2000 -j 2 -q
"""

from __future__ import annotations

from typing import Any

from agentos.item.context import ItemContext
from agentos.item.workflow import Item, Option, Workflow


def collect_items(config: dict[str, Any]) -> list[Item]:
    return [Item(id=f"noop-{n}") for n in range(1, int(config["count"]) + 1)]


def execute_item(item: Item, ctx: ItemContext) -> None:
    return None


WORKFLOW = Workflow(
    name="noop",
    summary="Items that do nothing (benchmark).",
    collect_items=collect_items,
    execute_item=execute_item,
    options=(Option(("--count",), "count", "How many items.", kind="int", default=2000),),
)

if __name__ == "__main__":
    from agentos.commands.cli import run_workflow_cli

    run_workflow_cli(WORKFLOW, prog_name="noop")
