"""The workflows on repositories written by people (issue 13): LLDs in the shapes found in the
wild (tests/fixtures/real-repo), agents that answer with chat, refusals, the prompt or their own
key, and reruns that must say what is left to do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.processes import REPO, agentos_argv, clean_env, git_repo, run
from support.rundir import journal

from agentos import lld
from agentos.item.context import ItemContext
from agentos.item.keys import AttemptKeys
from agentos.item.workflow import Item
from agentos.workflows.requirements.verdict import verdict

pytestmark = pytest.mark.timeout(120)

FIXTURE = REPO / "tests" / "fixtures" / "real-repo"
ACTIVE = FIXTURE / "docs" / "lld" / "active"
KEY = "sk-test-leaky-0123456789abcdef"

#: per approved fixture LLD: the files of its files table, its requirements, its scenario ids
APPROVED = {
    "LLD-019.md": (
        ["tools/batch/journal.py", "tools/batch/runner.py", "docs/batch.md"],
        3,
        ["010", "020", "030"],
    ),
    "LLD-020.md": (["tools/ui/progress.py"], 2, ["010", "020"]),
    "LLD-027.md": (["tools/keys/labels.py", "tools/output/redact.py"], 2, ["010", "020"]),
    "LLD-028.md": (["tools/cli/dry_run.py"], 2, ["T1", "T2"]),
    "LLD-137.md": (
        ["tools/workflows/pool.py", "tools/workflows/runner.py", "tests/test_pool.py"],
        3,
        ["010", "020", "030", "040"],
    ),
    "LLD-1688.md": (
        ["tools/batch/journal.py", "tests/test_journal_long_lines.py"],
        2,
        ["010", "020"],
    ),
}
NOT_APPROVED = {
    "LLD-021.md": "Draft",
    "LLD-022.md": "Draft",
    "LLD-023.md": "PENDING",
    "LLD-026.md": "no status",
}
CONFLICTS = {
    "LLD-024.md": "Status: Approved, Final Status: PENDING",
    "LLD-025.md": "Status: Draft, Final Status: APPROVED",
}


def lld_id(name: str) -> str:
    return "lld-" + str(int(re.sub(r"\D", "", name)))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    copy = tmp_path / "real-repo"
    shutil.copytree(FIXTURE, copy)
    return git_repo(copy)  # implement works on branches


def agent_script(tmp_path: Path, name: str, body: str) -> str:
    script = tmp_path / name
    script.write_text("#!/bin/sh\ncat > /dev/null\n" + body)
    script.chmod(0o755)
    return f"cmd:{script}"


def run_dir(repo: Path) -> Path:
    return sorted((repo / ".agentos" / "runs").iterdir())[-1]


def summary_items(repo: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    data = json.loads((run_dir(repo) / "summary.json").read_text())
    return {row["id"]: row for row in data["items"]}


# ---- reading real LLDs


def test_the_fixture_covers_every_shape() -> None:
    names = sorted(p.name for p in ACTIVE.iterdir())
    assert len(names) >= 10 and set(names) == {*APPROVED, *NOT_APPROVED, *CONFLICTS}
    raw = {name: (ACTIVE / name).read_bytes() for name in names}
    assert sum(data.startswith(b"\xef\xbb\xbf") for data in raw.values()) >= 2
    assert any(b"**Final Status:** APPROVED" in data for data in raw.values())
    assert any(b"### 2.1 Files Changed" in data for data in raw.values())
    assert any(b"### 10.1 Test Scenarios" in data for data in raw.values())


@pytest.mark.parametrize("name", sorted({*APPROVED, *NOT_APPROVED, *CONFLICTS}))
def test_status_in_every_form(name: str) -> None:
    found = lld.approval((ACTIVE / name).read_text(encoding="utf-8"))
    assert found.approved == (name in APPROVED)
    assert found.conflict == (name in CONFLICTS)
    if name in CONFLICTS:
        assert found.describe() == CONFLICTS[name]
    if name in NOT_APPROVED:
        assert found.describe() == NOT_APPROVED[name]


@pytest.mark.parametrize(
    ("text", "header", "footer"),
    [
        ("* **Status:** Approved (gemini-3-pro-preview, 2026-02-04)\n", "Approved", None),
        ("\ufeff# 19 - Title\n\nAPPROVED\n\n## 1. Context\n", "APPROVED", None),
        ("# T\n\nDraft - needs a security review\n", "Draft", None),
        ("# T\n\n## 1. Context\nx\n\n**Final Status:** APPROVED\n", None, "APPROVED"),
        ("# T\n\n| Field | Value |\n|---|---|\n| **Status** | APPROVED |\n", "APPROVED", None),
        ("# T\n\n## Status\n\nApproved\n\n## 1. Context\n", "Approved", None),
        ("# T\n\nStatus: In Progress\n", "In Progress", None),
        # a status inside a code block, or in the body, is not the LLD's
        ("# T\n\n```\nStatus: Approved\n```\n", None, None),
        ("# T\n\n## 1. Context\nStatus: Approved\n", None, None),
    ],
)
def test_status_forms(text: str, header: str | None, footer: str | None) -> None:
    found = lld.approval(text)
    assert (found.header, found.footer) == (header, footer)


@pytest.mark.parametrize("name", sorted(APPROVED))
def test_numbered_nested_sections_are_read(name: str) -> None:
    text = (ACTIVE / name).read_text(encoding="utf-8")
    files, n_requirements, scenario_ids = APPROVED[name]
    assert [f.path for f in lld.files_changed(text) or []] == files
    assert len(lld.requirements(text)) == n_requirements
    assert [s.id for s in lld.scenarios(text)] == scenario_ids
    assert lld.uncovered_requirements(text) == []  # "(REQ-2)" in a scenario counts


def test_a_section_runs_to_the_next_heading_of_its_level_and_skips_code() -> None:
    text = (
        "# T\n\n## 2. Proposed Changes\nintro\n\n### 2.1 Files Changed\n\n| File | Change |\n"
        "|---|---|\n| `a.py` | x |\n\n```bash\n# not a heading\n```\n\n#### 2.1.1 Detail\n"
        "deep\n\n## 3. Requirements\n1. One.\n   1. a detail, not a requirement\n2. Two.\n"
    )
    body = lld.section(text, "Proposed changes") or ""
    assert "### 2.1 Files Changed" in body and "deep" in body and "Requirements" not in body
    assert lld.section(text, "Files changed") == (
        "\n| File | Change |\n|---|---|\n| `a.py` | x |\n\n```bash\n# not a heading\n```\n\n"
        "#### 2.1.1 Detail\ndeep"
    ).strip("\n")
    assert lld.requirements(text) == [("R1", "One."), ("R2", "Two.")]


@pytest.mark.parametrize(
    ("heading", "title"),
    [
        ("# 137 - Feature: Integrate parallel execution", "Feature: Integrate parallel execution"),
        ("# Brief: City watch", "City watch"),
        ("# LLD: Brief: City watch", "City watch"),
        ("# LLD-137: Pin notes", "Pin notes"),
        ("\ufeff# Idea: Offline maps", "Offline maps"),
        ("# Idea generator", "Idea generator"),
        ("# 2024 roadmap", "2024 roadmap"),
    ],
)
def test_titles(heading: str, title: str) -> None:
    assert lld.title_of(heading + "\n", "fallback") == title


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        ("APPROVED\n\nAll good.", "APPROVED"),
        ("**REVISE**\n- add a scenario", "REVISE"),
        ("# Review\n\n## Verdict\n- [x] **APPROVED** - ready\n- [ ] **REVISE**\n", "APPROVED"),
        ("## Verdict\n[ ] **APPROVED**\n[ ] **REVISE**\n[x] **DISCUSS**\n", "REVISE"),
        ("# Governance Verdict: APPROVED\n\nfine", "APPROVED"),
        ("# Governance Verdict: BLOCK\n\nsecrets in logs", "REVISE"),
        ("Summary of the design.\n\nVerdict: APPROVED\nRationale: complete.", "APPROVED"),
    ],
)
def test_verdicts_in_the_forms_reviewers_write(review: str, expected: str) -> None:
    assert verdict(review) == expected


# ---- implement on a real repository


def test_dry_run_lists_exactly_the_approved_llds_and_names_the_rest(repo: Path) -> None:
    done = run(agentos_argv("implement", "--repo", str(repo), "--dry-run"), cwd=repo)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[1:-1]
    assert [row.split()[0] for row in rows] == sorted(
        (lld_id(n) for n in APPROVED), key=lambda i: int(i[4:])
    )
    assert done.stdout.splitlines()[-1] == f"{len(APPROVED)} pending items"
    assert "lld-137   Feature: Integrate parallel execution into the workflows" in done.stdout
    conflicts = (
        "agentos: warning: 2 LLDs in docs/lld/active left alone, header and footer disagree "
        "about approval (make them agree): LLD-024.md (Status: Approved, Final Status: "
        "PENDING); LLD-025.md (Status: Draft, Final Status: APPROVED)"
    )
    rest = (
        "agentos: 4 LLDs in docs/lld/active not Approved, left alone: Draft: LLD-021.md, "
        "LLD-022.md; PENDING: LLD-023.md; no status: LLD-026.md"
    )
    plan = "agentos: warning: no test command found (pytest, npm or make test): items will end "
    assert done.stderr.splitlines()[:2] == [conflicts, rest]
    assert done.stderr.splitlines()[2].startswith(plan)
    assert not (repo / ".agentos").exists()


def test_branches_hold_the_files_table_and_a_test_per_scenario(repo: Path) -> None:
    done = run(agentos_argv("implement", "--repo", str(repo), "-j", "3"), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "left alone, header and footer disagree" in done.stderr  # the run says it too
    assert "6 items: 6 done (6 unverified)" in done.stderr  # the repository has no tests
    for name, (files, _, scenario_ids) in APPROVED.items():
        branch = f"agentos/{lld_id(name)}"
        written = git_out(repo, "diff", "--name-only", "HEAD", branch).split()
        tests_at = next((f for f in files if "test" in f), None)
        test_file = tests_at or f"tests/test_{lld_id(name).replace('-', '_')}.py"
        assert written == sorted({*files, test_file}), name
        text = git_out(repo, "show", f"{branch}:{test_file}")
        tests = re.findall(r"^def (test_\w+)", text, re.MULTILINE)
        assert [t.split("_")[1] for t in tests] == [s.lower() for s in scenario_ids], name
    again = run(agentos_argv("implement", "--repo", str(repo)), cwd=repo)
    assert again.returncode == 0 and again.stdout == "Nothing to process\n"
    assert (
        "every approved LLD in docs/lld/active (6) has a verified branch (agentos/<id>): "
        "nothing to do; --force implements them again on fresh branches"
    ) in again.stderr


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("echo 'Sure! Here is the implementation...'\n", "has no files"),
        ("echo\n", "the agent's answer was empty"),
        # the prompt sent back: its LLD has headings and code blocks that look like files
        ('cat "$0.prompt"\n', "repeats the prompt"),
    ],
    ids=["chat", "empty", "echo"],
)
def test_an_answer_without_files_is_a_failed_attempt(
    repo: Path, tmp_path: Path, body: str, why: str
) -> None:
    for name in {*APPROVED} - {"LLD-019.md"}:
        (repo / "docs/lld/active" / name).unlink()
    script = tmp_path / "agent.sh"
    script.write_text(f'#!/bin/sh\ntee "$0.prompt" > /dev/null\n{body}')
    script.chmod(0o755)
    done = run(
        agentos_argv(
            "implement",
            "--repo",
            str(repo),
            "--implementer",
            f"cmd:{script}",
            "--retry-backoff",
            "0",
            "--edits",
            "text",
        ),
        cwd=repo,
    )
    assert done.returncode == 1
    assert "[agentos] lld-19 failed: " in done.stderr and why in done.stderr
    assert "Traceback" not in done.stderr
    assert [r["status"] for r in journal(repo)] == ["failed", "failed"]  # --retries 1
    assert git_out(repo, "rev-list", "HEAD..agentos/lld-19") == ""  # nothing committed


# ---- requirements on a real repository


def test_a_draft_says_so_and_a_rerun_can_redo_the_drafts(repo: Path) -> None:
    argv = agentos_argv("requirements", "--repo", str(repo), "--max-iterations", "1")
    done = run(argv, cwd=repo)
    assert done.returncode == 0, done.stderr  # a Draft is not a failure
    items = summary_items(repo)
    assert {i: (row["status"], row["detail"]) for i, row in items.items()} == {
        "brief-city-watch": ("done", "Draft"),  # its open question needs a second round
        "brief-offline-maps": ("done", "Approved"),
    }
    assert re.search(r"^brief-city-watch\s+done \(Draft\)\s+1 ", done.stderr, re.MULTILINE)
    assert "2 items: 2 done (1 Draft, 1 Approved)" in done.stderr

    again = run(argv, cwd=repo)
    assert again.returncode == 0 and again.stdout == "Nothing to process\n"
    assert again.stderr == (
        "agentos: every brief in ideas/active has an LLD in docs/lld/active or docs/lld/drafts "
        "(1 Approved; 1 Draft: brief-city-watch): nothing to do; to start over: --redo-drafts "
        "drafts the Drafts again, --force redoes every brief (the bundled demo: make "
        "demo-reset)\n"
    )
    assert "Status: Draft" in (repo / "docs/lld/drafts/city-watch.md").read_text()
    approved_before = (repo / "docs/lld/active/offline-maps.md").read_text()
    redo = run(agentos_argv("requirements", "--repo", str(repo), "--redo-drafts"), cwd=repo)
    assert redo.returncode == 0, redo.stderr
    assert "1 item: 1 done (1 Approved)" in redo.stderr  # the Draft only, and now approved
    # approved, it moved to where implement takes it
    assert "Status: Approved" in (repo / "docs/lld/active/city-watch.md").read_text()
    assert not (repo / "docs/lld/drafts/city-watch.md").exists()
    assert (repo / "docs/lld/active/offline-maps.md").read_text() == approved_before


@pytest.mark.parametrize(
    "answer",
    ["I cannot help with that.", "", "Sure! What would you like the design to cover?"],
    ids=["refusal", "empty", "question"],
)
def test_a_drafter_answer_without_lld_structure_is_a_failed_attempt(
    repo: Path, tmp_path: Path, answer: str
) -> None:
    drafter = agent_script(tmp_path, "drafter.sh", f"echo '{answer}'\n")
    done = run(
        agentos_argv(
            "requirements",
            "--repo",
            str(repo),
            "--drafter",
            drafter,
            "--reviewer",
            "mock",
            "--retry-backoff",
            "0",
        ),
        cwd=repo,
    )
    assert done.returncode == 1
    assert "brief-city-watch failed: " in done.stderr and "Traceback" not in done.stderr
    assert sorted({r["status"] for r in journal(repo)}) == ["failed"]
    assert len(journal(repo)) == 4  # two briefs, two attempts each
    assert not (repo / "docs/lld/drafts").exists()
    assert not (repo / "docs/lld/active/city-watch.md").exists()


DRAFT_WITH_CHAT = """Sure! Here is the LLD you asked for:

