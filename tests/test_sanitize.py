from __future__ import annotations

import pytest

from agentos.workflows.parallel.sanitize import duplicate_ids, id_problem, is_valid_id, sanitize_id


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
        ("", "item"),
        ("////", "item"),
        ("https://example.com/x?y=1", "https_example.com_x_y_1"),
    ],
)
def test_sanitize_id(text: str, expected: str) -> None:
    assert sanitize_id(text) == expected
    assert is_valid_id(sanitize_id(text))


def test_sanitize_truncates_to_a_valid_id() -> None:
    result = sanitize_id("a" * 200)
    assert len(result) == 64 and is_valid_id(result)


def test_duplicate_ids_in_first_seen_order() -> None:
    assert duplicate_ids(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert duplicate_ids(["a", "b"]) == []
