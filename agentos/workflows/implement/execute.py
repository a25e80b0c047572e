"""One approved LLD → one implementation bundle: prompt, agent, parse, write atomically.

An answer with no files (chat, a refusal, the prompt sent back) is a failed attempt: retried,
and nothing is written, so a later run does not take the item for done. The answer is redacted
(`ctx.redact`) as it arrives: a key the agent echoes reaches neither the bundle nor the trail.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.agents import AgentRequest
from agentos.errors import ItemError
from agentos.text import plural
from agentos.workflows import lld
from agentos.workflows.implement.bundle import BundleFile, parse_answer, write_bundle
from agentos.workflows.implement.collect import BUNDLES
from agentos.workflows.inputs import read_text
from agentos.workflows.items import Item
from agentos.workflows.parallel.context import ItemContext

if TYPE_CHECKING:
    from agentos.workflows.implement import ImplementConfig

_TEST_FUNCTION = re.compile(r"^\s*(?:async\s+)?def\s+(test_\w+)", re.MULTILINE)


def implement_prompt(item_id: str, text: str) -> str:
    return (
        "\n".join(
            [
                "You are a senior engineer. Implement the approved low-level design (LLD)",
                "below. Write every file in its files-changed table, and tests: one per test",
                "scenario. Answer with each file as a line '### <relative/path>' followed by a",
                "fenced code block holding the whole file. Paths are relative to the repository",
                "root; no absolute paths, no '..'. Text outside the blocks is ignored.",
                "",
                f"## LLD ({item_id})",
                text.strip(),
            ]
        )
        + "\n"
    )


def execute_item(item: Item, ctx: ItemContext) -> None:
    config: ImplementConfig = ctx.config
    started = time.monotonic()
    source = Path(item.data["path"])
    text = read_text(source, "LLD")
    prompt = implement_prompt(item.id, text)
    trail = ctx.state_dir / f"attempt-{ctx.attempt}"
    trail.mkdir(parents=True, exist_ok=True)
    (trail / "prompt.md").write_text(ctx.redact(prompt))
    answer = ctx.redact(
        config.implementer.run(
            AgentRequest(
                "implement",
                prompt,
                {
                    "lld": text,
                    "item_id": item.id,
                },
                cwd=str(config.repo),
            ),
            ctx,
        )
    )
    (trail / "answer.md").write_text(answer)
    files = _files_of(answer, prompt)
    target = config.repo / BUNDLES / item.id
    report = _report(item, source, text, files, config, ctx, time.monotonic() - started)
    write_bundle(target, files, ctx.redact(report))
    written = f"{plural(len(files), 'file')} and REPORT.md"
    ctx.log(f"wrote {target.relative_to(config.repo)}/ ({written})")


def _files_of(answer: str, prompt: str) -> list[BundleFile]:
    """The answer's files; none, or the prompt sent back (whose LLD may hold headings above
    code blocks that look like files), is a failed attempt."""
    if prompt.splitlines()[0] in answer:
        raise ItemError(
            "the implementer's answer repeats the prompt instead of answering it (a command "
            "that prints its input?); nothing was written"
        )
    files = parse_answer(answer)
    if not files:
        start = next((line.strip() for line in answer.splitlines() if line.strip()), "")
        raise ItemError(
            "the implementer's answer has no files (a '### path' line, then a fenced block); "
            + (f"it started with: {start[:80]!r}; " if start else "it was empty; ")
            + "nothing was written"
        )
    return files


def _report(
    item: Item,
    source: Path,
    text: str,
    files: list[BundleFile],
    config: ImplementConfig,
    ctx: ItemContext,
    seconds: float,
) -> str:
    tests = {
        f.path: _TEST_FUNCTION.findall(f.content) for f in files if _TEST_FUNCTION.search(f.content)
    }
    lines = [
        f"# Implementation report: {item.id}",
        "",
        f"- LLD: {source.relative_to(config.repo)} ({lld.title_of(text, item.id)})",
        f"- Agent: {config.implementer.spec}",
        f"- Attempt: {ctx.attempt}",
        f"- Duration: {seconds:.1f} s",
        f"- Written: {datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "",
        f"## Files ({len(files)})",
    ]
    lines += [f"- `{f.path}`" for f in files]
    lines += ["", f"## Tests ({sum(len(v) for v in tests.values())})"]
    for path, names in tests.items():
        lines.append(f"- `{path}`: " + ", ".join(names))
    if not tests:
        lines.append("- none")
    notes = []
    table = lld.files_changed(text)
    if table is None:
        notes.append(
            "The LLD has no files-changed table, so no source files were scaffolded from it."
        )
    else:
        missing = [c.path for c in table if c.path not in {f.path for f in files}]
        if missing:
            notes.append(
                "Files in the LLD's files-changed table that the answer does not give: "
                + ", ".join(f"`{p}`" for p in missing)
                + "."
            )
    if not lld.scenarios(text):
        notes.append("The LLD has no test scenarios.")
    if notes:
        lines += ["", "## Notes"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
