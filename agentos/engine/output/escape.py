"""Control characters from items and agents, made harmless before they reach a terminal.

An item's output (or an agent's answer, or an error quoting either) may hold escape sequences
that set the window title, clear the screen, write the clipboard (OSC 52), or move the cursor
back over the `[item]` prefix to forge another item's line. Everything agentos writes to a
terminal from items and agents goes through here; logs keep the raw bytes (`agentos logs`
escapes them unless --raw).

* C0 controls other than tab and newline, DEL, and C1 controls (U+0080-U+009F, as UTF-8) are
  shown as `\\xHH` (`\\u00HH` for C1): visible, never obeyed.
* A carriage return is what a terminal would make of it, after the prefix: `\\r\\n` ends a line
  as `\\n` does, and `progress 10%\\rprogress 20%` shows as the later text laid over the earlier
  (`progress 20%`), so a `\\r` can never return to column 0 over the prefix.
* SGR colour sequences (`ESC [ ... m`) are kept when colours are on, and such a line ends with a
  reset, so its colours cannot leak into the next line or prefix; with colours off they are
  dropped.

The output path is hot (a program run with PYTHONUNBUFFERED=1 writes a line per write): a block
without any control byte is found clean by one C-level `bytes.translate` and returned as it is;
only lines that hold one are looked at in Python.
"""

from __future__ import annotations

import re

#: every byte but those that send a block the slow way: C0 except tab and newline, DEL, and
#: 0xC2, the first byte of a C1 control in UTF-8 (and of common letters: checked further)
_ALLOWED = bytes(
    b for b in range(256) if not ((b < 0x20 and b not in (0x09, 0x0A)) or b in (0x7F, 0xC2))
)
#: where a line that needs a look may be (0xC2 only if a C1 follows: the line is checked again)
_SUSPECT = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f\xc2]")
_SGR = rb"\x1b\[[0-9;:]*m"
_TOKEN = re.compile(rb"(" + _SGR + rb")|\xc2[\x80-\x9f]|[\x00-\x08\x0b-\x1f\x7f]")
_C1 = re.compile(rb"\xc2[\x80-\x9f]")
_RESET = b"\x1b[0m"
_TEXT_TOKEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # one line: newlines too


def is_clean(block: bytes) -> bool:
    """No byte of `block` needs escaping. One C-level pass that deletes every harmless byte
    (~0.5 ns a byte here); text with 0xC2 in it (£, °, ©, a no-break space) also gets a search
    for C1 controls."""
    rest = block.translate(None, _ALLOWED)
    if not rest:
        return True
    if rest.count(b"\xc2") != len(rest):
        return False
    return _C1.search(block) is None


def escape_lines(block: bytes, *, keep_sgr: bool = False) -> bytes:
    """`block` (whole lines) with every line made safe to show; only the lines that need it
    are taken apart."""
    if is_clean(block):
        return block
    out: list[bytes] = []
    pos = 0
    while True:
        found = _SUSPECT.search(block, pos)
        if found is None:
            out.append(block[pos:])
            return b"".join(out)
        start = block.rfind(b"\n", pos, found.start()) + 1
        end = block.find(b"\n", found.start())
        if end < 0:
            end = len(block)
        out.append(block[pos:start])
        out.append(_escape_line(block[start:end], keep_sgr))
        pos = end


def escape_line(line: bytes, *, keep_sgr: bool = False) -> bytes:
    """One line (no newline in it) made safe to show."""
    return line if is_clean(line) else _escape_line(line, keep_sgr)


def _escape_line(line: bytes, keep_sgr: bool) -> bytes:
    if is_clean(line):
        return line
    if line.endswith(b"\r"):
        line = line[:-1]  # a CRLF line ending
    if b"\r" in line:
        line = _overlay(line)
    kept = False

    def replace(match: re.Match[bytes]) -> bytes:
        nonlocal kept
        if match.group(1) is not None:  # an SGR sequence
            kept = kept or keep_sgr
            return match.group(1) if keep_sgr else b""
        found = match.group(0)
        if len(found) == 2:  # C1, as UTF-8
            return b"\\u%04x" % found[1]
        return b"\\x%02x" % found[0]

    line = _TOKEN.sub(replace, line)
    return line + _RESET if kept else line


def _overlay(line: bytes) -> bytes:
    """What a terminal shows of `line` after its carriage returns: each later piece written
    over the start of what was there."""
    pieces = line.decode("utf-8", errors="surrogateescape").split("\r")
    shown = list(pieces[0])
    for piece in pieces[1:]:
        shown[: len(piece)] = piece
    return "".join(shown).encode("utf-8", errors="surrogateescape")


def escape_text(text: str, *, multiline: bool = False) -> str:
    """`text` (an error, a title, a message) with its control characters shown, not obeyed;
    newlines too unless `multiline`. For agentos's own lines that quote items or agents."""
    if multiline:
        return "\n".join(escape_text(line) for line in text.split("\n"))
    if text.endswith("\r"):
        text = text[:-1]
    if _TEXT_TOKEN.search(text) is None:
        return text
    return _TEXT_TOKEN.sub(lambda m: _visible(m.group(0)), text)


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code >= 0x80 else f"\\x{code:02x}"
