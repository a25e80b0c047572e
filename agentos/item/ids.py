"""Item ids: the rule, the check, and turning arbitrary text into an id.

An item id names a log file (`logs/<id>.log`), a state directory (`items/<id>/`) and prefixes every
output line, so it must be safe as a single path component and short enough to read:
`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$` and no `..` anywhere.

`sanitize_id` makes ids from arbitrary text (`agentos run --id-from-item`), where two inputs that
differ must not end up with one id: ids that had to be cut, or that lost letters no transliteration
could keep, end in a short hash of the whole original text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

ITEM_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_ID_LENGTH = 64
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_.-]+")
HASH_LENGTH = 10  # hex digits: 40 bits, so even 10 000 long ids with one tail rarely collide
#: letters NFKD leaves whole; everything else accented decomposes into a base letter and marks
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "ae",
        "Œ": "OE",
        "œ": "oe",
        "Ø": "O",
        "ø": "o",
        "Đ": "D",
        "đ": "d",
        "Ð": "D",
        "ð": "d",
        "Ł": "L",
        "ł": "l",
        "Þ": "Th",
        "þ": "th",
        "ı": "i",
    }
)


def id_problem(item_id: str) -> str | None:
    """Why `item_id` is not a valid id, or None when it is."""
    if not item_id:
        return "it is empty"
    if len(item_id) > MAX_ID_LENGTH:
        return f"it is longer than {MAX_ID_LENGTH} characters"
    if ITEM_ID_PATTERN.fullmatch(item_id) is None:
        return "use letters, digits, '_', '.' and '-' only, starting with a letter or digit"
    if ".." in item_id:
        return "it contains '..'"
    return None


def is_valid_id(item_id: str) -> bool:
    return id_problem(item_id) is None


def sanitize_id(text: str, *, fallback: str = "item") -> str:
    """Make a valid id from any text. Letters are transliterated to ASCII where possible
    ("café déjà" -> "cafe_deja"), runs of other characters become '_', '..' collapses, and the
    result starts with a letter or digit. Ids longer than 64 characters keep their tail (where
    long URLs and paths differ) and end in a hash of the whole text; so do ids of text that lost
    letters or digits (scripts with no ASCII spelling); text with nothing usable left becomes
    `<fallback>-<hash>`."""
    ascii_text, lossy = _transliterate(text.strip())
    cleaned = _INVALID_RUN.sub("_", ascii_text)
    while ".." in cleaned:
        cleaned = cleaned.replace("..", ".")
    cleaned = cleaned.strip("_.-")
    if not cleaned:
        return f"{fallback}-{_digest(text)}"
    if not lossy and len(cleaned) <= MAX_ID_LENGTH:
        return cleaned
    keep = MAX_ID_LENGTH - HASH_LENGTH - 1
    tail = cleaned[-keep:].lstrip("_.-").rstrip("_.-")
    return f"{tail or fallback}-{_digest(text)}"


def _transliterate(text: str) -> tuple[str, bool]:
    """`text` in ASCII as far as it goes, and whether a letter or digit was lost on the way."""
    if text.isascii():
        return text, False
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    kept = []
    lossy = False
    for char in decomposed:
        if char.isascii():
            kept.append(char)
        elif unicodedata.combining(char):
            continue  # an accent NFKD split off its letter
        elif (digit := unicodedata.decimal(char, None)) is not None:
            kept.append(str(digit))  # digits of other scripts: ٣ and ३ are 3
        else:
            lossy = lossy or unicodedata.category(char)[0] in "LN"
            kept.append("_")
    return "".join(kept), lossy


def _digest(text: str) -> str:
    import hashlib  # here: it loads OpenSSL, and only unusual ids need it (see credentials)

    data = text.encode("utf-8", errors="surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()[:HASH_LENGTH]


def duplicate_ids(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once, in first-seen order."""
    seen: set[str] = set()
    dupes: dict[str, None] = {}
    for item_id in ids:
        if item_id in seen:
            dupes[item_id] = None
        seen.add(item_id)
    return list(dupes)


_NUMBERED = re.compile(r"(.*?)(?:\.(\d+))?")


def fresh_id(item_id: str, taken: set[str]) -> str:
    """`item-3` → `item-3.2`, `item-3.3`, ...: the first such id not in `taken`."""
    match = _NUMBERED.fullmatch(item_id)
    stem = match.group(1) if match else item_id
    n = 2
    while True:
        suffix = f".{n}"
        candidate = stem[: MAX_ID_LENGTH - len(suffix)].rstrip(".") + suffix
        if candidate not in taken:
            return candidate
        n += 1
