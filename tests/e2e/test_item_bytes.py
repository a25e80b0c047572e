"""Items are the input's lines as bytes: split on `\\n` only, a byte-order mark and CRLF endings
dropped, bytes that are not UTF-8 carried through the run, its journal, summary, status and a
resume; ids made from lines stay apart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.processes import agentos_argv, clean_env, only_run_dir, run

from agentos.rundir.journal import json_text, read_journal
from agentos.workflows.each_line import split_lines

pytestmark = pytest.mark.timeout(120)

MODES = pytest.mark.parametrize("mode", [[], ["-j", "2"]], ids=["sequential", "parallel"])


def run_bytes(argv: list[str], cwd: Path, data: bytes | None = None) -> tuple[int, bytes, str]:
    """A run whose stdout is kept as bytes (the items' own bytes) and stdin fed `data`."""
    import subprocess

    proc = subprocess.run(
        argv,
        cwd=cwd,
        input=data,
        stdin=None if data is not None else subprocess.DEVNULL,
        capture_output=True,
        env=clean_env(),
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def test_lines_are_split_on_newlines_only() -> None:
    data = b"\xef\xbb\xbfone\x1ctwo\r\nthree\xe2\x80\xa8four\nfive\rsix\n"
    assert split_lines(data) == ["one\x1ctwo", "three\u2028four", "five\rsix"]
    assert split_lines(b"a\nb") == ["a", "b"]  # a last line without its newline is an item
    assert split_lines(b"caf\xe9\n") == ["caf\udce9"]  # carried, not replaced
    assert split_lines(b"") == []


def test_json_text_carries_bytes_that_are_not_utf8() -> None:
    value = {"item": "r\udce9sum\udce9.md", "title": "déjà \\ vu"}
    text = json_text(value)
    assert "\\udce9" in text and "déjà" in text
    text.encode("utf-8")  # valid UTF-8, no lone surrogate left in it
    assert json.loads(text) == value


@MODES
def test_a_line_with_separators_inside_is_one_item(workdir: Path, mode: list[str]) -> None:
    (workdir / "items.txt").write_bytes(
        b"\xef\xbb\xbffirst\nx\x1c--version\nwin\r\nU\xe2\x80\xa8V\n"
    )
    code, out, err = run_bytes(
        agentos_argv("run", *mode, "--items", "items.txt", "--", "printf", "<%s>\\n"), workdir
    )
    assert code == 0, err
    shown = sorted(line.split(b"] ", 1)[-1] for line in out.splitlines())
    # prefixed output shows a control character escaped; the item got it raw, as its log says
    separator = b"\\x1c" if mode else b"\x1c"
    assert shown == sorted([b"<first>", b"<x" + separator + b"--version>", b"<win>",
                            b"<U\xe2\x80\xa8V>"])  # fmt: skip
    run_dir = only_run_dir(workdir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["items"]) == 4
    logs = b"".join(path.read_bytes() for path in (run_dir / "logs").glob("*.log"))
    assert b"<x\x1c--version>" in logs


@MODES
def test_bytes_that_are_not_utf8_run_resume_and_show(workdir: Path, mode: list[str]) -> None:
    (workdir / "items.txt").write_bytes(b"caf\xe9 latin1\nplain\n")
    argv = agentos_argv("run", *mode, "--items", "items.txt", "--", "printf", "<%s>\\n")
    code, out, err = run_bytes(argv, workdir)
    assert code == 0, err
    assert b"<caf\xe9 latin1>" in out  # the item's own bytes reached the command
    run_dir = only_run_dir(workdir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert [row["status"] for row in summary["items"]] == ["done", "done"]
    records = read_journal(run_dir)
    assert not records.corrupt_lines
    assert any("caf\udce9" in r["command"] for r in records.records)
    assert b"caf\xe9 latin1" in (run_dir / "joblog.tsv").read_bytes()  # as GNU parallel has it

    again = run([*argv[:4], "--resume", str(run_dir), *argv[4:]], cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Nothing to process (2 already done)")
    status = run(agentos_argv("status", str(run_dir)), cwd=workdir)
    assert status.returncode == 0 and "2 done" in status.stdout, status.stderr
    as_json = run(agentos_argv("status", "--json", str(run_dir)), cwd=workdir)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["counts"]["done"] == 2


@MODES
def test_file_names_that_are_not_utf8_from_ls(workdir: Path, mode: list[str]) -> None:
    """The README's `ls lat/*.md | agentos run -- wc -c` with a file named `r\\xe9sum\\xe9.md`;
    then the files as commands: not executable, they fail with an error that names them; made
    executable, a resume runs them again."""
    folder = workdir / "lat"
    folder.mkdir()
    odd = os.fsencode(folder) + b"/r\xe9sum\xe9.md"
    for path in (odd, os.fsencode(folder / "plain.md")):
        with open(path, "wb") as f:
            f.write(b"#!/bin/sh\necho ran\n")
    listing = b"lat/plain.md\nlat/r\xe9sum\xe9.md\n"
    code, out, err = run_bytes(agentos_argv("run", *mode, "--", "wc", "-c"), workdir, listing)
    assert code == 0, err
    assert b"19 lat/r\xe9sum\xe9.md" in out

    argv = agentos_argv("run", *mode, "--retries", "0", "--id-from-item", "--", "{}")
    code, _, err = run_bytes(argv, workdir, listing)
    assert code == 1, err
    assert "cannot run lat/r\ufffdsum\ufffd.md: permission denied" in err
    assert "Traceback" not in err
    run_dir = sorted((workdir / ".agentos" / "runs").iterdir())[-1]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert [row["status"] for row in summary["items"]] == ["failed", "failed"]
    assert "r\udce9sum\udce9.md" in summary["items"][1]["error"]  # the name's own bytes

    os.chmod(odd, 0o755)
    os.chmod(folder / "plain.md", 0o755)
    code, out, err = run_bytes([*argv[:4], "--resume", str(run_dir), *argv[4:]], workdir, listing)
    assert code == 0, err
    assert out.count(b"ran") == 2
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert [(row["status"], row["attempts"]) for row in summary["items"]] == [("done", 2)] * 2


def test_ids_from_lines_that_make_one_id_are_kept_apart(workdir: Path) -> None:
    (workdir / "items.txt").write_text("same\nsame\na b\na/b\na_b.2\n")
    done = run(
        agentos_argv("run", "--id-from-item", "--items", "items.txt", "--", "echo"), cwd=workdir
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads((only_run_dir(workdir) / "summary.json").read_text())["items"]
    ids = [row["id"] for row in rows]
    assert ids == ["same", "same.2", "a_b", "a_b.3", "a_b.2"]
    assert done.stdout.splitlines() == ["same", "same", "a b", "a/b", "a_b.2"]
