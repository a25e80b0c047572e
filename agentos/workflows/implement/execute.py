"""One approved LLD → one verified commit on its own branch.

    worktree: reused as the last attempt left it, or made on the item's branch from the base
    for each iteration (at most --max-iterations):
        the agent works in the worktree (its tools, or an answer whose files agentos writes)
        no change, or a change to a control path (.git/, .envrc, ...)   → told, or the attempt fails
        the tests run there; failing → their tail goes to the agent, next iteration
        new test files: run on the base as well (red → green), a gate with --require-red
    commit on the branch (trailers say what it is), the worktree removed, --push

What the item produced is the worktree's diff against the base, whatever wrote it. An attempt
that fails leaves the worktree as it was (the next attempt, or a --resume, continues there) and
says where it is. An answer is redacted (`ctx.redact`) before anything is written from it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.agents import AgentRequest
from agentos.agents.base import ToolPolicy
from agentos.beneath import Beneath, write_beneath
from agentos.errors import ItemError
from agentos.item.context import ItemContext
from agentos.item.workflow import Item
from agentos.text import plural
from agentos.usage.record import cost_text
from agentos.workflows.implement import git
from agentos.workflows.implement.answer import forbidden_changes, parse_answer, write_files
from agentos.workflows.implement.collect import BLOB_TRAILER, LLD_TRAILER, TESTS_TRAILER
from agentos.workflows.implement.prompts import FIRST_LINE, implement_prompt
from agentos.workflows.implement.tests_gate import TestCommand, TestRun, is_test_file, run_tests
from agentos.workflows.inputs import read_text

if TYPE_CHECKING:
    from agentos.workflows.implement.config import ImplementConfig

#: what the red → green check found
RED_GREEN = "red on the base, green on the branch"
GREEN_ON_BASE = "the new tests pass on the base too"
NO_NEW_TESTS = "no new test files"


def execute_item(item: Item, ctx: ItemContext) -> None:
    config: ImplementConfig = ctx.config
    repository = config.repository
    branch: str = item.data["branch"]
    worktrees = git.Worktrees(repository.top)
    ctx.outputs["branch"] = branch
    if item.data.get("verified_commit"):  # committed and verified earlier: only the push is left
        _push(config, repository.top, branch, item.data["verified_commit"], ctx)
        return
    text = read_text(Path(item.data["path"]), "LLD")
    path = worktrees.open(item.id, branch, repository.base)
    shown = os.path.relpath(path, repository.top)
    ctx.outputs.update(worktree=shown, summary=f"worktree kept: {shown}")
    work = Attempt(item, ctx, config, path, text)
    tests, red_green, iterations = work.iterate()
    message = commit_message(item, ctx, config, tests, red_green, iterations)
    commit = git.commit(path, ctx.redact(message))
    stat = git.diffstat(path, repository.base, commit)
    worktrees.remove(item.id)
    ctx.outputs.pop("worktree", None)
    ctx.outputs.update(commit=commit, diffstat=stat, summary=f"{branch} {commit[:10]} ({stat})")
    ctx.outputs["tests"] = _tests_said(config.tests, tests)
    if red_green:
        ctx.outputs["red_green"] = red_green
    ctx.detail = "verified" if tests is not None else "unverified"
    ctx.log(f"committed {commit[:10]} on {branch}: {stat}; tests {ctx.outputs['tests']}")
    if config.push:
        _push(config, repository.top, branch, commit, ctx)


class Attempt:
    """The iterations of one attempt: agent, tests, the agent again with what failed."""

    def __init__(
        self, item: Item, ctx: ItemContext, config: ImplementConfig, path: Path, text: str
    ) -> None:
        self.item = item
        self.ctx = ctx
        self.config = config
        self.path = path  # the worktree's top
        prefix = config.repository.prefix
        self.workdir = path / prefix if prefix else path  # where --repo points, in the worktree
        self.text = text
        self.trail = ctx.state_dir / f"attempt-{ctx.attempt}"

    def iterate(self) -> tuple[TestRun | None, str, int]:
        """(the passing test run, or None without tests; the red → green finding; how many
        iterations it took), or an ItemError once --max-iterations are spent."""
        config = self.config
        problem = ""  # what the agent is told went wrong in the previous iteration
        for iteration in range(1, config.max_iterations + 1):
            step = self.trail / f"iteration-{iteration}"
            with Beneath(self.ctx.run_dir) as place:  # no link below the run directory followed
                place.makedirs(step.relative_to(self.ctx.run_dir))
            tree = self.agent(iteration, problem, step)
            changes = git.changed_paths(self.path, config.repository.base, tree)
            self.scrub_keys(changes)
            refused = forbidden_changes([p for _, p in changes])
            if refused:
                raise ItemError(
                    f"the agent changed {', '.join(refused[:3])}: agents may not; nothing was "
                    f"committed (worktree kept: {self.ctx.outputs['worktree']})"
                )
            if not changes:
                problem = (
                    "You changed no file. Implement the LLD: create or edit the files it names, "
                    "in this directory."
                )
                self.ctx.log(f"iteration {iteration}: no change")
                continue
            if config.tests is None:
                return None, "", iteration
            run = self.tests(config.tests, self.workdir, step / "tests.log")
            if not run.passed:
                problem = _failed_tests(config.tests, run, iteration, config.max_iterations)
                self.ctx.log(f"iteration {iteration}: tests failed: {run.verdict()}")
                continue
            self.ctx.log(f"iteration {iteration}: tests passed: {run.verdict()}")
            red_green = self.red_green(changes, step)
            if red_green.startswith(GREEN_ON_BASE) and config.require_red:
                problem = (
                    "The tests pass, but your new test files pass without your change as well "
                    "(they were run on the base commit): make them test what the LLD asks for."
                )
                self.ctx.log(f"iteration {iteration}: {GREEN_ON_BASE} (--require-red)")
                continue
            return run, red_green, iteration
        raise ItemError(
            f"{_last_problem(problem)} after {plural(config.max_iterations, 'iteration')} "
            "(worktree kept: "
            f"{self.ctx.outputs['worktree']})"
        )

    def agent(self, iteration: int, problem: str, step: Path) -> str:
        """One call of the agent; the worktree's tree afterwards."""
        config, ctx = self.config, self.ctx
        tools = config.edits_with_tools
        prompt = implement_prompt(
            self.item, self.text, ctx.outputs["branch"], config, problem=problem, tools=tools
        )
        ctx.keep(step / "prompt.md", prompt)
        before = git.snapshot(self.path, step)
        answer = config.implementer.run(
            AgentRequest(
                "implement",
                prompt,
                {
                    "lld": self.text,
                    "item_id": self.item.id,
                    "iteration": str(iteration),
                    "problem": problem,
                    "mode": "tools" if tools else "text",
                },
                cwd=str(self.workdir),
                tools=ToolPolicy.EDIT if tools else ToolPolicy.NONE,
                commands=(config.tests.line,) if config.tests is not None and tools else (),
                allow=config.allow if tools else (),
            ),
            ctx,
        )
        answer = ctx.redact(answer)
        ctx.keep(step / "answer.md", answer)
        after = git.snapshot(self.path, step)
        if not tools or after == before:
            # an answer is the work of an agent without tools; and of one that changed nothing
            # itself but answered with files (a command that prints them)
            if FIRST_LINE in answer:
                raise ItemError(
                    "the implementer's answer repeats the prompt instead of answering it (a "
                    "command that prints its input?); nothing was written"
                )
            files = parse_answer(answer)
            if files:
                write_files(self.workdir, files)
                wrote = plural(len(files), "file")
                ctx.log(f"iteration {iteration}: wrote {wrote} from the answer")
                after = git.snapshot(self.path, step)
            elif not tools:
                raise ItemError(_no_files(answer))
        return after

    def scrub_keys(self, changes: list[tuple[str, str]]) -> None:
        """No key in a file the agent changed: an agent with tools may write its environment
        into a file as easily as into an answer, and the file would be committed and pushed."""
        for status, path in changes:
            if status == "D":
                continue
            where = self.path / path
            try:
                if where.is_symlink() or not where.is_file():
                    continue
                data = where.read_bytes()
            except OSError:
                continue
            text = data.decode("utf-8", errors="surrogateescape")
            clean = self.ctx.redact(text)
            if clean != text:
                write_beneath(
                    self.path,
                    path,
                    clean.encode("utf-8", errors="surrogateescape"),
                    durable=False,
                    replace_link=True,
                )
                self.ctx.log(f"a key in {path} was replaced by its label")

    def tests(self, command: TestCommand, workdir: Path, log: Path) -> TestRun:
        run = run_tests(command, workdir, self.path, self.ctx, self._test_time())
        self.ctx.keep(log, run.output)
        return run

    def _test_time(self) -> float:
        return min(self.config.test_timeout, self.ctx.time_left(self.config.test_timeout))

    def red_green(self, changes: list[tuple[str, str]], step: Path) -> str:
        """Whether the test files the agent added fail on the base: they are copied into a
        worktree of the base commit, and the tests run there (only them, for pytest)."""
        config = self.config
        assert config.tests is not None
        new = [path for status, path in changes if status == "A" and is_test_file(path)]
        if not new:
            return NO_NEW_TESTS
        worktrees = git.Worktrees(config.repository.top)
        name = f"{self.item.id}.base"
        base = worktrees.open_detached(name, config.repository.base)
        try:
            for path in new:
                write_beneath(base, path, (self.path / path).read_bytes(), durable=False)
            prefix = config.repository.prefix
            workdir = base / prefix if prefix else base
            command = config.tests
            if "pytest" in command.line and config.tests.source != "--test-cmd":
                only = " ".join(shlex.quote(os.path.relpath(base / p, workdir)) for p in new)
                command = TestCommand(f"{command.line} {only}", command.source)
            run = self.tests(command, workdir, step / "tests-on-base.log")
        finally:
            worktrees.remove(name)
        found = GREEN_ON_BASE if run.passed else RED_GREEN
        self.ctx.log(f"new test files ({len(new)}): {found}")
        return f"{found} ({plural(len(new), 'new test file')})"


