"""What the tests that drive agentos against the provider simulator share."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.processes import REPO, agentos_argv


def repo_with_briefs(tmp_path: Path, count: int) -> Path:
    """A copy of the demo repository whose briefs are `count` generated ones (idea-00, ...)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    briefs = repo / "ideas" / "active"
    for old in briefs.glob("*.md"):
        old.unlink()
    for n in range(count):
        (briefs / f"idea-{n:02d}.md").write_text(
            f"# Idea {n}\n\n- The tool shows item {n}.\n- It reports what it did.\n"
        )
    return repo


def requirements_argv(
    repo: Path, api_base: str, keys: Path, *extra: str, model: str = "m"
) -> list[str]:
    """`agentos requirements` with an openai: drafter at `api_base` (the simulator)."""
    return agentos_argv(
        "requirements",
        "--repo",
        str(repo),
        "--drafter",
        f"openai:{model}",
        "--api-base",
        api_base,
        "--credentials-file",
        str(keys),
        *extra,
    )
