"""An attempt's meter: its model calls, what they cost, and its caps, on the worker's side.

Two ways calls reach it. An agent that calls a model in this process (HTTP agents) records each
call (`record`), inside `model_call`, which writes the call down as it is sent and as it is
answered (the calls file): what a killed worker spent still counts. A command the item runs (a
CLI agent, or its wrapper) appends one line per call to the attempt's usage file (report.py),
which the meter reads after each command and once more when the attempt ends. Before the next
call, `check_budget` holds the item's spend (its earlier attempts' included) against its caps.
The attempt carries the meter's `UsageLog` back in its result.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from agentos.usage.budget import ItemLimits
from agentos.usage.prices import PriceBook
from agentos.usage.record import UNKNOWN_MODEL, Call, Tally, UsageLog
from agentos.usage.report import (
    USAGE_FILE_ENV,
    UsageFile,
    attempt_calls_path,
    attempt_usage_path,
    call_line,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack


@dataclass(frozen=True, eq=False)
class Spending:
    """What an item's calls cost and may cost: the prices, its caps (--item-budget,
    --item-tokens), and what its earlier attempts spent (the caps are the item's, not the
    attempt's)."""

    prices: PriceBook = field(default_factory=PriceBook)
    limits: ItemLimits = field(default_factory=ItemLimits)
    before: Tally | None = None


class CallFigures(TypedDict, total=False):
    """What `record` takes besides the model (see `UsageMeter.record`)."""

    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int
    cost_usd: float | None
    provider: str | None
    key_label: str | None


def _as_is(text: str) -> str:
    return text


class UsageMeter:
    """One attempt's usage. `key_label`: the key its calls use unless a call says otherwise (the
    attempt's lease); `redact`: what model names and the usage file pass through before they are
    kept (a wrapper or a server may put a key anywhere)."""

    def __init__(
        self,
        run_dir: Path,
        item_id: str,
        attempt: int,
        spending: Spending,
        key_label: str | None = None,
        redact: Callable[[str], str] = _as_is,
    ) -> None:
        self.spending = spending
        self.key_label = key_label
        self.usage = UsageLog()
        self._redact = redact
        self._calls_path = attempt_calls_path(run_dir, item_id, attempt)
        self._usage_path = attempt_usage_path(run_dir, item_id, attempt)
        self._usage_file: UsageFile | None = None
        self._calls_fd: int | None = None

    # -- calls made in this process
    def record(self, model: str | None, **figures: Unpack[CallFigures]) -> float | None:
        """See `ItemContext.record_usage`."""
        cached_tokens = figures.get("cached_tokens", 0)
        cost_usd = figures.get("cost_usd")
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            value = figures.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"record_usage: {name} must be an int or None, not {value!r}")
            if value is not None and value < 0:
                raise ValueError(f"record_usage: {name} must be >= 0, not {value}")
        if cost_usd is not None and not cost_usd >= 0:
            raise ValueError(f"record_usage: cost_usd must be >= 0, not {cost_usd}")
        call = Call(
            # a model name comes from a server or a wrapper: it goes into files, so no key in it
            model=self._redact(model.strip()) if model and model.strip() else UNKNOWN_MODEL,
            input_tokens=figures.get("input_tokens"),
            output_tokens=figures.get("output_tokens"),
            cached_tokens=cached_tokens,
            cost_usd=None if cost_usd is None else float(cost_usd),
            provider=figures.get("provider"),
            key=figures.get("key_label") or self.key_label,
        )
        self._note(call)
        return self._add(call)

    def _add(self, call: Call) -> float | None:
        cost = self.spending.prices.cost(call)
        self.usage.add(call, cost)
        return cost

    @contextlib.contextmanager
    def model_call(self, model: str, key_label: str | None = None) -> Iterator[None]:
        """Around one model call made in this process: written down before it is sent, and
        after (see agentos.usage.report.lost_attempt_usage)."""
        self._note({"begun": model, "key": key_label or self.key_label})
        try:
            yield
        finally:
            self._note({"ended": True})

    def _note(self, entry: dict[str, Any] | Call) -> None:
        if isinstance(entry, Call):
            line = call_line(entry)
        else:
            line = json.dumps({k: v for k, v in entry.items() if v is not None}).encode() + b"\n"
        try:
            if self._calls_fd is None:
                os.makedirs(os.path.dirname(self._calls_path), exist_ok=True)
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
                self._calls_fd = os.open(self._calls_path, flags, 0o600)
            os.write(self._calls_fd, line)  # one write: in the kernel even if we die next
        except OSError:
            pass  # only a killed attempt needs it; a live one reports its usage itself

    def close_calls(self) -> None:
        if self._calls_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._calls_fd)
            self._calls_fd = None

    # -- the caps
    def spent(self) -> Tally:
        """The item's usage so far: its earlier attempts' and this one's."""
        total = self.usage.total.copy()
        if self.spending.before is not None:
            total.merge(self.spending.before)
        return total

    def check_budget(self) -> None:
        """Raise OverBudget (a failure that is not retried) when the item has passed its
        caps."""
        if self.spending.limits:
            self.spending.limits.check(self.spent())

    # -- calls reported by the item's commands
    @property
    def usage_file(self) -> str:
        """The attempt's usage file (`$AGENTOS_USAGE_FILE` of its commands); its directory is
        made on first use."""
        if self._usage_file is None:
            self._usage_file = UsageFile(self._usage_path)
            with contextlib.suppress(OSError):  # unwritable: the wrapper's append fails, not us
                self._usage_file.prepare()
        return self._usage_file.path

    def scrub_usage_file(self) -> None:
        """At the attempt's end: no key stays in its usage file (see UsageFile.scrub)."""
        if self._usage_file is not None:
            self._usage_file.scrub(self._redact)

    def collect_usage_file(self) -> None:
        """Record the calls appended to the usage file since the last look; a malformed line is
        skipped and said in the item's output."""
        if self._usage_file is None:
            return
        for number, found in self._usage_file.read_new():
            if isinstance(found, str):
                self.usage.skipped_lines += 1
                print(
                    f"agentos: {USAGE_FILE_ENV} line {number} skipped: {found}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            self._add(
                Call(
                    self._redact(found.model),
                    found.input_tokens,
                    found.output_tokens,
                    found.cached_tokens,
                    found.cost_usd,
                    found.provider,
                    self.key_label,
                )
            )
