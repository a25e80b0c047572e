from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos.item.ids import (
    MAX_ID_LENGTH,
    duplicate_ids,
    id_problem,
    is_valid_id,
    sanitize_id,
)


@pytest.mark.parametrize("item_id", ["a", "brief-foo", "lld-137", "A.b_c-9", "x" * 64, "0"])
def test_valid_ids(item_id: str) -> None:
    assert id_problem(item_id) is None


@pytest.mark.parametrize(
    ("item_id", "reason"),
    [
        ("", "empty"),
        ("x" * 65, "longer than 64"),
        ("-lead", "starting with a letter or digit"),
        (".hidden", "starting with a letter or digit"),
        ("a/b", "letters, digits"),
        ("a b", "letters, digits"),
        ("a..b", "'..'"),
        ("naïve", "letters, digits"),
        ("semi;colon", "letters, digits"),
    ],
)
def test_invalid_ids_say_why(item_id: str, reason: str) -> None:
    problem = id_problem(item_id)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello world", "hello_world"),
        ("../../etc/passwd", "etc_passwd"),
        ("  --flag  ", "flag"),
        ("a..b", "a.b"),
        ("https://example.com/x?y=1", "https_example.com_x_y_1"),
        ("café déjà", "cafe_deja"),
        ("naïve Straße, Øresund, Łódź", "naive_Strasse_Oresund_Lodz"),
        ("ﬁle Ａ１ ٣", "file_A1_3"),
    ],
)
def test_sanitize_id(text: str, expected: str) -> None:
    assert sanitize_id(text) == expected
    assert is_valid_id(sanitize_id(text))


def test_sanitize_truncates_to_a_valid_id() -> None:
    result = sanitize_id("a" * 200)
    assert len(result) == 64 and is_valid_id(result)


HASHED = re.compile(r"(.*)-[0-9a-f]{10}")


def test_long_urls_keep_their_tails_and_stay_apart() -> None:
    """Cut to 64 characters, two long URLs that differ only near the end used to share an id."""
    base = "https://example.com/" + "section/" * 10
    first = sanitize_id(base + "report-2024.pdf")
    second = sanitize_id(base + "report-2025.pdf")
    assert first != second
    for result, tail in ((first, "report-2024.pdf"), (second, "report-2025.pdf")):
        assert len(result) <= MAX_ID_LENGTH and is_valid_id(result)
        match = HASHED.fullmatch(result)
        assert match is not None and match.group(1).endswith(tail)
    # URLs whose last 53 characters agree still differ by the hash of the whole text
    tail = "x" * 80
    assert sanitize_id(f"https://a.example/{tail}") != sanitize_id(f"https://b.example/{tail}")


@pytest.mark.parametrize(
    ("text", "kept"),
    [("日本", "item"), ("中国", "item"), ("////", "item"), ("", "item"), ("日本 report", "report")],
)
def test_text_that_loses_letters_gets_a_hash(text: str, kept: str) -> None:
    result = sanitize_id(text)
    match = HASHED.fullmatch(result)
    assert match is not None and match.group(1) == kept, result
    assert is_valid_id(result)


def test_scripts_without_ascii_spelling_do_not_collide() -> None:
    texts = ["日本", "中国", "////", "----", "日本 report", "中国 report", "Ελλάδα", "Россия"]
    assert len({sanitize_id(t) for t in texts}) == len(texts)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_valid_stable_id(text: str) -> None:
    result = sanitize_id(text)
    assert id_problem(result) is None, (text, result)
    assert sanitize_id(text) == result


ALNUM = st.sampled_from("abcXYZ0129")


@settings(max_examples=300, deadline=None)
@given(
    st.text(ALNUM, min_size=MAX_ID_LENGTH + 1, max_size=200),
    st.text(max_size=50),
    st.text(min_size=1, max_size=3),
)
def test_different_long_inputs_get_different_ids(core: str, noise: str, change: str) -> None:
    """Inputs too long for an id, differing anywhere (head, middle or tail, even only in
    characters the id cannot hold), never share an id."""
    middle = len(core) // 2
    text = core[:middle] + noise + core[middle:]
    variants = {text, change + text, text + change, core[:middle] + change + noise + core[middle:]}
    ids = {sanitize_id(v) for v in variants}
    assert len(ids) == len(variants)
    assert all(HASHED.fullmatch(i) and is_valid_id(i) for i in ids)


def test_duplicate_ids_in_first_seen_order() -> None:
    assert duplicate_ids(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert duplicate_ids(["a", "b"]) == []
