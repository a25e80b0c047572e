"""An option as a dataclass field: `option(...)` records what the command line needs of it.

The groups of `agentos.engine.options` are made of such fields; `agentos.run.options` turns each
into a click option. Kinds name the command line's types without importing click, so that the
groups (which workers unpickle) stay light. Kinds and flags are named tuples: plain values that
every start-up defines, at a quarter of a frozen dataclass's cost to define.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, NamedTuple

from agentos.item.workflow import OnResume


class Whole(NamedTuple):
    """A whole number of at least `min`."""

    min: int | None = None


class Decimal(NamedTuple):
    """A number of at least `min` (more than `min` when `open`)."""

    min: float | None = None
    open: bool = False


class Size(NamedTuple):
    """A size in bytes: 1048576, 512K, 200M, 2G (powers of 1024)."""


class PathOf(NamedTuple):
    """A path; a folder only when not `file`, a file only when not `folder`."""

    file: bool = True
    folder: bool = True


class Choices(NamedTuple):
    """One of `values`."""

    values: tuple[str, ...]


Kind = Whole | Decimal | Size | PathOf | Choices | None


class Flags(NamedTuple):
    """What the command line needs of an option besides its name and default."""

    decls: tuple[str, ...]
    help: str
    kind: Kind = None
    metavar: str | None = None
    flag: bool = False  # an on/off switch
    counting: bool = False  # -v -v: the value is how many times it was given
    multiple: bool = False
    envvar: str | None = None
    show_default: bool = False
    on_resume: OnResume = OnResume.KEEP


def option(*decls: str, help: str, default: Any = None, **flags: Any) -> Any:
    """A group's field that is a command-line option (see the module docstring)."""
    return field(default=default, metadata={"option": Flags(decls, help, **flags)})


def option_fields(group: type[Any]) -> list[tuple[dataclasses.Field[Any], Flags]]:
    """(field, its Flags) of each option of a group, in order."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(group) if "option" in f.metadata]
