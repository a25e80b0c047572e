"""The public API: what `import agentos` offers a workflow's author, and what it costs."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from support.processes import PYTHON, REPO, clean_env, run

import agentos

#: where the guide to writing a workflow may live
GUIDES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_every_public_name_is_there_and_importing_agentos_loads_nothing_else() -> None:
    for name in agentos.__all__:
        assert getattr(agentos, name) is not None, name
    assert set(agentos.__all__) <= set(dir(agentos))
    from agentos import Item, ItemContext, ItemError, Workflow, run_workflow
    from agentos.commands.cli import run_workflow_cli
    from agentos.item.workflow import Item as ItemThere

    assert Item is ItemThere and run_workflow is run_workflow_cli
    assert issubclass(ItemError, RuntimeError) and Workflow and ItemContext
    show = "import agentos, sys; print(sorted(m for m in sys.modules if 'agentos' in m))"
    loaded = subprocess.run(
        [PYTHON, "-c", show],
        capture_output=True,
        text=True,
        check=True,
    )
    # the `agentos` command's start-up pays for whatever the package's __init__ loads
    assert loaded.stdout.strip() == "['agentos']"


def _guide_example() -> str:
    """The Python blocks that are files (`# path/to/file.py` on their first line) of the guide
    that has a "your own workflow" heading."""
    for guide in GUIDES:
        text = guide.read_text()
        heading = re.search(r"^#+ .*your own workflow.*$", text, re.IGNORECASE | re.MULTILINE)
        if heading is None:
            continue
        blocks = re.findall(r"```python\n(# \S+\.py\n.*?)```", text[heading.end() :], re.DOTALL)
        if blocks:
            return "".join(blocks)
    raise AssertionError(f"no 'your own workflow' example with a python block in {GUIDES}")


def test_the_guides_own_workflow_example_uses_only_the_public_api_and_runs(
    tmp_path: Path,
) -> None:
    example = _guide_example()
    imports = re.findall(r"^\s*(?:from|import) (agentos\S*)", example, re.MULTILINE)
    assert imports and set(imports) == {"agentos"}, imports
    # the block holds several files, each headed by a `# path/to/file.py` comment line
    parts = re.split(r"^# (\S+\.py)\n", example, flags=re.MULTILINE)
    files = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert len(files) >= 2, files.keys()
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "mypkg" / "__init__.py").touch()
    (tmp_path / "urls.txt").write_text("https://example.org/a\nhttps://example.org/b\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "summarise"  # what the example's items run
    tool.write_text('#!/bin/sh\necho "summary of $1"\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    env = clean_env(PYTHONPATH=str(tmp_path))
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    script = next(name for name in files if name.startswith("scripts/"))
    alone = run([sys.executable, script], cwd=tmp_path, env=env)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.splitlines() == [f"summary of https://example.org/{p}" for p in "ab"]
    assert "2 items: 2 done" in alone.stderr
    # in worker processes, which import `execute_item` by name from the author's module
    parallel = run([sys.executable, script, "--parallel", "2"], cwd=tmp_path, env=env)
    assert parallel.returncode == 0, parallel.stderr
    assert "2 items: 2 done" in parallel.stderr
    assert "summary of https://example.org/b" in parallel.stdout
