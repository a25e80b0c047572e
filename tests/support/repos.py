"""Git repositories to run agentos in: a small project with approved LLDs, and what to look at in
one (its HEAD, index and working tree)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.processes import git_repo

LLD = """# LLD: {title}

Status: Approved

## 1. Context & goal
{title}.

## 2. Proposed changes
| File | Change |
|---|---|
| `src/{module}.py` | {title} |

## 3. Requirements
- R1: {title} works.
- R2: {title} says what it did.

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | use it | it works |
| T2 | R2 | use it | it says so |

## 5. Security & safety
Nothing new.

## 6. Definition of done
- [ ] Tests pass
"""


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_repo(tmp_path: Path, llds: dict[str, str], *, pytest_config: bool = True) -> Path:
    """A small project under git: a module, a passing test, approved LLDs (name -> title)."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("VALUE = 1\n")
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    if pytest_config:
        (repo / "tests").mkdir()
        (repo / "tests" / "test_app.py").write_text(
            "import importlib.util, pathlib\n\n\ndef test_value():\n"
            "    path = pathlib.Path(__file__).parents[1] / 'src' / 'app.py'\n"
            "    spec = importlib.util.spec_from_file_location('app', path)\n"
            "    module = importlib.util.module_from_spec(spec)\n"
            "    spec.loader.exec_module(module)\n"
            "    assert module.VALUE == 1\n"
        )
    active = repo / "docs" / "lld" / "active"
    active.mkdir(parents=True)
    for name, title in llds.items():
        module = name.removesuffix(".md").replace("-", "_").lower()
        (active / name).write_text(LLD.format(title=title, module=module))
    return git_repo(repo)


def checkout_state(repo: Path) -> tuple[str, str, str]:
    """HEAD, the index and the working tree's status: what agentos must never change."""
    return (
        sh(repo, "rev-parse", "HEAD"),
        sh(repo, "ls-files", "--stage"),
        sh(repo, "status", "--porcelain", "--untracked-files=all"),
    )
