"""The parent's account of a run's usage: every attempt's `UsageLog`, added up per item, key,
group and model and for the run, earlier passes (--resume) included; what the progress line
and the summary show; and the notices a run gives once (a model with no price)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentos.usage.budget import ItemLimits, RunBudget
from agentos.usage.record import Tally, UsageLog, money


class RunAccount:
    def __init__(self, budget: RunBudget | None = None, limits: ItemLimits | None = None) -> None:
        self.budget = budget
        self.limits = limits or ItemLimits()
        self.log = UsageLog()  # this pass
        self.earlier = UsageLog()  # the passes before it (--resume)
        self.items: dict[str, Tally] = {}  # item id -> every attempt of it, earlier ones too
        self._told: set[tuple[str, str]] = set()  # (what, model) said once

    # -- what comes in
    def add_earlier(self, item_id: str, usage: UsageLog, *, finished: bool) -> None:
        """An item's attempts in earlier passes: they count toward the run's totals and its
        --budget, and toward the item's own caps when it runs again."""
        self.earlier.merge(usage)
        if usage.total.calls:
            self.items.setdefault(item_id, Tally()).merge(usage.total)
        if self.budget is not None:
            self.budget.spent += usage.total.cost_usd
            if finished:
                self.budget.item_finished(usage.total)

    def spent_before(self, item_id: str) -> Tally | None:
        return self.items.get(item_id)

    def attempt_ended(self, item_id: str, usage: UsageLog | None, *, final: bool) -> list[str]:
        """Add an attempt's usage; returns what to tell the user (each thing once per run)."""
        usage = usage or UsageLog()
        item = self.items.setdefault(item_id, Tally())
        item.merge(usage.total)
        self.log.merge(usage)
        notices = []
        for model in usage.unpriced_models():
            if self._first(("price", model)):
                notices.append(
                    f"no price known for model {model!r}: its tokens are recorded, its cost is "
                    "unknown (give its price with --prices FILE)"
                )
        for model, tally in usage.by_model.items():
            if tally.unmetered_calls and self._first(("usage", model)):
                unknown = "tokens and cost" if tally.unpriced_calls else "tokens"
                notices.append(
                    f"calls of model {model!r} reported no token counts: their {unknown} "
                    "are unknown"
                )
        budget = self.budget
        if budget is not None:
            if usage.total.unpriced_calls and not budget.blind:
                unpriced = usage.unpriced_models()
                silent = sorted(m for m, t in usage.by_model.items() if t.unmetered_calls)
                budget.blind = (
                    f"no price for model {', '.join(repr(m) for m in unpriced)}"
                    if unpriced
                    else f"calls of model {', '.join(repr(m) for m in silent)} reported no "
                    "token counts"
                )
            budget.attempt_ended(item_id, usage.total, item if final else None)
        return notices

    def _first(self, what: tuple[str, str]) -> bool:
        if what in self._told:
            return False
        self._told.add(what)
        return True

    # -- what goes out
    def total(self) -> UsageLog:
        whole = UsageLog()
        whole.merge(self.earlier)
        whole.merge(self.log)
        return whole

    def progress_note(self) -> str:
        """`$0.42 of $5.00` with a budget, `$0.42 spent` once anything is spent, else nothing."""
        if self.budget is not None:
            return self.budget.note()
        total = self.log.total
        if not total.calls:
            return ""
        cost = total.cost
        return f"{money(cost)} spent" if cost is not None else ""

    def item_json(self, item_id: str) -> dict[str, Any] | None:
        tally = self.items.get(item_id)
        return tally.to_json() if tally is not None and tally.calls else None

    def report(self, keys: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """summary.json's `usage`: the run's totals, by model, key and group, the models that
        had no price, and the budget. `keys` (the summary's key rows) get their own usage."""
        whole = self.total()
        data = whole.to_json()
        groups: dict[str, Tally] = {}
        group_of = {}
        for row in keys:
            label = str(row.get("label"))
            group_of[label] = str(row.get("group") or label)
            tally = whole.by_key.get(label)
            row["usage"] = tally.to_json() if tally is not None else None
        for label, tally in whole.by_key.items():
            groups.setdefault(group_of.get(label, label), Tally()).merge(tally)
        if groups:
            data["by_group"] = {name: tally.to_json() for name, tally in sorted(groups.items())}
        data["unpriced_models"] = whole.unpriced_models()
        budget = self.budget
        if budget is not None or self.limits:
            data["budget"] = {
                "limit_usd": budget.limit if budget is not None else None,
                "spent_usd": round(budget.spent, 9) if budget is not None else None,
                "reached": budget.reached if budget is not None else False,
                "item_budget_usd": self.limits.usd,
                "item_tokens": self.limits.tokens,
            }
        return data