# LLD: Brief: City watch

* **Status:** Approved (the drafter's own opinion)

## 1. Context & goal
Residents report broken lights.

## 2. Proposed changes

```bash
# a comment, not a title
```

| File | Change |
|---|---|
| `src/citywatch/reports.py` | reports |

## 3. Requirements
- R1: Residents report a broken light.

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | report a light | it is listed |

## 5. Security & safety
None.

## 6. Definition of done
- [ ] Done

**Final Status:** APPROVED
"""


def test_one_clean_title_and_agentos_status(repo: Path, tmp_path: Path) -> None:
    (repo / "ideas/active/offline-maps.md").unlink()
    drafter = agent_script(tmp_path, "drafter.sh", f"cat <<'EOF'\n{DRAFT_WITH_CHAT}EOF\n")
    reviewer = agent_script(
        tmp_path, "reviewer.sh", "printf '# Governance Verdict: BLOCK\\n\\n## Why\\nno.\\n'\n"
    )
    done = run(
        agentos_argv(
            "requirements",
            "--repo",
            str(repo),
            "--drafter",
            drafter,
            "--reviewer",
            reviewer,
            "--max-iterations",
            "1",
        ),
        cwd=repo,
    )
    assert done.returncode == 0, done.stderr
    text = (repo / "docs/lld/drafts/city-watch.md").read_text()
    assert text.startswith("# LLD: City watch\n\nStatus: Draft\n")
    outside_code = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    assert re.findall(r"^# .*", outside_code, re.MULTILINE) == ["# LLD: City watch"]
    assert "Sure!" not in text and "Final Status" not in text and "own opinion" not in text
    assert "# a comment, not a title" in text  # code blocks are left alone
    assert text.endswith("## Open review\n\n### Governance Verdict: BLOCK\n\n#### Why\nno.\n")
    assert lld.approval(text).describe() == "Draft"


@pytest.mark.parametrize(
    "review",
    [
        "## Verdict\\n- [x] **APPROVED**\\n- [ ] **REVISE**\\n- [ ] **DISCUSS**\\n",
        "# Governance Verdict: APPROVED\\n",
        "The design is complete.\\n\\nVerdict: APPROVED\\nRationale: every scenario is there.\\n",
    ],
    ids=["checkbox", "governance", "verdict-rationale"],
)
def test_reviewers_verdict_forms_end_to_end(repo: Path, tmp_path: Path, review: str) -> None:
    reviewer = agent_script(tmp_path, "reviewer.sh", f"printf '{review}'\n")
    done = run(agentos_argv("requirements", "--repo", str(repo), "--reviewer", reviewer), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "2 items: 2 done (2 Approved)" in done.stderr


# ---- keys never written into files


def test_redact_replaces_the_lease_and_every_per_call_key(tmp_path: Path) -> None:
    class Governor:
        def acquire_call(self, item: str, tokens: float | None, pinned: str | None) -> object:
            from agentos.item.keys import CallGrant

            return CallGrant(1, "sk-per-call-key-22222222", "key-2", 0.0)

    ctx = ItemContext(
        item=Item("x"),
        attempt=1,
        run_dir=tmp_path,
        config=None,
        keys=AttemptKeys("sk-leased-key-11111111", "key-1", governor=Governor()),
    )
    assert ctx.redact("no key here") == "no key here"
    ctx.call_key(10)
    text = "lease sk-leased-key-11111111, call sk-per-call-key-22222222."
    assert ctx.redact(text) == "lease [key-1], call [key-2]."


LEAKY_DRAFT = """# LLD: Leak

My environment says AGENTOS_API_KEY=@KEY@

## 1. Context & goal
x @KEY@

## 2. Proposed changes
| File | Change |
|---|---|
| `src/leak.py` | leaks |

## 3. Requirements
- R1: It leaks @KEY@.

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | run | leak |

## 5. Security & safety
## 6. Definition of done
"""
LEAKY_FILES = """### src/leak.py
```python
API_KEY = "@KEY@"
```
"""


@pytest.mark.parametrize("mode", [[], ["-j", "2"]], ids=["sequential", "parallel"])
def test_a_key_in_an_answer_reaches_no_file(repo: Path, tmp_path: Path, mode: list[str]) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEY}\n")
    keys.chmod(0o600)
    # the agents echo their environment: @KEY@ becomes the leased key
    leak = "sed \"s/@KEY@/$AGENTOS_API_KEY/g\" <<'EOF'\n{}EOF\n"
    drafter = agent_script(tmp_path, "drafter.sh", leak.format(LEAKY_DRAFT))
    reviewer = agent_script(tmp_path, "reviewer.sh", leak.format("REVISE: stop printing @KEY@\n"))
    implementer = agent_script(
        tmp_path,
        "implementer.sh",
        # one item's agent edits with its own "tools" (the shell), the others answer with files
        'if [ "$AGENTOS_ITEM_ID" = lld-20 ]; then mkdir -p src\n'
        '  echo "TOKEN = \\"$AGENTOS_API_KEY\\"" > src/direct.py; exit 0; fi\n'
        + leak.format(LEAKY_FILES),
    )
    common = ["--repo", str(repo), "--credentials-file", str(keys), *mode]
    first = run(
        agentos_argv(
            "requirements",
            *common,
            "--drafter",
            drafter,
            "--reviewer",
            reviewer,
            "--max-iterations",
            "2",
        ),
        cwd=repo,
    )
    second = run(agentos_argv("implement", *common, "--implementer", implementer), cwd=repo)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    draft = (repo / "docs/lld/drafts/city-watch.md").read_text()
    assert "AGENTOS_API_KEY=[key-1]" in draft and "stop printing [key-1]" in draft
    assert git_out(repo, "show", "agentos/lld-19:src/leak.py") == 'API_KEY = "[key-1]"\n'
    # an agent that writes a key into a file with its own tools: redacted before the commit
    assert 'TOKEN = "[key-1]"' in git_out(repo, "show", "agentos/lld-20:src/direct.py")
    written = [p for p in repo.rglob("*") if p.is_file()]
    assert any("items" in p.parts and p.name == "draft.md" for p in written)  # the audit trail
    for path in written:
        assert KEY not in path.read_text(errors="replace"), path
    assert KEY not in first.stdout + first.stderr + second.stdout + second.stderr


# ---- an agent's own failure, at a glance


def test_the_agents_stderr_tail_reaches_the_summary(repo: Path, tmp_path: Path) -> None:
    agent = agent_script(
        tmp_path,
        "llm",
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo '  File \"/usr/lib/python3/site-packages/llm/migrations.py\", line 9, in m' >&2\n"
        "echo 'sqlite3.OperationalError: table \"schemas\" already exists' >&2\n"
        "exit 1\n",
    )
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "--drafter", agent, "--retries", "0"),
        cwd=repo,
        env=clean_env(),
    )
    assert done.returncode == 1
    cause = 'llm: exit 1: sqlite3.OperationalError: table "schemas" already exists'
    assert summary_items(repo)["brief-city-watch"]["error"] == cause
    table_row = next(line for line in done.stderr.splitlines() if line.startswith("brief-city"))
    assert table_row.endswith(cause)


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout
