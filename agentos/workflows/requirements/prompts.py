"""Prompts of the requirements workflow: draft an LLD from a brief, review it, redraft."""

from __future__ import annotations

from agentos.lld import TEMPLATE


def draft_prompt(title: str, brief: str, previous_draft: str, review: str) -> str:
    parts = [
        "You are a senior engineer. Write a low-level design (LLD) for the brief below.",
        "Follow the template exactly: keep its six sections and their order, give every",
        "requirement an id (R1, R2, ...) and exactly one row in the test scenarios table,",
        "and list every file you would change in the files-changed table.",
        "Answer with the LLD in markdown and nothing else.",
        "",
        f"## Brief: {title}",
        brief.strip(),
        "",
        "## LLD template",
        TEMPLATE.strip(),
    ]
    if review:
        parts += [
            "",
            "## Your previous draft",
            previous_draft.strip(),
            "",
            "## The reviewer asked for changes",
            review.strip(),
            "",
            "Write the whole LLD again, addressing every point of the review.",
        ]
    return "\n".join(parts) + "\n"


def review_prompt(title: str, brief: str, draft: str) -> str:
    return (
        "\n".join(
            [
                "You review low-level designs (LLDs). Check the draft below against its",
                "brief: every requirement must have a test scenario, every section of the",
                "template must be present, and the design must deliver the brief.",
                "Answer APPROVED or REVISE on the first line, alone; then your reasons.",
                "With REVISE, list exactly what must change.",
                "",
                f"## Brief: {title}",
                brief.strip(),
                "",
                "## Draft LLD",
                draft.strip(),
            ]
        )
        + "\n"
    )
