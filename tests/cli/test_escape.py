"""Escape sequences from items reach the terminal shown, never obeyed: in a real terminal (tmux),
in the pieces (escape.py), in `agentos logs`, and never in the logs themselves."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.processes import agentos_argv, clean_env, items_file, only_run_dir, run
from support.tmux import Tmux

from agentos.engine.output.escape import escape_lines, escape_text, is_clean

HOSTILE = (
    r"printf 'before %s\n' $0; "
    r"printf 'title \033]2;PWNED-TITLE\007 set\n'; "
    r"printf 'clip \033]52;c;cHduZWQ=\007 copied\n'; "
    r"printf '\033[2J\033[Hcleared\n'; "
    r"printf '\r[item-2] FORGED: all tests passed\n'; "
    r"printf 'bs \b\b\b\b\b\b\b\b\b\b[item-9] also forged\n'; "
    r"printf 'c1 \302\233H\n'; "
    r"printf '\033[31mred\033[0m fine\n'; "
    r"printf 'progress 10%%\rprogress 20%%\r\n'; "
    r"printf 'oops \033]2;ERR-TITLE\007\n' >&2; exit 3"
)


@pytest.mark.timeout(120)
def test_a_hostile_item_cannot_drive_the_terminal(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux, a real terminal: apt-get install -y tmux")
    items = items_file(tmp_path / "items.txt", ["a"])
    argv = agentos_argv("run", "-j", "1", "--items", str(items), "--", "sh", "-c", HOSTILE)
    (tmp_path / "run.sh").write_text('"$@"\necho $? > status\n', encoding="utf-8")
    tmux = Tmux(tmp_path, 120, 40)
    try:
        tmux.start(shlex.join(["sh", "run.sh", *argv]))
        tmux("set-option", "-t", "t", "remain-on-exit", "on")
        tmux("set-option", "-g", "set-clipboard", "on")
        lines = tmux.wait_for(lambda ls: any("1 item: 1 failed" in x for x in ls), "the summary")
        title = tmux("display", "-p", "-t", "t", "#{pane_title}").strip()
        buffers = tmux("list-buffers")
        status = (tmp_path / "status").read_text().strip() if (tmp_path / "status").exists() else ""
    finally:
        tmux.kill()
    screen = "\n".join(lines)
    assert "PWNED" not in title and "ERR-TITLE" not in title, title
    assert buffers.strip() == "", buffers  # OSC 52 wrote no clipboard
    assert "[item-1] before a" in screen  # not cleared away
    assert r"[item-1] title \x1b]2;PWNED-TITLE\x07 set" in screen
    assert r"[item-1] \x1b[2J\x1b[Hcleared" in screen
    # the prefix stays at column 0: a carriage return or backspaces cannot cover it
    assert not any(line.startswith(("[item-2]", "[item-9]")) for line in lines), screen
    assert "[item-1] [item-2] FORGED: all tests passed" in screen
    assert r"[item-1] bs \x08\x08" in screen
    assert r"[item-1] c1 \u009bH" in screen
    assert "[item-1] progress 20%" in screen
    assert "red fine" in screen
    # the error column of the summary quotes stderr: escaped as well
    assert r"oops \x1b]2;ERR-TITLE\x07" in screen
    assert status in ("", "1")
    # and the log keeps every byte as the item wrote it
    (log,) = (tmp_path / ".agentos" / "runs").glob("*/logs/item-1.log")
    raw = log.read_bytes()
    assert b"\x1b]2;PWNED-TITLE\x07" in raw and b"\r[item-2] FORGED" in raw


def test_agentos_logs_escapes_unless_raw(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(
        agentos_argv("run", "-j", "1", "--items", str(items), "--", "sh", "-c", HOSTILE),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    # the run's own output went to pipes: prefixed lines are escaped there too
    assert "\x1b" not in done.stdout and "\x1b" not in done.stderr
    assert r"[item-1] title \x1b]2;PWNED-TITLE\x07 set" in done.stdout
    run_dir = only_run_dir(tmp_path)
    shown = run(agentos_argv("logs", str(run_dir), "item-1"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\r" not in shown.stdout
    assert r"title \x1b]2;PWNED-TITLE\x07 set" in shown.stdout
    assert "\n[item-2] FORGED: all tests passed\n" in shown.stdout
    raw = subprocess.run(
        agentos_argv("logs", "--raw", str(run_dir), "item-1"),
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        check=True,
    ).stdout
    assert raw == (run_dir / "logs" / "item-1.log").read_bytes()


def test_sequential_output_to_a_pipe_keeps_the_items_bytes(tmp_path: Path) -> None:
    """Without --parallel, agentos is a plain sequential tool: into a pipe or a file, the
    items' bytes go through as they are (on a terminal they are escaped)."""
    items = items_file(tmp_path / "items.txt", ["a"])
    done = subprocess.run(
        agentos_argv("run", "--items", str(items), "--", "printf", r"x\033[1my\r\n"),
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        check=True,
    )
    assert done.stdout == b"x\x1b[1my\r\n"


def test_messages_and_summary_errors_are_escaped(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a"])
    command = r"printf 'bad \033]0;T\007 \033[2J\n' >&2; exit 1"
    done = run(
        agentos_argv(
            "run", "-j", "1", "--retries", "0", "--items", str(items), "--", "sh", "-c", command
        ),
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "\x1b" not in done.stderr.replace("\x1b[?25", "")
    # the [agentos] message and the summary's error column both quote stderr, escaped
    assert done.stderr.count(r"bad \x1b]0;T\x07 \x1b[2J") >= 2, done.stderr


# -- the pieces


def test_escape_lines_examples() -> None:
    assert escape_lines(b"plain text\twith tab\n") == b"plain text\twith tab\n"
    assert escape_lines(b"a\x1b]0;t\x07b\n") == rb"a\x1b]0;t\x07b" + b"\n"
    assert escape_lines(b"\r[x] forged\n") == b"[x] forged\n"
    assert escape_lines(b"abcdef\rXY\n") == b"XYcdef\n"
    assert escape_lines(b"crlf\r\n") == b"crlf\n"
    assert escape_lines(b"\x1b[31mred\x1b[0m\n", keep_sgr=True) == b"\x1b[31mred\x1b[0m\x1b[0m\n"
    assert escape_lines(b"\x1b[31mred\x1b[0m\n") == b"red\n"
    assert escape_lines(b"\xc2\x9b2J \xc2\xb0C\n") == rb"\u009b2J " + "°C\n".encode()
    assert escape_lines("température 20°C £5\n".encode()) == "température 20°C £5\n".encode()
    assert escape_lines(b"\xff\xfe not utf-8 \x1b\n") == b"\xff\xfe not utf-8 \\x1b\n"
    many = b"ok\n" * 1000 + b"bad\x07\n" + b"ok\n" * 1000
    assert escape_lines(many) == b"ok\n" * 1000 + b"bad\\x07\n" + b"ok\n" * 1000
    assert escape_text("err \x1b[2J\nnext\x9b") == r"err \x1b[2J\x0anext\u009b"
    assert escape_text("a\nb\x07", multiline=True) == "a\nb\\x07"


_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")


@given(st.lists(st.binary(max_size=40), max_size=12), st.booleans())
def test_escaped_output_holds_no_control_but_kept_colours(
    lines: list[bytes], keep_sgr: bool
) -> None:
    block = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    shown = escape_lines(block, keep_sgr=keep_sgr)
    assert shown.count(b"\n") == block.count(b"\n")  # no line made or lost
    left = _SGR.sub(b"", shown) if keep_sgr else shown
    assert _CONTROL.search(left) is None
    assert is_clean(left)
