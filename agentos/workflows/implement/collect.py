"""Items of the implement workflow: one per approved LLD in `<repo>/docs/lld/active/`.

An LLD is approved when its header (`Status: Approved`) or its footer (`Final Status:
APPROVED`) says so. One whose header and footer disagree is left alone, by name: implementing
a design whose final review may still be pending is work nobody can trust.

Its id comes from its file name: a number (`LLD-137.md`, `137-title.md` → `lld-137`), else the
slug (`csv-export.md`, as the requirements workflow names what it approves → `lld-csv-export`).

An item is done when its branch holds a verified commit for that LLD: the branch's newest
commit names the LLD (`Agentos-LLD`) and the LLD's content as it is now (`Agentos-LLD-Blob`), and
its tests passed (or none were found: `Agentos-Tests: unverified`). With `--push`, also when the
remote has that commit. An LLD changed since gets a new commit on the same branch; `--force`
starts a fresh branch (`agentos/<id>-v2`, ...) beside the old one.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from agentos import lld
from agentos.item.workflow import Item
from agentos.text import plural
from agentos.workflows.implement import git
from agentos.workflows.inputs import markdown_files, name_items, read_head, slugify

if TYPE_CHECKING:
    from agentos.workflows.implement.config import ImplementConfig

ACTIVE = "docs/lld/active"
#: an LLD's status may be in its footer: read the whole file (LLDs are tens of KiB)
_READ_LIMIT = 1 << 20
_NUMBER = re.compile(r"^(?:lld[-_ ]?)?0*(\d+)(?:$|[-_ .])", re.IGNORECASE)
_VERSION = re.compile(r"-v(\d+)$")
#: the trailers of agentos's commits
LLD_TRAILER = "Agentos-LLD"
BLOB_TRAILER = "Agentos-LLD-Blob"
TESTS_TRAILER = "Agentos-Tests"
log = logging.getLogger("agentos")


def lld_id(name: str) -> str | None:
    """`LLD-137.md`, `LLD-019.md`, `137-title.md` → `lld-137`, `lld-19`; `csv-export.md` →
    `lld-csv-export`."""
    stem = name.removesuffix(".md")
    match = _NUMBER.match(stem)
    if match:
        return f"lld-{match.group(1)}"
    slug = slugify(stem)
    return f"lld-{slug}"[:64].rstrip("-.") if slug else None


def verified(message: str, source: str, blob: str) -> bool:
    """Whether a commit message is agentos's verified commit of the LLD at `source` whose
    content has the blob id `blob`."""
    found = git.trailers(message)
    return (
        found.get(LLD_TRAILER) == source
        and found.get(BLOB_TRAILER) == blob
        and found.get(TESTS_TRAILER, "").split(" ", 1)[0] in ("passed", "unverified")
    )


def collect_items(config: ImplementConfig) -> list[Item]:
    """Pending approved LLDs, each with the branch it is implemented on."""
    folder = config.repo / ACTIVE
    names = markdown_files(folder, config.repo, "approved LLDs")
    approved: list[str] = []
    titles: dict[str, str] = {}
    conflicts: list[str] = []
    others: dict[str, list[str]] = {}
    for name in names:
        text = read_head(folder / name, _READ_LIMIT)
        if text is None:
            approved.append(name)  # unreadable: the item fails saying why, it does not vanish
            continue
        status = lld.approval(text)
        if status.approved:
            approved.append(name)
            titles[name] = lld.title_of(text, "")
        elif status.conflict:
            conflicts.append(f"{name} ({status.describe()})")
        else:
            others.setdefault(status.describe(), []).append(name)
    _report_left_alone(conflicts, others)
    named = sorted(name_items(approved, lld_id, ACTIVE), key=lambda pair: _order(pair[0]))
    repository = config.repository
    blobs = _blobs(config, [name for _, name in named])
    branches = repository.branches()
    remote = repository.remote_branches(config.push) if config.push else None
    items = []
    done = 0
    for item_id, name in named:
        source = f"{repository.prefix + '/' if repository.prefix else ''}{ACTIVE}/{name}"
        branch, tip = _branch_for(item_id, branches, source, blobs.get(name, ""), config.force)
        if tip is not None and (remote is None or remote.get(branch) == tip):
            done += 1
            continue
        items.append(
            Item(
                id=item_id,
                title=titles.get(name) or item_id,
                source=f"{ACTIVE}/{name}",
                data={
                    "path": f"{folder}/{name}",
                    "source": source,
                    "branch": branch,
                    "blob": blobs.get(name, ""),
                    # verified, not yet pushed: the item only pushes
                    "verified_commit": tip,
                },
            )
        )
    if done and not items:
        log.info(
            "every approved LLD in %s (%d) has a verified branch (agentos/<id>): nothing to "
            "do; --force implements them again on fresh branches",
            ACTIVE,
            done,
        )
    return items


def _order(item_id: str) -> tuple[int, int, str]:
    """Numbered LLDs by number, then the others by name."""
    rest = item_id.removeprefix("lld-")
    return (0, int(rest), "") if rest.isdigit() else (1, 0, rest)


def _blobs(config: ImplementConfig, names: list[str]) -> dict[str, str]:
    """Each LLD's git blob id (its content's), in one `git hash-object`."""
    if not names:
        return {}
    paths = "".join(f"{config.repo / ACTIVE / name}\n" for name in names)
    found = git.git(
        config.repo, "hash-object", "--no-filters", "--stdin-paths", input=paths.encode(),
        check=False,
    )  # fmt: skip
    ids = found.stdout.decode().split() if found.returncode == 0 else []
    return dict(zip(names, ids, strict=False)) if len(ids) == len(names) else {}


def _branch_for(
    item_id: str,
    branches: dict[str, tuple[str, str]],
    source: str,
    blob: str,
    force: bool,
) -> tuple[str, str | None]:
    """The item's branch, and its verified commit of this LLD when it has one. Its newest
    branch (`agentos/<id>`, `agentos/<id>-v2`, ...) is the one; `force` starts a fresh one
    where that is verified already."""
    base = f"{git.BRANCH_PREFIX}{item_id}"
    versions = {1: base} if base in branches else {}
    for name in branches:
        if name.startswith(f"{base}-v"):
            match = _VERSION.search(name)
            if match and name == f"{base}-v{match.group(1)}":
                versions[int(match.group(1))] = name
    if not versions:
        return base, None
    newest = max(versions)
    branch = versions[newest]
    tip, message = branches[branch]
    if not verified(message, source, blob):
        return branch, None
    if force:
        return f"{base}-v{newest + 1}", None
    return branch, tip


def _report_left_alone(conflicts: list[str], others: dict[str, list[str]]) -> None:
    if conflicts:
        log.warning(
            "%s in %s left alone, header and footer disagree about approval (make them agree): %s",
            plural(len(conflicts), "LLD"),
            ACTIVE,
            "; ".join(conflicts),
        )
    if others:
        count = sum(len(names) for names in others.values())
        log.info(
            "%s in %s not Approved, left alone: %s",
            plural(count, "LLD"),
            ACTIVE,
            "; ".join(f"{status}: {', '.join(names)}" for status, names in others.items()),
        )
