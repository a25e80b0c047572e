"""Usage, cost and budgets: what the model calls of a run used, what they cost, and the caps.

    record.py    one call (`Call`), sums of calls (`Tally`), an attempt's usage by model and key
                 (`UsageLog`)
    prices.py    what a call cost: the provider's own figure, a user price file (--prices), or
                 the genai-prices database; "unknown" rather than a guess
    report.py    the file a CLI agent appends one JSON line per call to ($AGENTOS_USAGE_FILE)
    budget.py    the caps: per item (checked in the attempt, before each call) and per run
                 (checked in the parent, before each item starts)
    meter.py     an attempt's meter, worker side: its calls as they are made or reported, and
                 its caps (`UsageMeter`, `Spending`)
    account.py   the parent's account of a run: per item, key, group, model and in total, for
                 the journal, the progress line and the summary

Item code records through the context (`ctx.record_usage`, `ctx.check_budget`); the attempt
carries its `UsageLog` back in its result, and the parent adds it up. Nothing here imports the
CLI: workers import it.
"""
