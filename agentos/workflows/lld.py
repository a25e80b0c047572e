"""The low-level design (LLD) format: the template drafters are asked to follow, and the parsers
that read an LLD back (requirements, test scenarios, the files-changed table, its status).

An LLD is markdown with these sections, in this order:

    # LLD: <title>
    Status: Approved | Draft
    ## 1. Context & goal
    ## 2. Proposed changes          with a files-changed table: | File | Change |
    ## 3. Requirements              - R1: ...
    ## 4. Test scenarios            | ID | Requirement | Scenario | Expected |
    ## 5. Security & safety
    ## 6. Definition of done

The parsers are forgiving about spacing, numbering and capitalisation, because the LLDs come from
agents and people, not only from this code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TEMPLATE = """\
# LLD: <title>

## 1. Context & goal
<why this change, for whom, and what "better" means; link the brief>

## 2. Proposed changes
<the design in a few paragraphs>

| File | Change |
|---|---|
| `path/to/file.py` | <what changes in it> |

## 3. Requirements
- R1: <one testable requirement per line>

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | <given / when> | <then> |

## 5. Security & safety
<inputs that cannot be trusted, secrets, failure modes, data loss>

## 6. Definition of done
- [ ] <checklist>
"""

SECTIONS = (
    "Context & goal",
    "Proposed changes",
    "Requirements",
    "Test scenarios",
    "Security & safety",
    "Definition of done",
)

_STATUS = re.compile(r"^\W*status\W*:?\W*(\w+)", re.IGNORECASE | re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
_REQUIREMENT = re.compile(r"^\s*[-*]\s*\**(R\d+)\**\s*[:.)-]\s*(.+?)\s*$", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|(.+)\|\s*$")


@dataclass(frozen=True)
class Scenario:
    id: str
    requirement: str
    scenario: str
    expected: str


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str


def without_lld_prefix(title: str) -> str:
    return re.sub(r"^LLD\s*[:-]\s*", "", title.strip(), flags=re.IGNORECASE)


def title_of(text: str, fallback: str) -> str:
    """The first `# ` heading, without a leading 'LLD:'."""
    for line in text.splitlines():
        if line.startswith("# "):
            return without_lld_prefix(line[2:]) or fallback
    return fallback


def status_of(text: str) -> str | None:
    """The word after 'Status:' in the LLD's header (first 40 lines), lower-cased."""
    head = "\n".join(text.splitlines()[:40])
    match = _STATUS.search(head)
    return match.group(1).lower() if match else None


def section(text: str, name: str) -> str | None:
    """The body of the `## N. <name>` section, or None when the LLD has no such section."""
    matches = list(_HEADING.finditer(text))
    wanted = name.lower()
    for i, match in enumerate(matches):
        heading = re.sub(r"^\d+[.)]?\s*", "", match.group(2)).lower()
        if heading.startswith(wanted):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            return text[match.end() : end].strip("\n")
    return None


def table_rows(text: str) -> list[list[str]]:
    """Rows of the first markdown table in `text`, header and separator excluded."""
    rows: list[list[str]] = []
    started = False
    for line in text.splitlines():
        match = _TABLE_ROW.match(line)
        if not match:
            if started:
                break
            continue
        cells = [c.strip() for c in match.group(1).split("|")]
        if not started:
            started = True  # the header row
            continue
        if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
            continue
        rows.append(cells)
    return rows


def requirements(text: str) -> list[tuple[str, str]]:
    body = section(text, "Requirements") or ""
    return [(m.group(1).upper(), m.group(2)) for m in _REQUIREMENT.finditer(body)]


def scenarios(text: str) -> list[Scenario]:
    body = section(text, "Test scenarios") or ""
    found = []
    for cells in table_rows(body):
        if len(cells) >= 4:
            found.append(Scenario(cells[0], cells[1].upper(), cells[2], cells[3]))
    return found


def files_changed(text: str) -> list[FileChange] | None:
    """The files-changed table of 'Proposed changes'; None when the LLD has no such table."""
    body = section(text, "Proposed changes")
    if body is None:
        return None
    rows = table_rows(body)
    if not rows:
        return None
    return [
        FileChange(cells[0].strip("`* "), cells[1] if len(cells) > 1 else "")
        for cells in rows
        if cells and cells[0].strip("`* ")
    ]


def uncovered_requirements(text: str) -> list[str]:
    """Requirement ids that no test scenario names: what a reviewer must ask for."""
    covered = {s.requirement for s in scenarios(text)}
    covered |= {part.strip() for s in scenarios(text) for part in s.requirement.split(",")}
    return [rid for rid, _ in requirements(text) if rid not in covered]