def _failed_tests(command: TestCommand, run: TestRun, iteration: int, limit: int) -> str:
    return (
        f"The tests failed (iteration {iteration} of {limit}). `{command.line}` "
        + ("was stopped: it ran too long" if run.timed_out else f"exited {run.returncode}")
        + ". The end of its output:\n\n```\n"
        + run.tail().replace("```", "'''")
        + "\n```\n\nFix the implementation (or a test that is wrong; never delete or skip a "
        "test to make the run pass)."
    )


def _last_problem(problem: str) -> str:
    if problem.startswith("The tests failed"):
        tail = [line for line in problem.split("```")[1].splitlines() if line.strip()]
        return "the tests still fail" + (f" ({tail[-1].strip()[:120]})" if tail else "")
    if problem.startswith("You changed no file"):
        return "the agent changed no file"
    return "the new tests still pass on the base (--require-red)"


def _no_files(answer: str) -> str:
    start = next((line.strip() for line in answer.splitlines() if line.strip()), "")
    return (
        "the implementer's answer has no files (a '### path' line, then a fenced block); "
        + (f"it started with: {start[:80]!r}; " if start else "it was empty; ")
        + "nothing was written"
    )


def _tests_said(command: TestCommand | None, run: TestRun | None) -> str:
    if command is None or run is None:
        return "unverified (no test command)"
    return f"passed ({command.line}: {run.verdict()})"


