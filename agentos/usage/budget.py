"""The caps: per item (`--item-budget USD`, `--item-tokens N`) and per run (`--budget USD`).

Per item, in the attempt: before each model call the item's spend so far (its earlier attempts
included) is held against the caps; an item over a cap fails with `OverBudget` and is not retried,
since another attempt would only spend more. The call that crossed the cap is kept and counted:
its answer was paid for.

Per run, in the parent, before each item starts (`RunBudget.verdict`): the item is given an
estimate of what it will cost (the --item-budget cap when there is one, else the mean of the
items finished so far) and starts only if what was spent plus what the running items have
reserved plus that estimate stays within the budget. Otherwise the run drains (no new item,
the running ones finish) and stops with exit 1. Until one item has finished there is no mean to
go by, so without --item-budget the first item runs alone and its cost becomes the estimate: a
measurement, not a guess. A call whose cost is unknown (no price for its model, no usage
reported) makes a budget impossible to keep; the run stops the same way and says which model.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from agentos.errors import AgentosError, ItemError
from agentos.text import plural
from agentos.usage.record import Tally, count, money

START = "start"
WAIT = "wait"  # the first item is being measured
STOP = "stop"


class OverBudget(ItemError):
    """An item passed its --item-budget or --item-tokens: a failure that is not retried."""

    retry = False


class ItemLimits(NamedTuple):
    """An item's caps (--item-budget, --item-tokens); false when it has none."""

    usd: float | None = None
    tokens: int | None = None

    def __bool__(self) -> bool:
        return self.usd is not None or self.tokens is not None

    def check(self, spent: Tally) -> None:
        """Raise OverBudget when `spent` (the item's usage so far) passes a cap, or when a cap
        cannot be kept because a call's cost or tokens are unknown."""
        if self.tokens is not None:
            if spent.unmetered_calls:
                raise OverBudget(
                    f"cannot keep to --item-tokens {self.tokens}: "
                    f"{plural(spent.unmetered_calls, 'call')} reported no usage"
                )
            if spent.tokens > self.tokens:
                raise OverBudget(
                    f"over budget: {count(spent.tokens)} of {count(self.tokens)} tokens"
                )
        if self.usd is not None:
            if spent.unpriced_calls:
                raise OverBudget(
                    f"cannot keep to --item-budget {money(self.usd)}: "
                    f"{plural(spent.unpriced_calls, 'call')} of unknown cost"
                )
            if spent.cost_usd > self.usd:
                raise OverBudget(f"over budget: {money(spent.cost_usd)} of {money(self.usd)}")


class BudgetReached(AgentosError):
    """The run drained because of --budget (exit 1). The message is made when it is shown,
    after the running items have finished: what was spent by then, how many never started."""

    def __init__(self, budget: RunBudget) -> None:
        super().__init__("budget reached")
        self.budget = budget
        self.not_started = 0
        self.resume_dir = ""
        self.resume_command = ""  # the exact command that continues the run

    def format_message(self) -> str:
        budget = self.budget
        spent = f"{money(budget.spent)} of {money(budget.limit)} spent"
        items = f"{plural(self.not_started, 'item')} not started"
        if self.resume_command:
            rerun = f"rerun with a higher budget to continue: {self.resume_command} --budget USD"
        elif self.resume_dir:
            rerun = f"rerun with --resume {self.resume_dir} and a higher --budget to continue"
        else:
            rerun = "rerun with a higher --budget to continue"
        if budget.blind:
            fix = (
                "give the price with --prices FILE and rerun"
                if budget.blind.startswith("no price")
                else "use an agent that reports usage, or drop --budget"
            )
            why = f"cannot keep to --budget {money(budget.limit)}: {budget.blind}"
            return f"{why}; {spent}; {items}; {fix}"
        return f"budget reached: {spent}; {items}; {rerun}"


@dataclass(eq=False)
class RunBudget:
    """The run's --budget: what is spent, what running items may still spend, whether it held."""

    limit: float
    item_cap: float | None = None  # --item-budget: each item's estimate when given
    spent: float = 0.0  # by every attempt of the run, earlier passes included
    reserved: dict[str, float] = field(default_factory=dict)  # running item -> its estimate
    finished_items: int = 0
    finished_cost: float = 0.0
    #: why the budget cannot be kept (a model without a price), once a call shows it
    blind: str = ""
    reached: bool = False  # the run drained because of it

    def estimate(self) -> float | None:
        if self.item_cap is not None:
            return self.item_cap
        if self.finished_items:
            return self.finished_cost / self.finished_items
        return None

    def verdict(self, running: Collection[str]) -> str:
        """May another item start, with the items `running` (their ids) running now? Only
        their reservations count: an attempt that never began (the pool broke, the run
        drained) leaves one behind that must not."""
        if self.blind:
            return STOP
        estimate = self.estimate()
        if estimate is None:
            if running:
                return WAIT
            estimate = 0.0
        if self.spent >= self.limit:
            return STOP
        reserved = sum(v for k, v in self.reserved.items() if k in running)
        if self.spent + reserved + estimate > self.limit:
            return STOP
        return START

    def reserve(self, item_id: str) -> None:
        self.reserved[item_id] = self.estimate() or 0.0

    def attempt_ended(self, item_id: str, attempt: Tally, item_total: Tally | None) -> None:
        """An attempt's spend is in; `item_total` is the item's whole spend once it is final."""
        self.reserved.pop(item_id, None)
        self.spent += attempt.cost_usd
        if item_total is not None:
            self.item_finished(item_total)

    def item_finished(self, total: Tally) -> None:
        self.finished_items += 1
        self.finished_cost += total.cost_usd

    def note(self) -> str:
        """For the progress line: `$0.42 of $5.00`."""
        return f"{money(self.spent)} of {money(self.limit)}"
