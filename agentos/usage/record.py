"""One model call's usage, and sums of calls.

A call whose provider said nothing about its tokens is still a call: it is counted as
*unmetered* (its tokens and cost unknown), never as zero tokens. A call whose model has no price
is counted as *unpriced*: its tokens are in the sums, its cost is not. A sum's cost is therefore
the cost of its priced calls, and says how many calls it leaves out; `cost_usd` is None only when
no call of it had a cost at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

UNKNOWN_MODEL = "unknown"


class Call(NamedTuple):
    """What one model call used, as its agent reported it. `input_tokens` counts every input
    token, the `cached_tokens` read from a prompt cache among them (OpenAI's convention: an
    Anthropic wrapper adds its cache reads to its input tokens). None: the provider did not
    say. `cost_usd` is the provider's own figure, when it states one."""

    model: str = UNKNOWN_MODEL
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    cost_usd: float | None = None
    #: where the call went, for the price lookup: an API URL or a provider name ("anthropic")
    provider: str | None = None
    key: str | None = None  # the label of the key the call used

    @property
    def metered(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None


@dataclass
class Tally:
    """Sums over calls."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0  # of the priced calls
    unpriced_calls: int = 0  # calls whose cost is unknown (no price, or no usage)
    unmetered_calls: int = 0  # calls whose provider reported no usage

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost(self) -> float | None:
        """The cost of the priced calls; None when there are calls and none has a price."""
        if self.calls and self.unpriced_calls == self.calls:
            return None
        return self.cost_usd

    def add(self, call: Call, cost: float | None) -> None:
        self.calls += 1
        self.input_tokens += call.input_tokens or 0
        self.output_tokens += call.output_tokens or 0
        self.cached_tokens += call.cached_tokens
        if not call.metered:
            self.unmetered_calls += 1
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += cost

    def merge(self, other: Tally) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls
        self.unmetered_calls += other.unmetered_calls

    def copy(self) -> Tally:
        copied = Tally()
        copied.merge(self)
        return copied

    def to_json(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            # nano-dollars: float sums would otherwise print as 0.30000000000000004
            "cost_usd": None if cost is None else round(cost, 9),
            "unpriced_calls": self.unpriced_calls,
            "unmetered_calls": self.unmetered_calls,
        }

    @classmethod
    def from_json(cls, data: Any) -> Tally:
        """Tolerant: a journal written by hand or by an older agentos gives what it has."""
        tally = cls()
        if not isinstance(data, Mapping):
            return tally
        for name in (
            "calls",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "unpriced_calls",
            "unmetered_calls",
        ):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(tally, name, value)
        cost = data.get("cost_usd")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0:
            tally.cost_usd = float(cost)
        return tally


@dataclass
class UsageLog:
    """Calls summed in total, by model and by key label: an attempt's usage, or a run's."""

    total: Tally = field(default_factory=Tally)
    by_model: dict[str, Tally] = field(default_factory=dict)
    by_key: dict[str, Tally] = field(default_factory=dict)
    skipped_lines: int = 0  # malformed lines of a CLI agent's usage file

    def __bool__(self) -> bool:
        return bool(self.total.calls or self.skipped_lines)

    def add(self, call: Call, cost: float | None) -> None:
        self.total.add(call, cost)
        self.by_model.setdefault(call.model, Tally()).add(call, cost)
        if call.key:
            self.by_key.setdefault(call.key, Tally()).add(call, cost)

    def merge(self, other: UsageLog) -> None:
        self.total.merge(other.total)
        for mine, theirs in ((self.by_model, other.by_model), (self.by_key, other.by_key)):
            for name, tally in theirs.items():
                mine.setdefault(name, Tally()).merge(tally)
        self.skipped_lines += other.skipped_lines

    def unpriced_models(self) -> list[str]:
        """Models with metered calls but no price (calls without usage have no cost either,
        but not for want of a price)."""
        return sorted(
            model
            for model, tally in self.by_model.items()
            if tally.unpriced_calls > tally.unmetered_calls
        )

    def to_json(self) -> dict[str, Any]:
        data = self.total.to_json()
        data["by_model"] = {name: tally.to_json() for name, tally in sorted(self.by_model.items())}
        if self.by_key:
            data["by_key"] = {name: tally.to_json() for name, tally in sorted(self.by_key.items())}
        if self.skipped_lines:
            data["skipped_lines"] = self.skipped_lines
        return data

    @classmethod
    def from_json(cls, data: Any) -> UsageLog:
        log = cls(Tally.from_json(data))
        if not isinstance(data, Mapping):
            return log
        for attr, name in ((log.by_model, "by_model"), (log.by_key, "by_key")):
            part = data.get(name)
            if isinstance(part, Mapping):
                attr.update({str(k): Tally.from_json(v) for k, v in part.items()})
        skipped = data.get("skipped_lines")
        if isinstance(skipped, int) and skipped > 0:
            log.skipped_lines = skipped
        return log


def money(usd: float) -> str:
    """$4.87, $0.0123, $0.000195: cents from a dollar up, finer below (one short call to a
    small model costs a fraction of a cent, and a run of them must not all read $0.00)."""
    if usd == 0:
        return "$0.00"
    if usd >= 1:
        return f"${usd:,.2f}"
    places = 4 if usd >= 0.01 else 6
    whole, _, fraction = f"{usd:.{places}f}".rstrip("0").partition(".")
    if not fraction:
        return f"<${10**-places:.{places}f}"
    return f"${whole}.{fraction.ljust(2, '0')}"


def cost_text(tally: Tally) -> str:
    """The cost of a sum as the summary shows it: `$0.0123`, `unknown`, `$0.0123 + unknown`."""
    cost = tally.cost
    if cost is None:
        return "unknown"
    if tally.unpriced_calls:
        return f"{money(cost)} + unknown"
    return money(cost)


def count(n: int) -> str:
    """12,345."""
    return f"{n:,}"
