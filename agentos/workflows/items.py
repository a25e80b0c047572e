"""The unit of work: `Item`, and `Workflow`, the pair of callbacks that defines a batch.

A workflow is exactly two functions plus its own options:

    collect_items(config) -> Sequence[Item]      in the parent, before anything starts
    execute_item(item, ctx) -> object            once per attempt, in a worker (or in-process)

Everything else (options, dry-run, sequential or parallel execution, keys, retries, output,
signals, journal, summary, exit code) belongs to the shared runner, `agentos.workflows.runner`.

This module imports no CLI code: workers unpickle `execute_item` by reference and must stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentos.workflows.parallel.context import ItemContext


@dataclass(frozen=True)
class Item:
    """A small picklable record. `id` must satisfy `sanitize.ITEM_ID_PATTERN`; `data` is whatever
    the workflow's `execute_item` needs (a path, an argv list), and must pickle."""

    id: str
    title: str = ""
    source: str = ""
    data: Any = None
    seq: int = 0  # 1-based input position, assigned by the runner; GNU parallel's joblog "Seq"


@dataclass(frozen=True)
class Option:
    """A workflow's own command-line option, as data, so that workflow modules need no click.

    `kind` is one of "str", "int", "float", "path", "flag"."""

    flags: tuple[str, ...]
    dest: str
    help: str
    kind: str = "str"
    default: Any = None
    metavar: str | None = None


CollectItems = Callable[[Any], Sequence[Item]]
ExecuteItem = Callable[[Item, "ItemContext"], object]


def _dict_config(**values: Any) -> dict[str, Any]:
    return values


@dataclass(frozen=True)
class Workflow:
    """What a command runs. `make_config(**option_values)` builds the config object both
    callbacks receive (it may raise `ConfigError` to reject bad options before anything starts);
    the config travels to workers once, so it must pickle."""

    name: str
    summary: str
    collect_items: CollectItems
    execute_item: ExecuteItem
    options: tuple[Option, ...] = ()
    make_config: Callable[..., Any] = field(default=_dict_config)
    epilog: str = ""
    #: config -> why the run needs keys (an agent that cannot work without one), or None
    needs_keys: Callable[[Any], str | None] | None = None
