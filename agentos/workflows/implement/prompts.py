"""The implementer's prompt: the LLD, where the agent works and how its work is checked, and
in a later iteration what went wrong in the one before."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentos.item.workflow import Item

if TYPE_CHECKING:
    from agentos.workflows.implement.config import ImplementConfig

FIRST_LINE = "You are a senior engineer implementing an approved low-level design (LLD)."


def implement_prompt(
    item: Item, text: str, branch: str, config: ImplementConfig, *, problem: str, tools: bool
) -> str:
    tests = config.tests
    lines = [
        FIRST_LINE,
        "",
        f"You work in a git worktree of the repository, on the branch {branch}, made from "
        f"{config.repository.base_name}. Your working directory is where the repository's "
        "files are.",
        "- Make every change in the LLD's files-changed table.",
        "- Add tests, one per test scenario of the LLD: they must fail without your change "
        "and pass with it.",
    ]
    if tests is not None:
        lines.append(
            f"- The repository's tests run with `{tests.line}`; your work is done when they "
            "pass." + (" You may run that command." if tools else "")
        )
    if tools:
        lines.append(
            "- Create and edit files with your tools, only under your working directory. Do "
            "not commit: agentos commits your work once the tests pass."
        )
    else:
        lines.append(
            "- Answer with each file you create or change as a line '### <relative/path>' "
            "followed by a fenced code block holding the whole file. Paths are relative to the "
            "working directory; no absolute paths, no '..'. Text outside the blocks is ignored."
        )
    lines.append("- Never change .git/, .envrc, CI workflows or agent settings files.")
    if problem:
        lines += ["", "## What went wrong in the previous iteration", problem]
    lines += ["", f"## LLD ({item.id})", text.strip()]
    return "\n".join(lines) + "\n"
