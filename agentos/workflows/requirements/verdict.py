"""A reviewer's verdict, in the forms reviewers write it:

    APPROVED                         the first line, as the review prompt asks
    ## Verdict                       a checklist: the checked box wins
    - [x] **APPROVED**
    - [ ] **REVISE**
    - [ ] **DISCUSS**
    # Governance Verdict: BLOCK      a `Verdict:` line, whatever precedes it
    Verdict: APPROVED
    Rationale: ...

Anything but approval (REVISE, BLOCK, DISCUSS, REJECTED, CHANGES REQUESTED) asks for another
draft: it is REVISE.
"""

from __future__ import annotations

import re

from agentos.errors import ItemError

APPROVED = "APPROVED"
REVISE = "REVISE"

_WORDS = {
    "APPROVED": APPROVED,
    "APPROVE": APPROVED,
    "ACCEPTED": APPROVED,
    "LGTM": APPROVED,
    "REVISE": REVISE,
    "BLOCK": REVISE,
    "BLOCKED": REVISE,
    "DISCUSS": REVISE,
    "REJECT": REVISE,
    "REJECTED": REVISE,
    "CHANGES REQUESTED": REVISE,
    "NEEDS REVISION": REVISE,
    "NEEDS WORK": REVISE,
}
_WORD = re.compile(r"[A-Za-z]+")
_CHECKED = re.compile(r"^\s*(?:[-*+]\s*)?\[[xX✓✔]\]\s*(.*)$")
_VERDICT_LINE = re.compile(r"\bverdict\b[\W_]*?[:\-–—][\W_]*(.*)$", re.IGNORECASE)
_LEAD = "*_#>:`~ \t✅❌⚠️🛑"


def _word(text: str) -> str | None:
    """The verdict `text` starts with (markup and emoji aside), or None."""
    words = list(_WORD.finditer(text))
    if not words or text[: words[0].start()].strip(_LEAD):
        return None
    pair = " ".join(w.group(0) for w in words[:2]).upper()
    return _WORDS.get(pair) or _WORDS.get(words[0].group(0).upper())


def verdict(review: str) -> str:
    """APPROVED or REVISE, or an ItemError saying what a verdict must look like."""
    lines = [line for line in review.splitlines() if line.strip()]
    if not lines:
        raise ItemError("the reviewer's answer was empty")
    found = _word(lines[0])
    if found is None:
        found = next(
            (w for line in lines if (box := _CHECKED.match(line)) and (w := _word(box.group(1)))),
            None,
        )
    if found is None:
        found = next(
            (
                w
                for line in lines
                if (said := _VERDICT_LINE.search(line)) and (w := _word(said.group(1)))
            ),
            None,
        )
    if found is None:
        raise ItemError(
            "the reviewer's answer must start with APPROVED or REVISE on its first line (or "
            "check one in a '[x] APPROVED' list, or say 'Verdict: APPROVED'); it started "
            f"with: {lines[0].strip()[:80]!r}"
        )
    return found
