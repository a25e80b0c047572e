"""Credentials files as a user writes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


def keys_file(
    folder: Path, keys: str | bytes | Iterable[str] | Mapping[str, str], mode: int = 0o600
) -> Path:
    """`folder/keys.txt`, private to the user unless `mode` says otherwise. `keys` is its text (or
    bytes) as it is, keys one a line, or a mapping of keys to their groups (`key group=...`)."""
    path = folder / "keys.txt"
    if isinstance(keys, bytes):
        path.write_bytes(keys)
    elif isinstance(keys, str):
        path.write_text(keys)
    elif isinstance(keys, Mapping):
        path.write_text("".join(f"{key} group={group}\n" for key, group in keys.items()))
    else:
        path.write_text("".join(f"{key}\n" for key in keys))
    path.chmod(mode)
    return path
