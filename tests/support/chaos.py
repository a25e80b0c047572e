"""What every chaos case checks, in one place: no secret anywhere, no orphan process, no partial
output file. Each check also counts what it looked at, for the README's Reliability figures."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter
from pathlib import Path

from support.keys import keys_file
from support.processes import REPO, session_pids, tagged_pids, wait_until_gone

KEYS = ("sk-chaos-alpha-0123456789", "sk-chaos-bravo-9876543210", "sk-chaos-charlie-5555555555")
TALLY: Counter[str] = Counter()
SEED = int(os.environ.get("AGENTOS_CHAOS_SEED", "20261124"))


def rng(case: str) -> random.Random:
    """A random source per case, seeded: a failure replays with the same moments."""
    return random.Random(f"{SEED}:{case}")


def key_file(directory: Path, count: int = 2) -> Path:
    return keys_file(directory, KEYS[:count])


def briefs_repo(directory: Path, count: int = 12) -> Path:
    repo = directory / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    briefs = sorted((repo / "ideas" / "active").glob("*.md"))
    for extra in briefs[count:]:
        extra.unlink()
    return repo


def assert_no_secrets(*texts: str, dirs: tuple[Path, ...] = ()) -> None:
    haystacks = list(texts)
    for directory in dirs:
        for path in directory.rglob("*"):
            if path.is_file():
                haystacks.append(path.read_bytes().decode("utf-8", errors="replace"))
    TALLY["outputs and files scanned for keys"] += len(haystacks)
    for key in KEYS:
        leaks = [h[:200] for h in haystacks if key in h]
        TALLY["keys leaked"] += len(leaks)
        assert not leaks, f"key {key[:8]}... leaked into: {leaks[:2]}"


def assert_no_orphans(session: int | None = None, timeout: float = 3.0) -> None:
    left = wait_until_gone(tagged_pids, timeout=timeout)
    if session is not None:
        left += wait_until_gone(lambda: session_pids(session), timeout=timeout)
    TALLY["orphan checks"] += 1
    TALLY["orphans found"] += len(left)
    assert not left, f"processes outlived agentos: {left}"


#: the approved LLDs the demo repository ships beside the ones a run writes
SHIPPED_LLDS = {p.name for p in (REPO / "examples/demo-repo/docs/lld/active").iterdir()}


def assert_llds_whole(repo: Path) -> set[str]:
    """Every LLD present is complete; no temporary file is left. Returns the slugs written."""
    written = set()
    for folder in ("active", "drafts"):  # approved LLDs, and Drafts
        drafts = repo / "docs" / "lld" / folder
        if not drafts.exists():
            continue
        for path in drafts.iterdir():
            if path.name in SHIPPED_LLDS:
                continue  # the demo's own, not this run's
            TALLY["output files checked"] += 1
            if path.name.startswith(".") or path.suffix != ".md":
                TALLY["partial files"] += 1
                raise AssertionError(f"temporary or stray file left: {path.name}")
            text = path.read_text()
            whole = text.endswith("\n") and "## 6. Definition of done" in text and "Status:" in text
            if not whole:
                TALLY["partial files"] += 1
            assert whole, f"partial LLD {path.name}"
            written.add(path.stem)
    return written


def journal_done(run_dir: Path) -> set[str]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("status") == "done":
            done.add(record["item"])
    return done