def commit_message(
    item: Item,
    ctx: ItemContext,
    config: ImplementConfig,
    tests: TestRun | None,
    red_green: str,
    iterations: int,
) -> str:
    """Subject, a short body, and trailers that say what the commit is: which LLD (and its
    content, so a changed LLD is implemented again), from which run, by which agent, at what
    cost, verified how."""
    title = _one_line(ctx.redact(item.title)) or item.id
    source = item.data["source"]
    body = (
        f"From the approved LLD {source}, by {config.implementer.spec} in "
        f"{plural(iterations, 'iteration')}."
    )
    trailers = {
        LLD_TRAILER: source,
        BLOB_TRAILER: item.data.get("blob", ""),
        "Agentos-Item": item.id,
        "Agentos-Run": ctx.run_dir.name,
        "Agentos-Agent": config.implementer.spec,
        "Agentos-Attempt": str(ctx.attempt),
        "Agentos-Iterations": str(iterations),
        "Agentos-Cost": cost_text(ctx.spent()) if ctx.spent().calls else "$0 (no model calls)",
        TESTS_TRAILER: _tests_said(config.tests, tests),
    }
    if red_green:
        trailers["Agentos-Red-Green"] = red_green
    lines = [f"implement {item.id}: {title}"[:200], "", body, ""]
    lines += [f"{key}: {_one_line(value)}" for key, value in trailers.items()]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _push(config: ImplementConfig, top: Path, branch: str, commit: str, ctx: ItemContext) -> None:
    assert config.push is not None
    try:
        git.push(top, config.push, branch)
    except ItemError as exc:
        raise ItemError(
            f"{exc}; the verified commit {commit[:10]} is on {branch}: a rerun pushes it"
        ) from None
    ctx.outputs.update(pushed=config.push, commit=commit)
    ctx.outputs.setdefault("summary", f"{branch} {commit[:10]}")
    ctx.outputs["summary"] += f", pushed to {config.push}"
    ctx.detail = ctx.detail or "verified"
    ctx.log(f"pushed {branch} to {config.push}")
