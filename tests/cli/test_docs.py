"""The documentation is true: its links lead somewhere, and what it names exists.

`make docs` (mkdocs build --strict) checks the site; this checks the same Markdown as it reads on
the repository's pages, which mkdocs never sees for README.md's own paths (`docs/keys.md`) and for
bench/results: every relative link leads to a file, and a `#anchor` to one of its headings, with
the anchor GitHub gives it. mkdocs.yml makes the site use the same anchors (pymdownx's slugify,
lower case), so a heading that two pages both link to works in both places.

Then what the pages name: every `agentos` option is one `agentos COMMAND --help` lists, every
`AGENTOS_*` variable is one the code reads, every module of the architecture page is a file of
the package, and the workflow guide's Python runs. Last, the built site opens in headless
Chromium with the quick start on its home page.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import types
from functools import cache
from pathlib import Path

import pytest

#: the project's root, wherever in tests/ this file sits
REPO = next(p for p in Path(__file__).resolve().parents if (p / "mkdocs.yml").is_file())

#: `[text](target)` and `![alt](target)`; a target ends at whitespace or the closing parenthesis
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def documents() -> list[Path]:
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").rglob("*.md")),
        *sorted((REPO / "bench" / "results").glob("*.md")),
    ]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a code block is no heading)."""
    lines, fence = [], ""
    for line in text.splitlines():
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text as shown (code spans keep their text, links
    their words), lower case, every character but letters, digits, `_`, `-` and spaces dropped,
    each space a `-`."""
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> list[str]:
    return [
        slug(m.group(2)) for line in prose_lines(path.read_text()) if (m := _HEADING.match(line))
    ]


def links(path: Path) -> list[str]:
    found = []
    for line in prose_lines(path.read_text()):
        line = _CODE_SPAN.sub("", line)  # `[x](y)` inside code is not a link
        found += [m.group(1) for m in _LINK.finditer(line)]
    return found


def broken_links(paths: list[Path]) -> list[str]:
    """`file: target (why)` for every relative link that leads nowhere."""
    broken = []
    for path in paths:
        for target in links(path):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            name, _, anchor = target.partition("#")
            where = (path.parent / name).resolve() if name else path
            shown = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {target}"
            if not where.exists():
                broken.append(f"{shown} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{shown} (no heading with that anchor in {where.name})")
    return broken


def test_every_relative_link_leads_to_a_file_and_heading() -> None:
    paths = documents()
    assert len([p for p in paths if p.parent.name == "docs"]) >= 10, "the reference pages"
    readme_links = [t for t in links(REPO / "README.md") if t.startswith("docs/")]
    assert len(readme_links) >= 15 and any("#" in t for p in paths for t in links(p))
    assert broken_links(paths) == []


def test_every_heading_has_an_anchor_of_its_own() -> None:
    """GitHub numbers a repeated anchor `-1`, the site `_1`: a link to either would differ."""
    for path in documents():
        found = anchors(path)
        repeated = sorted({a for a in found if found.count(a) > 1})
        assert repeated == [], f"{path.relative_to(REPO)}: headings with one anchor: {repeated}"


def test_the_readme_keeps_the_commands_a_newcomer_starts_with() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make run-requirements PARALLEL=4" in readme
    assert "make test" in readme
    assert len(readme.splitlines()) < 300, "a user's guide; the reference lives in docs/"


def test_the_check_finds_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("# A page\n\n## `agentos run`: the items\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[fine](page.md#agentos-run-the-items) [also](#here) `[code](nowhere.md)`\n"
        "# Here\n"
        "[gone](missing.md) [no anchor](page.md#the-items) [web](https://example.org/x)\n"
        "```\n[in a block](nowhere.md)\n```\n"
    )
    assert broken_links([doc]) == [
        f"{doc}: missing.md (no such file)",
        f"{doc}: page.md#the-items (no heading with that anchor in page.md)",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Keys per call and per item", "keys-per-call-and-per-item"),
        ("A CLI agent's calls: `$AGENTOS_USAGE_FILE`", "a-cli-agents-calls-agentos_usage_file"),
        ('Four kinds of "no"', "four-kinds-of-no"),
        ("More than one machine: `--backend dask`", "more-than-one-machine---backend-dask"),
        ("requirements: brief → LLD", "requirements-brief--lld"),
    ],
)
def test_anchors_are_githubs_and_the_sites(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
    slugs = pytest.importorskip("pymdownx.slugs", reason="the docs extra builds the site")
    shown = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)  # what the site's toc sees
    assert slugs.slugify(case="lower")(shown, "-") == anchor


# -- what the pages name exists

#: the commands whose options the pages name; a workflow script takes its command's options
COMMANDS = ("run", "requirements", "implement", "keys", "status", "logs", "report")
SCRIPTS = {
    "scripts/run_requirements_workflow.py": "requirements",
    "scripts/run_implement_from_lld.py": "implement",
}
#: the options of other programs the pages name, and whose they are ("bench": `python -m bench`,
#: whose --help is checked too). An agentos option is never one of these.
ELSEWHERE = {
    "--agentos-src": "bench",
    "--baseline-src": "bench",
    "--only": "bench",
    "--smoke": "bench",
    "--allowedTools": "claude",
    "--dangerously-skip-permissions": "claude",
    "--include-partial-messages": "claude",
    "--output-format": "claude, gemini",
    "--permission-mode": "claude",
    "--setting-sources": "claude",
    "--strict-mcp-config": "claude",
    "--tools": "claude",
    "--model": "claude (and the guide's own example option)",
    "--approval-mode": "gemini",
    "--message-file": "aider",
    "--joblog": "GNU parallel",
    "--retry-failed": "GNU parallel",
    "--tag": "GNU parallel",
    "--lb": "GNU parallel",
    "--list": "git branch",
    "--no-ff": "git merge",
    "--no-verify": "git commit",
    "--nworkers": "dask worker",
    "--nthreads": "dask worker",
    "--port": "dask scheduler",
    "--tls-ca-file": "dask",
    "--tls-cert": "dask",
    "--tls-key": "dask",
    "--check": "ruff format",
    "--strict": "mkdocs build",
    "--user": "systemd-run",
    "--scope": "systemd-run",
    "--urls": "the guide's example workflow",
}
_FLAG = re.compile(r"(?<![\w/.$-])(--[A-Za-z][\w-]*)")
#: an `agentos COMMAND ...` or workflow-script invocation, up to where its own options end
_INVOCATION = re.compile(
    r"\b(?:agentos\s+(" + "|".join(COMMANDS) + r")|(" + "|".join(map(re.escape, SCRIPTS)) + r"))"
    r"((?:\s+(?!--(?:\s|$))[^\s|;&#`)]+)*)"
)


def guide() -> list[Path]:
    """The pages that say how agentos is now (bench/results is history: it keeps its flags)."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def help_options(argv: list[str]) -> set[str]:
    """The options a `--help` lists: the flags in the first column of its Options section."""
    shown = subprocess.run(
        [*argv, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO, check=True
    ).stdout
    section = re.split(r"^options:$", shown, maxsplit=1, flags=re.M | re.I)  # click, argparse
    assert len(section) == 2, shown
    flags: set[str] = set()
    for line in section[1].splitlines():
        if first := re.match(r"^  (-\S.*?)(?:\s{2,}|$)", line):
            flags |= set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", first.group(1)))
    return flags


@cache
def agentos_options() -> dict[str, frozenset[str]]:
    """Each command's options as `agentos COMMAND --help` shows them; "" for `agentos` itself."""
    agentos = [sys.executable, "-m", "agentos"]
    found = {cmd: frozenset(help_options([*agentos, cmd])) for cmd in COMMANDS}
    return {**found, "": frozenset(help_options(agentos))}


def code_text(path: Path) -> list[str]:
    """The code a page shows: its fenced blocks' lines and its inline code spans."""
    lines, fence = [], ""
    for line in path.read_text().splitlines():
        opened = _FENCE.match(line)
        if fence or opened:
            if opened and (not fence or opened.group(1)[0] == fence[0]):
                fence = "" if fence else opened.group(1)
            elif fence:
                lines.append(line)
            continue
        lines += [m.group(2) for m in _CODE_SPAN.finditer(line)]
    return lines


def unknown_options(paths: list[Path], options: dict[str, frozenset[str]]) -> list[str]:
    """`file: what` for each option a page names that its command does not have: in an
    invocation (`agentos run -j4 --items f -- cmd`), the command's own; anywhere else, some
    command's, unless it is another program's (ELSEWHERE)."""
    anyone = frozenset().union(*options.values())
    wrong = []
    for path in paths:
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        for flag in sorted(set(_FLAG.findall(path.read_text()))):
            if flag not in anyone and flag not in ELSEWHERE:
                wrong.append(f"{shown}: {flag} (no agentos command has it)")
        for code in code_text(path):
            for invoked in _INVOCATION.finditer(code):
                cmd = invoked.group(1) or SCRIPTS[invoked.group(2)]
                for arg in invoked.group(3).split():
                    flag = re.sub(r"^(-[A-Za-z])\d+$", r"\1", arg.split("=", 1)[0])
                    if re.fullmatch(r"--?[A-Za-z][\w-]*", flag) and flag not in options[cmd]:
                        wrong.append(f"{shown}: {flag} (not an option of agentos {cmd})")
    return wrong


def test_every_agentos_option_the_pages_name_exists() -> None:
    options = agentos_options()
    assert {"--parallel", "-j", "--items"} <= options["run"] and "--version" in options[""]
    assert sorted(set(ELSEWHERE) & frozenset().union(*options.values())) == []
    named = {flag for path in guide() for flag in _FLAG.findall(path.read_text())}
    assert sorted(set(ELSEWHERE) - named) == [], "ELSEWHERE names what no page says any more"
    assert unknown_options(guide(), options) == []


def test_the_options_of_the_benchmark_the_pages_name_exist() -> None:
    bench = help_options([sys.executable, "-m", "bench"])
    assert sorted(f for f, whose in ELSEWHERE.items() if whose == "bench" and f not in bench) == []


def test_the_option_check_finds_a_flag_no_command_has(tmp_path: Path) -> None:
    options = {"run": frozenset({"-j", "--parallel", "--items"}), "requirements": frozenset()}
    options |= {cmd: frozenset() for cmd in COMMANDS if cmd not in options}
    page = tmp_path / "page.md"
    page.write_text(
        "Use `--parallel` and `--no-such-flag`.\n\n```sh\n"
        "agentos run -j4 --items f -- git merge --no-ff x   # after -- it is the command's\n"
        "ls | agentos requirements --items f\n"
        "python scripts/run_requirements_workflow.py -j2\n```\n"
        "Also `agentos run --parallel 2 --drafter mock`.\n"
    )
    assert unknown_options([page], options) == [
        f"{page}: --drafter (no agentos command has it)",
        f"{page}: --no-such-flag (no agentos command has it)",
        f"{page}: --items (not an option of agentos requirements)",
        f"{page}: -j (not an option of agentos requirements)",
        f"{page}: --drafter (not an option of agentos run)",
    ]


def named_variables(paths: list[Path]) -> set[str]:
    return {v for p in paths for v in re.findall(r"\bAGENTOS_[A-Z0-9_]*[A-Z0-9]\b", p.read_text())}


def test_every_agentos_variable_the_pages_name_is_read_somewhere() -> None:
    """`AGENTOS_*` in the pages: each is in agentos's code (or the test suite's, for the
    suite's own knobs, or the Makefile's)."""
    sources = [*(REPO / "agentos").rglob("*.py"), *(REPO / "tests").rglob("*.py")]
    code = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    code += (REPO / "Makefile").read_text()
    named = named_variables(guide())
    assert {"AGENTOS_CREDENTIALS", "AGENTOS_USAGE_FILE"} <= named
    assert sorted(v for v in named if not re.search(rf"\b{v}\b", code)) == []


def test_every_module_the_architecture_page_names_is_in_the_package() -> None:
    """The packages table names modules by file: each is where the table puts it."""
    page = (REPO / "docs" / "architecture.md").read_text()
    rows = [line.split("|")[1:3] for line in page.splitlines() if line.startswith("| `")]
    missing, seen = [], 0
    for package, held in rows:
        folders = re.findall(r"`([\w/]+)/`", package) or [""]
        for name in re.findall(r"`([\w/]+\.py)`", package + held):
            seen += 1
            if not any((REPO / "agentos" / folder / name).is_file() for folder in folders):
                missing.append(f"{'|'.join(folders)}: {name}")
    assert seen >= 40, "the table names the modules"
    assert missing == []


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.M | re.S)


