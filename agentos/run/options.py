"""The command line of every workflow command: the shared options and the workflow's own.

The shared options are the fields of the option groups (`agentos.engine.options`), each written
once there; `runner_options` adds them to a click command and `RunnerOptions.from_params` reads
them back as the groups. A workflow's own options (`Workflow.options`, plain data) become click
options through `workflow_params`. The click types here say what they expect when a value is
wrong (`expected a whole number (at least 1), got 'abc'`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agentos.engine.fields import Choices, Decimal, Kind, PathOf, Size, Whole, option_fields
from agentos.engine.options import GROUPS, RunnerOptions
from agentos.item.workflow import OnResume, Option

F = TypeVar("F", bound=Callable[..., Any])


class _SafePath(click.Path):
    """click.Path that refuses a NUL byte with a usage error (the OS would raise ValueError)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\0" in value:
            self.fail("the path contains a NUL byte", param, ctx)
        return super().convert(value, param, ctx)


SAFE_PATH = _SafePath(path_type=Path)


class _Bounded:
    """A number option whose error says what it expects: `expected a whole number (at least
    1), got 'abc'` rather than click's `'abc' is not a valid integer range`."""

    noun = "a number"
    min: Any
    min_open: bool

    def bound(self) -> str:
        if self.min is None:
            return ""
        return f"more than {self.min:g}" if self.min_open else f"at least {self.min:g}"

    def expected(self) -> str:
        bound = self.bound()
        return f"{self.noun} ({bound})" if bound else self.noun

    def _describe_range(self) -> str:  # click's range in --help: [default: 60.0; at least 0]
        return self.bound()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = super().convert(value, param, ctx)  # type: ignore[misc]
        except click.BadParameter:
            number = None
        if number is None or number != number:  # not a number at all, or out of range; NaN
            got = value if _numeric(value) else repr(value)
            self.fail(f"expected {self.expected()}, got {got}", param, ctx)  # type: ignore[attr-defined]
        return number


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class WholeNumber(_Bounded, click.IntRange):
    noun = "a whole number"


class Number(_Bounded, click.FloatRange):
    noun = "a number"


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class _Size(click.ParamType):
    """A size in bytes: 1048576, 512K, 200M, 2G (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(value), re.IGNORECASE)
        if match is None or float(match.group(1)) <= 0:
            self.fail(f"{value!r} is not a size; give it as 500M, 2G or a number of bytes")
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


_SIZE = _Size()


def click_type(kind: Kind) -> Any:
    """The click type of an option's kind (agentos.engine.options)."""
    if isinstance(kind, Whole):
        return WholeNumber(min=kind.min)
    if isinstance(kind, Decimal):
        return Number(min=kind.min, min_open=kind.open)
    if isinstance(kind, Size):
        return _SIZE
    if isinstance(kind, PathOf):
        if kind.file and kind.folder:
            return SAFE_PATH
        return _SafePath(path_type=Path, file_okay=kind.file, dir_okay=kind.folder)
    if isinstance(kind, Choices):
        return click.Choice(kind.values)
    return None


def shared_params() -> list[click.Option]:
    """Every shared option, in its group's order, as the command line has it."""
    params = []
    for group in GROUPS:
        for field, spec in option_fields(group):
            settings: dict[str, Any] = {"help": spec.help}
            if spec.flag:
                settings["is_flag"] = True
            elif spec.counting:
                settings["count"] = True
            else:
                settings.update(
                    type=click_type(spec.kind),
                    default=field.default,
                    show_default=spec.show_default,
                    metavar=spec.metavar,
                    multiple=spec.multiple,
                    envvar=spec.envvar,
                )
            params.append(click.Option([*spec.decls, field.name], **settings))
    return params


#: what `--resume` does with each shared option (see OnResume), from the options' own fields
SHARED_ON_RESUME: dict[str, OnResume] = RunnerOptions.policies()


def runner_options(f: F) -> F:
    """Add every shared option to the click command `f`."""
    command_params = getattr(f, "__click_params__", [])
    f.__click_params__ = [*command_params, *reversed(shared_params())]  # type: ignore[attr-defined]
    return f


class _AgentSpec(click.ParamType):
    """An agent spec (`mock`, `claude:sonnet`, `cmd:./myagent.sh`): a `cmd:` agent given by a
    relative path is made absolute here, where the user typed it, so that it is found whatever
    directory the agent later runs in (the repository) and whichever directory a resume is
    started from."""

    name = "spec"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().startswith("cmd:"):
            from agentos.agents.cmd import absolute_spec

            return absolute_spec(value)
        return value


_KINDS: dict[str, Any] = {
    "str": str,
    "int": WholeNumber(),
    "float": Number(),
    "path": SAFE_PATH,
    "agent": _AgentSpec(),
}


def workflow_params(options: tuple[Option, ...]) -> list[click.Parameter]:
    params: list[click.Parameter] = []
    for opt in options:
        if opt.kind == "argv":
            params.append(
                click.Argument(
                    [opt.dest],
                    nargs=-1,
                    type=click.UNPROCESSED,
                    metavar=opt.metavar or "COMMAND [ARG]...",
                )
            )
        elif opt.kind == "flag":
            params.append(click.Option([*opt.flags, opt.dest], is_flag=True, help=opt.help))
        else:
            kind = click.Choice(opt.choices) if opt.kind == "choice" else _KINDS[opt.kind]
            params.append(
                click.Option(
                    [*opt.flags, opt.dest],
                    type=kind,
                    default=opt.default,
                    show_default=opt.default is not None and opt.default != (),
                    metavar=opt.metavar,
                    help=opt.help,
                    multiple=opt.multiple,
                    envvar=opt.envvar,
                    show_envvar=opt.envvar is not None,
                )
            )
    return params
