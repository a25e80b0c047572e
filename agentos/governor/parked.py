"""What runs learn about keys, remembered across runs: above all keys out of quota, so tomorrow's
run does not begin by hammering a key whose daily quota is spent until noon.

    $AGENTOS_STATE_DIR/keys.json      (default $XDG_STATE_HOME/agentos, else ~/.local/state/agentos)
    {"<sha-256 of the key>": {"until": <epoch>, "reason": "key-2: out of quota",
                              "group": "acme", "rpm": 500, "tpm": 200000, "calls": 120,
                              "last_run": <epoch>}}

Keys are named by their SHA-256 only, never by the key. A run reads the parked keys when it
starts (a park whose time has passed is dropped) and merges what it learned when it ends: keys it
parked are parked, keys it used without a quota refusal are cleared, and each key's group,
limits and calls are noted for `agentos keys`. The file is replaced atomically; two runs ending
at once may lose one's update, which costs at most one refusal.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

STATE_ENV = "AGENTOS_STATE_DIR"


def state_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentos"


def _path() -> Path:
    return state_dir() / "keys.json"


def entries() -> dict[str, dict[str, Any]]:
    """Everything remembered, by fingerprint; {} when there is no usable file."""
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def load(now: float | None = None) -> dict[str, tuple[float, str]]:
    """Fingerprint -> (until, reason) of keys still parked."""
    now = time.time() if now is None else now
    found = {}
    for fingerprint, entry in entries().items():
        with contextlib.suppress(KeyError, TypeError, ValueError):
            until = float(entry["until"])
            if until > now:
                found[fingerprint] = (until, str(entry.get("reason", "")))
    return found


def save(
    parked: dict[str, tuple[float, str]],
    used: set[str],
    now: float | None = None,
    notes: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Merge one run's knowledge: `parked` now, `used` (fingerprints of keys the run had: their
    parks are cleared unless parked again), `notes` (per key: group, limits, calls). Never
    raises: remembering is a courtesy, not the run's work."""
    now = time.time() if now is None else now
    merged = entries()
    for fingerprint, entry in list(merged.items()):
        until = entry.get("until")
        expired = not isinstance(until, (int, float)) or until <= now
        if fingerprint in used or expired:
            entry.pop("until", None)
            entry.pop("reason", None)
    for fingerprint, note in (notes or {}).items():
        merged.setdefault(fingerprint, {}).update(note, last_run=round(now, 3))
    for fingerprint, (until, reason) in parked.items():
        merged.setdefault(fingerprint, {}).update(until=round(until, 3), reason=reason)
    merged = {k: v for k, v in merged.items() if v}
    path = _path()
    with contextlib.suppress(OSError):
        if not merged and not path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dict(sorted(merged.items())), indent=2)
        fd, tmp = tempfile.mkstemp(prefix=".keys.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
