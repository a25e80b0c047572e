"""`agentos run`: the generic workflow. One item per non-empty input line, one command per item.

    agentos run [OPTIONS] [--items FILE] -- COMMAND [ARG]...

An argument that is exactly `{}` becomes the item, as one argument (agentos starts no shell).
A `{}` inside a larger argument is taken for part of a POSIX shell script (`sh -c 'echo {}'`)
and the item is quoted for where the `{}` stands, so that it stays data (`$(touch pwned)` must
never run): bare, it is shell-quoted as GNU parallel does; inside the script's own single
quotes (`sh -c "echo '{}'"`) each `'` of the item becomes `'\''`; inside its double quotes
(`sh -c 'echo "{}"'`) `\\ $ ` "` are backslashed. Where no quoting can be trusted (inside
backquotes, `${...}`, `$'...'`, `$((...))`, after a backslash or a `$`, after a here-document
`<<`) the command is refused before anything runs, naming the safe form: the item as an
argument of the script, `sh -c '... "$1" ...' sh {}`. Without any `{}` the item is appended as
the last argument. Item ids are `item-<line number>`, or the sanitised line with
`--id-from-item`; for --resume each item is keyed by the command it runs, so a changed input
list resumes correctly. Exit status 0 is done, 75 or a rate-limit message on stderr is rate
limited, anything else failed.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentos.errors import ConfigError, ItemError, UsageError
from agentos.item.context import ItemContext
from agentos.item.ids import fresh_id, sanitize_id
from agentos.item.workflow import Item, OnResume, Option, Workflow
from agentos.rundir.journal import atomic_write_bytes

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
    """`agentos run`'s own options: where the items come from and the command each runs."""

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
    check_placeholders(tuple(command))
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
    return [item if arg == PLACEHOLDER else _fill(arg, item) for arg in argv]


class Quoting(enum.Enum):
    """Where a `{}` stands in a shell script, and so how the item is quoted there."""

    BARE = "bare"  # a word of a command (also inside $(...))
    SINGLE = "single"  # inside '...'
    DOUBLE = "double"  # inside "..."
    UNSAFE = "unsafe"  # anywhere else: refused


#: why a place is UNSAFE, as the refusal says it
_UNSAFE_PLACES = {
    "`": "inside backquotes",
    "${": "inside ${...}",
    "$'": "inside $'...'",
    "$((": "inside $((...))",
    "\\": "after a backslash",
    "$": "after a $",
    "<<": "after a here-document (<<)",
}


def _fill(arg: str, item: str) -> str:
    pieces = []
    at = 0
    for position, quoting, _ in placeholders(arg):
        pieces.append(arg[at:position])
        if quoting is Quoting.BARE:
            pieces.append(shlex.quote(item))
        elif quoting is Quoting.SINGLE:
            pieces.append(item.replace("'", "'\\''"))
        elif quoting is Quoting.DOUBLE:
            pieces.append(_DOUBLE_SPECIAL.sub(r"\\\g<0>", item))
        else:  # check_placeholders refused the command before any item was read
            raise UsageError(unsafe_placeholder(arg, _))
        at = position + len(PLACEHOLDER)
    pieces.append(arg[at:])
    return "".join(pieces)


_DOUBLE_SPECIAL = re.compile(r'[\\$`"]')


@functools.lru_cache(maxsize=64)
def placeholders(arg: str) -> tuple[tuple[int, Quoting, str], ...]:
    """Each `{}` of `arg` read as a POSIX shell script: (offset, how to quote the item there,
    the place when UNSAFE). A small lexer: quotes, backslashes, $(...), backquotes, ${...},
    $'...', $((...)) and here-documents; enough to know the quoting at each `{}`."""
    found: list[tuple[int, Quoting, str]] = []
    stack = ["bare"]  # bare | ' | " | ` | ${ | $' | $(( | $(
    heredoc = False
    depth = [0]  # open parentheses in each $( ... ) level, so `case x in a)` does not close it
    i, n = 0, len(arg)
    while i < n:
        top = stack[-1]
        if arg.startswith(PLACEHOLDER, i):
            if heredoc:  # a here-document's body expands $(...) whatever quotes it holds
                found.append((i, Quoting.UNSAFE, "<<"))
            elif top in ("bare", "$("):
                before = arg[i - 1] if i else ""
                place = "$" if before == "$" else ""
                found.append((i, Quoting.UNSAFE if place else Quoting.BARE, place))
            elif top == "'":
                found.append((i, Quoting.SINGLE, ""))
            elif top == '"':
                before = arg[i - 1] if i else ""
                place = "$" if before == "$" else ""
                found.append((i, Quoting.UNSAFE if place else Quoting.DOUBLE, place))
            else:
                found.append((i, Quoting.UNSAFE, top))
            i += len(PLACEHOLDER)
            continue
        char = arg[i]
        if top == "'":
            if char == "'":
                stack.pop()
        elif top == "$'":
            if char == "\\":
                i += 1
            elif char == "'":
                stack.pop()
        elif top == "${":
            if char == "}":
                stack.pop()
        elif top == "$((":
            if arg.startswith("))", i):
                stack.pop()
                i += 1
        elif char == "\\":
            if arg.startswith(PLACEHOLDER, i + 1):
                found.append((i + 1, Quoting.UNSAFE, "\\"))
                i += 1 + len(PLACEHOLDER)
                continue
            i += 1  # the escaped character is data
        elif (top == "`" and char == "`") or (top == '"' and char == '"'):
            stack.pop()
        elif char == "$" and arg.startswith("$((", i):
            stack.append("$((")
            i += 2
        elif char == "$" and arg.startswith("$(", i):
            stack.append("$(")
            depth.append(0)
            i += 1
        elif char == "$" and arg.startswith("${", i) and not arg.startswith(PLACEHOLDER, i + 1):
            stack.append("${")
            i += 1
        elif char == "$" and arg.startswith("$'", i) and top != '"':
            stack.append("$'")
            i += 1
        elif char == "`":
            stack.append("`")
        elif top in ("bare", "$("):
            if char == "'":
                stack.append("'")
            elif char == '"':
                stack.append('"')
            elif char == "#" and (i == 0 or arg[i - 1] in " \t\n;&|()"):
                end = arg.find("\n", i)  # a comment: its quotes are no quotes
                i = n if end < 0 else end
                continue
            elif arg.startswith("<<<", i):
                i += 2  # a here-string: its word is quoted like any other
            elif arg.startswith("<<", i):
                heredoc = True
                i += 1
            elif top == "$(" and char == "(":
                depth[-1] += 1
            elif top == "$(" and char == ")":
                if depth[-1]:
                    depth[-1] -= 1
                else:
                    stack.pop()
                    depth.pop()
        i += 1
    return tuple(found)


def unsafe_placeholder(arg: str, place: str) -> str:
    where = _UNSAFE_PLACES.get(place, "there")
    shown = arg if len(arg) <= 60 else arg[:57] + "..."
    return (
        f"{{}} {where} in {shown!r} cannot be quoted safely (the item could run as code); "
        "pass the item as an argument of the script instead, e.g. "
        "agentos run -- sh -c 'echo \"$1\"' sh {}"
    )


def check_placeholders(argv: tuple[str, ...]) -> None:
    """Refuse, before any item is read, a `{}` that no quoting can keep data (UsageError)."""
    for arg in argv:
        if arg == PLACEHOLDER or PLACEHOLDER not in arg:
            continue
        for _, quoting, place in placeholders(arg):
            if quoting is Quoting.UNSAFE:
                raise UsageError(unsafe_placeholder(arg, place))


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
