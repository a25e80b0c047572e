"""The demo repository's own test: every design and brief opens with its title."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_design_and_brief_opens_with_a_title() -> None:
    documents = sorted(ROOT.glob("docs/lld/*/*.md")) + sorted(ROOT.glob("ideas/*/*.md"))
    assert documents, "the demo ships briefs and designs"
    for path in documents:
        first = path.read_text(encoding="utf-8").lstrip("\ufeff").splitlines()[0]
        assert first.startswith("# "), path.name
