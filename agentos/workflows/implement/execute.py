"""One approved LLD → one implementation bundle: prompt, agent, parse, write atomically."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.agents import AgentRequest
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
    (trail / "prompt.md").write_text(prompt)
    answer = config.implementer.run(
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
    (trail / "answer.md").write_text(answer)
    files = parse_answer(answer)
    target = config.repo / BUNDLES / item.id
    report = _report(item, source, text, files, config, ctx, time.monotonic() - started)
    write_bundle(target, files, report)
    n = len(files)
    written = f"{n} file{'s' if n != 1 else ''} and REPORT.md"
    ctx.log(f"wrote {target.relative_to(config.repo)}/ ({written})")


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
    lines += [f"- `{f.path}`" for f in files] or ["- none: the answer held no '### path' + block"]
    lines += ["", f"## Tests ({sum(len(v) for v in tests.values())})"]
    for path, names in tests.items():
        lines.append(f"- `{path}`: " + ", ".join(names))
    if not tests:
        lines.append("- none")
    notes = []
    if lld.files_changed(text) is None:
        notes.append(
            "The LLD has no files-changed table, so no source files were scaffolded from it."
        )
    if not lld.scenarios(text):
        notes.append("The LLD has no test scenarios.")
    if notes:
        lines += ["", "## Notes"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
