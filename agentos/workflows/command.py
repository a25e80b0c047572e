"""`agentos run`: the generic workflow. One item per non-empty input line, one command per item.

    agentos run [OPTIONS] [--items FILE] -- COMMAND [ARG]...

An argument that is exactly `{}` becomes the item, as one argument (agentos starts no shell).
A `{}` inside a larger argument is replaced by the item *shell-quoted*, as GNU parallel does:
such arguments are typically scripts for a shell (`sh -c 'echo {}'`), and an item that is
spliced into a script raw is code (`$(touch pwned)` would run). Without any `{}` the item is
appended as the last argument. Item ids are `item-<line number>`, or the sanitised line with
`--id-from-item`; for --resume each item is keyed by the command it runs, so a changed input
list resumes correctly. Exit status 0 is done, 75 or a rate-limit message on stderr is rate
limited, anything else failed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentos.errors import ConfigError, ItemError, UsageError
from agentos.workflows.items import Item, OnResume, Option, Workflow
from agentos.workflows.parallel.context import ItemContext
from agentos.workflows.parallel.journal import atomic_write_bytes
from agentos.workflows.parallel.sanitize import fresh_id, sanitize_id

try:  # hashlib's sha256 without loading OpenSSL, which cost every `agentos run` ~5 ms of start-up
    from _sha256 import sha256  # Python 3.10, 3.11
except ImportError:  # pragma: no cover - Python 3.12+ renamed it; a build may lack both
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

PLACEHOLDER = "{}"


#: a copy of the items a run read from stdin, in its run directory: what a resume reads
STDIN_COPY = "items-from-stdin.txt"


@dataclass(frozen=True)
class CommandConfig:
    items_path: Path | None
    id_from_item: bool
    argv: tuple[str, ...]
    #: the items read from stdin (no --items, or `--items -`), kept for the run directory
    stdin: bytes | None = field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # workers get the config with every attempt's spec: not the whole input with it
        return (CommandConfig, (self.items_path, self.id_from_item, self.argv))


def make_config(items: Path | None, id_from_item: bool, command: tuple[str, ...]) -> CommandConfig:
    if not command:
        raise UsageError(
            "no command given; put it after --, e.g. agentos run --items list.txt -- echo {}"
        )
    program = command[0]
    if PLACEHOLDER not in program and shutil.which(program) is None:
        if os.sep in program and os.path.isfile(program):
            raise ConfigError(f"{program} is not executable; run: chmod +x {program}")
        raise ConfigError(f"command not found: {program}; check the name or give a path to it")
    stdin = _read_stdin() if items is None or str(items) == "-" else None
    return CommandConfig(items, id_from_item, tuple(command), stdin)


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no items: pass --items FILE, or pipe one item per line on stdin")
    return sys.stdin.buffer.read()


def keep_stdin(config: CommandConfig, run_dir: Path) -> dict[str, Any]:
    """Items read from stdin cannot be read again: a copy in the run directory is what a
    resume reads (`--items -` reads stdin again)."""
    if config.stdin is None:
        return {}
    path = run_dir / STDIN_COPY
    atomic_write_bytes(path, config.stdin, 0o600)
    return {"items": os.path.abspath(path)}


def _read_lines(config: CommandConfig) -> tuple[list[str], str]:
    path = config.items_path
    if config.stdin is not None or path is None or str(path) == "-":
        data = config.stdin if config.stdin is not None else _read_stdin()
        name = "stdin"
    else:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"items file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(
                f"items file {path} is a directory; pass a file with one item per line"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read items file {path}: {exc.strerror}") from None
        name = str(path)
    if b"\0" in data:
        raise ConfigError(
            f"items file {name} contains NUL bytes; it must be text with one item per line"
        )
    return split_lines(data), name


BOM = b"\xef\xbb\xbf"


def split_lines(data: bytes) -> list[str]:
    """Lines as `wc -l` counts them: split on `\\n` only (a `\\r`, `\\x1c` or U+2028 inside a
    line is part of the item, as in GNU parallel), a CRLF line ending and a leading UTF-8
    byte-order mark dropped, bytes that are not UTF-8 carried (surrogateescape)."""
    lines = data.removeprefix(BOM).split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline that ends the last line starts no item
    return [line.removesuffix(b"\r").decode("utf-8", errors="surrogateescape") for line in lines]


def substitute(argv: tuple[str, ...], item: str) -> list[str]:
    if not any(PLACEHOLDER in arg for arg in argv):
        return [*argv, item]
    quoted = shlex.quote(item)
    return [item if arg == PLACEHOLDER else arg.replace(PLACEHOLDER, quoted) for arg in argv]


def item_key(argv: list[str]) -> str:
    """What an `agentos run` item is: the command it runs. A hash, so the journal does not
    repeat every item's command line in full."""
    encoded = json.dumps(argv, ensure_ascii=False).encode("utf-8", errors="surrogateescape")
    return "cmd-" + sha256(encoded).hexdigest()[:20]


def collect_items(config: CommandConfig) -> list[Item]:
    lines, name = _read_lines(config)
    items = []
    named = _ids_from_lines(lines) if config.id_from_item else {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        shown = line.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
        item_id = named[number] if config.id_from_item else f"item-{number}"
        argv = substitute(config.argv, line)
        items.append(
            Item(
                id=item_id,
                title=shown,
                source=f"{name}:{number}",
                data=argv,
                seq=number,
                key=item_key(argv),
            )
        )
    return items


def _ids_from_lines(lines: list[str]) -> dict[int, str]:
    """--id-from-item: line number -> id. Lines that make the same id (`a b` and `a/b`, a line
    given twice) keep it apart: the first has it, the next ones `<id>.2`, `<id>.3`..., never an
    id that another line makes by itself."""
    wanted = {
        number: sanitize_id(line) for number, line in enumerate(lines, start=1) if line.strip()
    }
    taken = set(wanted.values())
    given: set[str] = set()
    ids: dict[int, str] = {}
    for number, item_id in wanted.items():
        if item_id in given:
            item_id = fresh_id(item_id, taken)
            taken.add(item_id)
        given.add(item_id)
        ids[number] = item_id
    return ids


def execute_command(item: Item, ctx: ItemContext) -> None:
    argv: list[str] = item.data
    try:
        ctx.run_checked(argv)
    except FileNotFoundError:
        raise ItemError(f"cannot run {argv[0]}: no such file", exit_code=127) from None
    except PermissionError:
        raise ItemError(f"cannot run {argv[0]}: permission denied", exit_code=126) from None


WORKFLOW = Workflow(
    name="run",
    summary="Run COMMAND once per input line, in parallel with --parallel N.",
    epilog=(
        "Examples:\n\n"
        "  agentos run -j4 --items urls.txt -- curl -sS {}\n\n"
        "  ls *.md | agentos run -j2 --id-from-item -- wc -l"
    ),
    collect_items=collect_items,
    execute_item=execute_command,
    options=(
        Option(
            ("--items",),
            "items",
            "File with one item per line ('-' or absent: stdin).",
            kind="path",
            metavar="FILE",
            # the work is matched by what each line is: a resume may read a changed list
            on_resume=OnResume.CHANGE,
        ),
        Option(
            ("--id-from-item",),
            "id_from_item",
            "Use the sanitised line as the item id instead of item-<line number>.",
            kind="flag",
        ),
        Option((), "command", "", kind="argv"),
    ),
    make_config=make_config,
    identity=lambda config: {"command line": shlex.join(config.argv)},
    kept_inputs=keep_stdin,
)
