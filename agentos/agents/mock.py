"""`mock`: an offline, deterministic agent. Not a stub: it does each task for real, by rules.

* draft: builds an LLD from the brief. Each bullet point becomes a requirement with one test
  scenario. A bullet that asks a question ("- Should exports include archived items?") is an open
  requirement: the first draft leaves it without a scenario, and a redraft that is given a review
  settles it ("Exports include archived items (settled in review)") and adds its scenario. Paths
  in backticks in the brief (`src/export.py`) fill the files-changed table.
* review: APPROVED when every requirement has a test scenario and every section is there;
  otherwise REVISE, naming what is missing.
* implement: writes each file of the LLD's files-changed table (a Python module that lists the
  requirements it meets) and a pytest file with one test per scenario that checks them, so the
  repository's tests pass on the branch and the new ones fail without it. As an agent with tools
  (`--edits tools`) it writes them into its working directory; otherwise it answers with `### path`
  + fenced block pairs. AGENTOS_MOCK_FAIL_FIRST=1 leaves a requirement out of the first round, so
  the feedback loop (failing tests back to the agent) runs.

It prints a few progress lines (so prefixed output is visible), and two environment variables make
it behave like a remote model: AGENTOS_MOCK_LATENCY=SECONDS sleeps per call, and
AGENTOS_SIMULATE_429=P makes a fraction P of calls raise a rate limit (decided by a hash of item,
attempt and task, so a rerun sees the same calls limited).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from agentos import lld
from agentos.agents.base import Agent, AgentRequest
from agentos.errors import ItemError, RateLimited
from agentos.item.context import ItemContext
from agentos.text import plural
from agentos.usage.prices import ModelRef

_BULLET = re.compile(r"^[-*+]\s+(?:\[[ xX]\]\s+)?(.+?)\s*$")
_PATH = re.compile(r"`([\w./-]+\.(?:py|md|toml|cfg|ini|ya?ml|json|js|ts|sh|txt|sql|html|css))`")
_PATH_ONLY = re.compile(r"[\w.-]+(?:/[\w.-]+)*")
_QUESTION = re.compile(r"^(should|shall|must|do|does|can|will|is|are)\s+(.+?)\?$", re.IGNORECASE)


def _env_float(name: str, default: float = 0.0) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class MockAgent(Agent):
    """An offline agent (`mock`) that does each task by rules: for demos and tests."""

    spec: str = "mock"
    edits_files = True

    def models(self) -> list[ModelRef | None]:
        return []  # offline: no call costs anything

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        latency = _env_float("AGENTOS_MOCK_LATENCY")
        share = _env_float("AGENTOS_SIMULATE_429")
        if share > 0:
            seed = f"{ctx.item_id}|{ctx.attempt}|{request.task}|{request.inputs.get('iteration')}"
            draw = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if draw < share:
                ctx.log(f"mock {request.task}: simulated HTTP 429 Too Many Requests")
                raise RateLimited(
                    "mock: simulated HTTP 429",
                    retry_after=_env_float("AGENTOS_SIMULATE_429_RETRY_AFTER", 2.0),
                )
        if latency > 0:
            ctx.log(f"mock {request.task}: thinking for {latency:g} s")
            ctx.sleep(latency)
        if request.task == "draft":
            return self._draft(request.inputs, ctx)
        if request.task == "review":
            return self._review(request.inputs["draft"], ctx)
        if request.task == "implement":
            return self._implement(request, ctx)
        raise ItemError(f"the mock agent cannot do task {request.task!r}")

    # -- draft
    def _draft(self, inputs: dict[str, str], ctx: ItemContext) -> str:
        brief, title = inputs["brief"], inputs["title"]
        settle = bool(inputs.get("review"))
        bullets = _bullets(brief)
        ctx.log(f"mock draft: read the brief ({plural(len(bullets), 'bullet point')})")
        reqs: list[tuple[str, str, bool]] = []  # id, text, has a scenario
        for n, bullet in enumerate(bullets or [title], start=1):
            question = _QUESTION.match(bullet)
            if question and settle:
                text = _sentence(question.group(2)).rstrip(".") + " (settled in review)."
                reqs.append((f"R{n}", text, True))
            elif question:
                reqs.append((f"R{n}", f"Open question: {bullet}", False))
            else:
                reqs.append((f"R{n}", _sentence(bullet), True))
        files = list(dict.fromkeys(_PATH.findall(brief))) or [f"src/{_module(inputs['slug'])}.py"]
        out = [
            f"# LLD: {title}",
            "",
            "## 1. Context & goal",
            _context(brief, title),
            "",
            "## 2. Proposed changes",
            f"Implement the brief in {plural(len(files), 'file')}; each requirement below maps "
            "to one test scenario.",
            "",
            "| File | Change |",
            "|---|---|",
        ]
        out += [f"| `{f}` | {_change_for(f, reqs)} |" for f in files]
        out += ["", "## 3. Requirements"] + [f"- {rid}: {text}" for rid, text, _ in reqs]
        out += [
            "",
            "## 4. Test scenarios",
            "| ID | Requirement | Scenario | Expected |",
            "|---|---|---|---|",
        ]
        scenario_no = 0
        for rid, text, covered in reqs:
            if covered:
                scenario_no += 1
                out.append(
                    f"| T{scenario_no} | {rid} | Exercise: {text.rstrip('.')} | "
                    f"{rid} holds; no error |"
                )
        out += [
            "",
            "## 5. Security & safety",
            "- Inputs from the brief's users are validated before use; failures are reported "
            "with a clear message and change nothing.",
            "- No secrets are logged or written to disk.",
            "",
            "## 6. Definition of done",
            "- [ ] Every requirement is implemented and its scenario passes.",
            "- [ ] Documentation updated.",
        ]
        ctx.log(
            f"mock draft: {plural(len(reqs), 'requirement')}, "
            f"{plural(scenario_no, 'test scenario')}"
        )
        return "\n".join(out) + "\n"

    # -- review
    def _review(self, draft: str, ctx: ItemContext) -> str:
        missing_sections = [s for s in lld.SECTIONS if lld.section(draft, s) is None]
        reqs = lld.requirements(draft)
        uncovered = lld.uncovered_requirements(draft)
        problems = []
        if missing_sections:
            problems.append("Missing sections: " + ", ".join(missing_sections) + ".")
        if not reqs:
            problems.append("No requirements (expected '- R1: ...' lines).")
        if uncovered:
            problems.append("Requirements without a test scenario: " + ", ".join(uncovered) + ".")
        if problems:
            ctx.log("mock review: REVISE: " + " ".join(problems))
            return (
                "REVISE\n\n"
                + "\n".join(f"- {p}" for p in problems)
                + "\n\nGive every requirement one scenario in '4. Test scenarios'.\n"
            )
        ctx.log(f"mock review: APPROVED ({plural(len(reqs), 'requirement')}, all covered)")
        return f"APPROVED\n\nEvery requirement ({len(reqs)}) has a test scenario.\n"

    # -- implement
    def _implement(self, request: AgentRequest, ctx: ItemContext) -> str:
        inputs = request.inputs
        text, item = inputs["lld"], inputs["item_id"]
        # AGENTOS_MOCK_FAIL_FIRST=1: the first round leaves a requirement out, so its test
        # fails and the tests' output has to come back before the work is right
        partial = _env_float("AGENTOS_MOCK_FAIL_FIRST") > 0 and not inputs.get("problem")
        files = implementation(text, item, partial=partial)
        ctx.log(
            f"mock implement: {plural(len(files), 'file')}, "
            f"{plural(len(lld.scenarios(text)), 'scenario')}"
            f"{' (leaving one out)' if partial else ''}"
        )
        if inputs.get("mode") == "tools" and request.cwd:
            # an agent with tools: it writes into its working directory itself, never through
            # a symlink, never outside it
            from agentos.beneath import write_beneath

            for path, body in files:
                write_beneath(request.cwd, path, body, durable=False, replace_link=True)
            return f"Implemented {item}: wrote {', '.join(path for path, _ in files)}.\n"
        parts = [f"Implementation of {item}: {lld.title_of(text, item)}.", ""]
        for path, body in files:
            parts += _fenced(path, body)
        return "\n".join(parts)


def implementation(text: str, item: str, *, partial: bool = False) -> list[tuple[str, str]]:
    """(path, content) of the mock's implementation of an LLD: each Python file of its
    files-changed table as a module that lists the requirements it meets, other files as a
    note, and a pytest file whose tests (one per scenario) load the modules by path and check
    them. `partial`: the modules leave the last requirement out, so one test fails."""
    # a table row may name a folder or a pattern (`tests/`, `src/*.py`): nothing to write
    changes = [f for f in lld.files_changed(text) or [] if _PATH_ONLY.fullmatch(f.path)]
    tests_at = next((f.path for f in changes if _is_test(f.path) and f.path.endswith(".py")),
                    f"tests/test_{_module(item)}.py")  # fmt: skip
    changes = [f for f in changes if not _is_test(f.path)]
    if not any(f.path.endswith(".py") for f in changes):
        changes.append(lld.FileChange(f"src/{_module(item)}.py", "the implementation"))
    reqs = dict(lld.requirements(text)) or {"R1": lld.title_of(text, item)}
    met = dict(list(reqs.items())[:-1]) if partial and len(reqs) > 1 else reqs
    if partial and len(reqs) == 1:
        met = {}
    files = [(f.path, _module_file(f, text, item, met)) for f in changes]
    modules = [f.path for f in changes if f.path.endswith(".py")]
    files.append((tests_at, _pytest_file(lld.scenarios(text), reqs, item, modules, tests_at)))
    return files


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("test_") or name.endswith("_test.py") or "/tests/" in f"/{path}"


# ---- helpers


def _bullets(brief: str) -> list[str]:
    found = []
    for line in brief.splitlines():
        if line[:1].isspace():
            continue  # nested bullets are detail, not requirements
        match = _BULLET.match(line)
        if match:
            found.append(match.group(1).replace("|", "/"))
    return found


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else text


def _context(brief: str, title: str) -> str:
    for block in re.split(r"\n\s*\n", brief):
        # a section's heading may sit right above its first paragraph
        block = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
        block = block.strip()
        if block and not block.startswith(("-", "*", "+", "|", "```")):
            return " ".join(block.split())
    return f"Deliver: {title}."


def _module(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "feature"


def _change_for(path: str, reqs: list[tuple[str, str, bool]]) -> str:
    if "test" in path.lower():
        return "tests for " + ", ".join(rid for rid, _, _ in reqs)
    return "implements " + ", ".join(rid for rid, _, _ in reqs)


def _fence_for(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    return "`" * max(3, longest + 1)


def _fenced(path: str, body: str) -> list[str]:
    fence = _fence_for(body)
    lang = {"py": "python", "md": "markdown", "sh": "sh"}.get(path.rsplit(".", 1)[-1], "")
    return [f"### {path}", f"{fence}{lang}", body.rstrip("\n"), fence, ""]


def _module_file(change: lld.FileChange, text: str, item: str, met: dict[str, str]) -> str:
    title = lld.title_of(text, item)
    what = f"{title}: {change.change or 'see the LLD'}"
    if change.path.endswith(".py"):
        doc = what.replace("\\", "/").replace('"', "'")
        listed = "".join(f"    {rid!r}: {req!r},\n" for rid, req in met.items())
        return (
            f'"""{doc}.\n\nWritten by the agentos mock implementer from {item}.\n"""\n\n'
            f"REQUIREMENTS = {{\n{listed}}}\n\n\n"
            "def satisfies(requirement: str) -> bool:\n"
            '    """Whether this module meets the LLD\'s requirement (R1, R2, ...)."""\n'
            "    return requirement in REQUIREMENTS\n"
        )
    if change.path.endswith(".md"):
        return f"# {title}\n\n{change.change or 'See the LLD.'} ({item})\n"
    return f"{what} ({item})\n"


