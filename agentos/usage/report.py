"""How a CLI agent (or any command an item runs) reports its model calls: one JSON line per call,
appended to the file `$AGENTOS_USAGE_FILE` names.

    {"model": "claude-sonnet-4-5", "input_tokens": 1200, "output_tokens": 340}
    {"model": "gpt-4o-mini", "input_tokens": 900, "cached_tokens": 512, "output_tokens": 80}
    {"model": "anthropic/claude-sonnet-4.5", "cost_usd": 0.0123, "provider": "openrouter"}

Every field is optional; a field of the wrong type makes the line malformed. `input_tokens`
counts all input tokens, the `cached_tokens` read from a prompt cache among them. `cost_usd` is
the provider's own figure (it wins over any price). `provider` (a name such as "anthropic", or
the API URL) helps find the price when a model is sold by several providers. Unknown fields are
ignored, so a wrapper may add its own.

The file is per attempt (`<run-dir>/usage/<item>.attempt-<n>.jsonl`); agentos reads what was
appended after each command the item runs, and once more when the attempt ends. A malformed
line is skipped and reported in the item's output, never fatal: a wrapper's bug must not fail
work that is done and paid for.

Calls an agent makes in the worker itself (HTTP agents: `ItemContext.record_usage`) are written
down as they happen too, in `<item>.attempt-<n>.calls.jsonl`: a `{"begun": model}` line before
each call, the call's line when it is answered, `{"ended": true}` after it. An attempt whose
worker was killed (a second Ctrl+C, a timeout, a crash) cannot report what it spent; the parent
reads both files instead (`lost_attempt_usage`): every call in them counts, and a call that had
begun and never ended counts as one whose tokens are unknown, because the provider may have
answered it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.usage.record import UNKNOWN_MODEL, Call, UsageLog

if TYPE_CHECKING:
    from agentos.usage.prices import PriceBook

USAGE_FILE_ENV = "AGENTOS_USAGE_FILE"
MAX_LINE = 64 * 1024  # a call's line is tens of bytes; anything longer is not one
_INTS = ("input_tokens", "output_tokens", "cached_tokens")


def parse_line(line: bytes) -> Call | str:
    """The call a line reports, or why it is not one."""
    if len(line) > MAX_LINE:
        return f"longer than {MAX_LINE // 1024} KiB"
    try:
        data: Any = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return "not JSON"
    if not isinstance(data, Mapping):
        return "not a JSON object"
    values: dict[str, Any] = {}
    for name in _INTS:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} must be a whole number >= 0"
        values[name] = value
    cost = data.get("cost_usd")
    if cost is not None and (
        isinstance(cost, bool)
        or not isinstance(cost, (int, float))
        or not math.isfinite(cost)
        or cost < 0
    ):
        return "cost_usd must be a number >= 0"
    for name in ("model", "provider"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return f"{name} must be a non-empty string"
    return Call(
        model=str(data.get("model") or UNKNOWN_MODEL).strip()[:200],
        input_tokens=values.get("input_tokens"),
        output_tokens=values.get("output_tokens"),
        cached_tokens=values.get("cached_tokens", 0),
        cost_usd=None if cost is None else float(cost),
        provider=data.get("provider"),
    )


@dataclass(eq=False)
class UsageFile:
    """Reads what was appended to one attempt's usage file since the last read."""

    path: str
    offset: int = 0
    line_number: int = 0
    _ready: bool = field(default=False, repr=False)

    def prepare(self) -> None:
        """Make the directory the file goes in (once): a wrapper appends, it does not mkdir."""
        if not self._ready:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._ready = True

    def scrub(self, redact: Callable[[str], str]) -> None:
        """Rewrite the file with `redact` applied, if that changes it: it lies in the run
        directory, and a wrapper may have written a key into it (as a model name, say)."""
        try:
            with open(self.path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return
        clean = redact(text)
        if clean == text:
            return
        from agentos.beneath import write_beneath

        with contextlib.suppress(OSError):  # a temp file and a rename: no link is written through
            write_beneath(
                os.path.dirname(self.path), os.path.basename(self.path), clean, replace_link=True
            )

    def read_new(self) -> list[tuple[int, Call | str]]:
        """(line number, call or why the line was skipped) for every line appended since the
        last read. A missing file is no calls (one failed open: the common case costs
        microseconds). The last line counts even without its newline: the command that
        wrote it has exited."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.line_number += 1
            return [(self.line_number, f"cannot read the file: {exc.strerror}")]
        self.offset += len(data)
        found: list[tuple[int, Call | str]] = []
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the newline that ends the last line starts no new one
        for line in lines:
            self.line_number += 1
            if line.strip():
                found.append((self.line_number, parse_line(line)))
        return found


def attempt_usage_path(run_dir: Path | str, item_id: str, attempt: int) -> str:
    """The attempt's `$AGENTOS_USAGE_FILE`."""
    return os.path.join(run_dir, "usage", f"{item_id}.attempt-{attempt}.jsonl")


def attempt_calls_path(run_dir: Path | str, item_id: str, attempt: int) -> str:
    """Where the attempt's in-process calls are written down as they happen."""
    return os.path.join(run_dir, "usage", f"{item_id}.attempt-{attempt}.calls.jsonl")


def call_line(call: Call) -> bytes:
    """A call as one line of the calls file (the usage-file format, with its key's label)."""
    data = {
        "model": call.model,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cached_tokens": call.cached_tokens,
        "cost_usd": call.cost_usd,
        "provider": call.provider,
        "key": call.key,
    }
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode() + b"\n"


def lost_attempt_usage(
    run_dir: Path | str,
    item_id: str,
    attempt: int,
    key_label: str | None = None,
    *,
    prices: PriceBook,
    redact: Callable[[str], str] | None = None,
) -> UsageLog | None:
    """What an attempt that could not report spent, from its usage and calls files; None when
    they hold no call. `key_label`: the attempt's lease, the key of its commands' calls."""
    log = UsageLog()
    usage = UsageFile(attempt_usage_path(run_dir, item_id, attempt))
    if redact is not None:
        usage.scrub(redact)  # the worker that would have scrubbed it is gone
    for _, found in usage.read_new():
        if isinstance(found, Call):
            call = found._replace(key=key_label)
            log.add(call, prices.cost(call))
        else:
            log.skipped_lines += 1
    open_calls: list[tuple[str, str | None]] = []
    calls = attempt_calls_path(run_dir, item_id, attempt)
    try:
        with open(calls, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        lines = []
    for line in lines:
        try:
            data = json.loads(line) if line.strip() else None
        except ValueError:
            continue  # the last line, cut short by the kill
        if not isinstance(data, dict):
            continue
        label = data.get("key") if isinstance(data.get("key"), str) else None
        if "begun" in data:
            open_calls.append((str(data["begun"] or UNKNOWN_MODEL), label))
        elif "ended" in data:
            if open_calls:
                open_calls.pop()
        else:
            found = parse_line(line)
            if isinstance(found, Call):
                call = found._replace(key=label)
                log.add(call, prices.cost(call))
    for model, label in open_calls:  # begun, never ended: answered or not, nobody can say
        call = Call(model=model, key=label)
        log.add(call, prices.cost(call))
    return log if log.total.calls or log.skipped_lines else None