def test_the_workflow_guides_code_runs() -> None:
    """The guide's module and its options example, run as they are: their imports exist and
    the `Workflow` and `Option`s they build are accepted."""
    from agentos.item.workflow import Workflow

    blocks = python_blocks(REPO / "docs" / "writing-a-workflow.md")
    assert len(blocks) == 3
    pages = types.ModuleType("mypkg.pages")
    exec(compile(blocks[0], "mypkg/pages.py", "exec"), pages.__dict__)
    assert isinstance(pages.WORKFLOW, Workflow)
    sys.modules.setdefault("mypkg", types.ModuleType("mypkg"))
    sys.modules["mypkg.pages"] = pages
    try:
        script: dict[str, object] = {"__name__": "pages_script"}  # not __main__: nothing runs
        exec(compile(blocks[1], "scripts/pages.py", "exec"), script)
        assert callable(script["run_workflow"])
        exec(compile(blocks[2], "mypkg/pages.py", "exec"), pages.__dict__)  # its options, added
    finally:
        del sys.modules["mypkg.pages"], sys.modules["mypkg"]
    workflow = pages.WORKFLOW
    assert isinstance(workflow, Workflow)
    assert [o.dest for o in workflow.options] == ["urls", "model"]


# -- the site, as a person sees it

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def build_site(target: Path) -> Path:
    """`mkdocs build --strict` of this checkout into `target`, as `make docs` does."""
    pytest.importorskip("mkdocs", reason="the docs extra builds the site (make docs installs it)")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return target / "index.html"


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran in headless Chromium (a throwaway profile, no
    network fetches); the browser's whole process group is gone when this returns."""
    assert CHROMIUM is not None
    flags = [
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"),
        *("--no-first-run", "--disable-background-networking", "--disable-component-update"),
    ]
    proc = subprocess.Popen(
        [CHROMIUM, *flags, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        return proc.communicate(timeout=90)[0]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow  # mkdocs builds the site, headless Chromium opens it
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (make test-tools installs it)")
def test_the_sites_home_page_shows_the_quick_start_in_chromium(tmp_path: Path) -> None:
    index = build_site(tmp_path / "site")
    dom = rendered_dom(index, tmp_path / "profile")
    shown = html.unescape(re.sub(r"<[^>]+>", "", dom))  # the text, highlighting spans and all
    assert 'id="quick-start"' in dom and "make run-requirements PARALLEL=4" in shown
    # the README's links into docs/ lead to the site's pages, and the theme laid the page out
    assert 'href="install/"' in dom and 'href="keys/"' in dom and 'href="docs/' not in dom
    assert 'class="md-nav' in dom and "md-content" in dom
    # the check itself: a page without the quick start is told apart
    bare = tmp_path / "bare.html"
    bare.write_text("<html><body><h1>agentos</h1></body></html>")
    assert 'id="quick-start"' not in rendered_dom(bare, tmp_path / "profile-0")
