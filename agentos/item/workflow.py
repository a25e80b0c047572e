"""`Workflow`, the pair of callbacks that defines a batch over `Item`s (unit.py).

A workflow is exactly two functions plus its own options:

    collect_items(config) -> Sequence[Item]      in the parent, before anything starts
    execute_item(item, ctx) -> object            once per attempt, in a worker (or in-process)

Everything else (options, dry-run, sequential or parallel execution, keys, retries, output,
signals, journal, summary, exit code) belongs to the shared runner, `agentos.run.runner`.

This module imports no CLI code: workers unpickle `execute_item` by reference and must stay light.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.item.unit import Item

if TYPE_CHECKING:
    from agentos.item.context import ItemContext
    from agentos.usage.prices import ModelRef


class OnResume(enum.Enum):
    """What `--resume RUN_DIR` does with an option. Every option's value is recorded in the run
    directory's run.json (unless FRESH) and a resume that does not give the option again takes
    the recorded value; given again, the option's kind decides (agentos.run.recorded)."""

    #: the run is this value (an agent, the repository, the command): given again, it must be
    #: the recorded value, else the resume is refused naming the option
    KEEP = "keep"
    #: safe to change between passes (a budget, -j, a timeout): the new value is used, and
    #: recorded for the next resume
    CHANGE = "change"
    #: never recorded, each invocation's own: what must not be written down (URLs with tokens)
    #: or is about this invocation only (--dry-run, --resume, output verbosity)
    FRESH = "fresh"


@dataclass(frozen=True)
class Option:
    """A workflow's own command-line option, as data, so that workflow modules need no click.

    `kind` is one of "str", "int", "float", "path", "flag", "choice" (one of `choices`),
    "agent" (an agent spec: a `cmd:` agent's relative program is made absolute where the user
    typed it), "argv" (the rest of the command line). `multiple`: the option may be given more
    than once (a tuple of values). `envvar`: an environment variable that gives the value when
    the option is not given. `on_resume`: what a `--resume` does with it; KEEP unless the option
    says it is safe to change."""

    flags: tuple[str, ...]
    dest: str
    help: str
    kind: str = "str"
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    multiple: bool = False
    envvar: str | None = None
    on_resume: OnResume = OnResume.KEEP


CollectItems = Callable[[Any], Sequence[Item]]
ExecuteItem = Callable[[Item, "ItemContext"], object]


def _dict_config(**values: Any) -> dict[str, Any]:
    return values


@dataclass(frozen=True, eq=False)
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
    #: config -> the directory the workflow writes into (its repository), or None. Two runs of
    #: one workflow never work on the same workspace at once (the runner locks it), and
    #: --resume refuses a run directory made for another one.
    workspace: Callable[[Any], Path | None] | None = None
    #: config -> what else must not change between a run and its --resume (`agentos run`: the
    #: command line)
    identity: Callable[[Any], dict[str, str]] | None = None
    #: config -> "call" when the workflow's agents take keys per call (HTTP agents), "item" (the
    #: default) when each attempt leases one
    key_mode: Callable[[Any], str] | None = None
    #: config -> the models its agents call, as known before the run (None: only the calls
    #: will tell), for checking a budget against their prices; absent: [None], any command may
    #: report calls through $AGENTOS_USAGE_FILE
    models: Callable[[Any], list[ModelRef | None]] | None = None
    #: config -> the folders the workflow writes its results into (made when missing). Every
    #: one must take a new file before anything runs: a read-only one is one line and exit 2,
    #: not a failure of every item after its agent was paid (agentos.run.writable)
    outputs: Callable[[Any], list[Path]] | None = None
    #: (config, run directory) -> option values that stand for inputs a resume could not read
    #: again (items piped on stdin): the workflow keeps a copy in the run directory, and run.json
    #: records these values in place of the given ones, so a resume reads the copy
    kept_inputs: Callable[[Any, Path], dict[str, Any]] | None = None

    def resume_identity(self, config: Any) -> dict[str, str]:
        """What a run directory records of this run, and a --resume must match."""
        found: dict[str, str] = {"workflow": self.name}
        workspace = self.workspace(config) if self.workspace is not None else None
        if workspace is not None:
            found["workspace"] = str(workspace)
        if self.identity is not None:
            found.update(self.identity(config))
        return found