def _pytest_file(
    scenarios: list[lld.Scenario], reqs: dict[str, str], item: str, modules: list[str], at: str
) -> str:
    depth = at.count("/")
    lines = [
        f'"""Tests for {item}: one per test scenario of the LLD (by the agentos mock)."""',
        "",
        "import importlib.util",
        "from pathlib import Path",
        "",
        f"ROOT = Path(__file__).resolve().parents[{depth}]",
        f"MODULES = {modules!r}",
        "",
        "",
        "def meets(requirement: str) -> bool:",
        '    """Every module of the change meets `requirement`."""',
        "    for relative in MODULES:",
        "        path = ROOT / relative",
        "        spec = importlib.util.spec_from_file_location(path.stem, path)",
        "        assert spec is not None and spec.loader is not None, relative",
        "        module = importlib.util.module_from_spec(spec)",
        "        spec.loader.exec_module(module)",
        "        if not module.satisfies(requirement):",
        "            return False",
        "    return True",
    ]
    checks = [(s.id, s.requirement, f"{s.scenario} -> {s.expected}") for s in scenarios] or [
        (rid, rid, text) for rid, text in reqs.items()
    ]
    names: set[str] = set()
    for sid, requirement, said in checks:
        name = base = _module(f"{sid}_{said}")[:60]
        n = 1
        while name in names:  # two scenarios alike: the second must not replace the first
            n += 1
            name = f"{base}_{n}"
        names.add(name)
        targets = [r.strip() for r in requirement.split(",") if r.strip() in reqs] or list(reqs)
        doc = f"{sid}: {said}".replace("\\", "/").replace('"', "'")
        lines += ["", "", f"def test_{name}() -> None:", f'    """{doc}"""']
        lines += [f"    assert meets({rid!r}), {rid!r}" for rid in targets]
    return "\n".join(lines) + "\n"
