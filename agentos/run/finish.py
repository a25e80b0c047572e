"""The end of a run: its exit code, summary.json and the summary table, the last state.json, the
notification. Called while the run's signal handlers still hold, so a late Ctrl+C cannot cut the
summary short."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from agentos.engine.shutdown import ShutdownState
from agentos.errors import EXIT_ITEMS_FAILED, EXIT_OK, AgentosError, KeysExhausted
from agentos.run.summary import RunFacts, render_summary, summary_data, write_summary
from agentos.rundir.statuses import Status
from agentos.usage.budget import BudgetReached
from agentos.usage.record import money

if TYPE_CHECKING:
    from agentos.engine.session import Run
    from agentos.run.plan import Prepared

log = logging.getLogger("agentos")


def finish(prepared: Prepared, run: Run) -> int:
    """Say how the run ended, everywhere it is said; returns the exit code."""
    plan, batch, fatal = prepared.plan, run.batch, run.fatal
    resume_command = prepared.invocation.resume_command(plan.run_path)
    lost = run.listener.lost
    if lost:  # a run whose output did not all arrive is no success, whatever its items did
        shown = "; ".join(f"{item}: {why}" for item, why in sorted(lost.items())[:5])
        more = f" (and {len(lost) - 5} more)" if len(lost) > 5 else ""
        log.warning("output was lost: %s%s; see logs/ in %s", shown, more, plan.run_path)
    if isinstance(fatal, BudgetReached):  # before the notification: it shows them
        fatal.not_started = batch.scheduler.counts()[Status.NOT_RUN]
        fatal.resume_dir = str(plan.run_path)
        fatal.resume_command = resume_command
    code = batch.exit_code()
    if (fatal is not None or lost) and code == EXIT_OK:
        code = EXIT_ITEMS_FAILED
    shutdown = batch.shutdown
    resume = prepared.resume
    facts = RunFacts(
        plan.name,
        plan.run_path,
        "parallel" if plan.parallel else "sequential",
        plan.workers or 1,
        run.started,
        time.time(),
        code,
        interrupted_by=shutdown.signal_name() if shutdown.first_signal else None,
        skipped=resume.done_count if resume is not None else 0,
        keys=run.keys_report,
        usage=batch.account.report(run.keys_report),
        resume_command=resume_command,
    )
    data = summary_data(
        batch.scheduler.states, facts, _earlier_rows(prepared), batch.account.item_json
    )
    write_summary(plan.run_path, data)
    batch.write_state(final={"exit_code": code, "stop_reason": stop_reason(shutdown, fatal)})
    budget = batch.account.budget
    if budget is not None and budget.spent > budget.limit and not budget.reached:
        log.warning(
            "spent %s, over --budget %s: the items that were running when it was reached "
            "went on to finish",
            money(budget.spent),
            money(budget.limit),
        )
    rendered = render_summary(data)
    if not plan.options.output.says_less:
        # bytes of an item that were not UTF-8 show as the terminal shows them in its output
        shown = rendered.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        print(shown, file=sys.stderr, flush=True)
    if prepared.notifier is not None:
        # after summary.json, so a receiver that looks at the run directory finds it
        from agentos.run.notify import message as notify_message

        title, body = notify_message(data, rendered.splitlines()[-1], fatal)
        prepared.notifier.send(title, body, warn=log.warning)
    return code


def _earlier_rows(prepared: Prepared) -> list[dict[str, Any]] | None:
    if prepared.resume is None:
        return None
    from agentos.run.resume import summary_rows_from_earlier  # only resumed runs load it

    return summary_rows_from_earlier(prepared.resume.done_before)


def stop_reason(shutdown: ShutdownState, fatal: AgentosError | None) -> str | None:
    """Why the run stopped before its items were all tried (state.json's `stop_reason`)."""
    if shutdown.first_signal:
        return shutdown.signal_name()
    if isinstance(fatal, BudgetReached):
        return "budget"
    if isinstance(fatal, KeysExhausted):
        return "quota"
    if fatal is not None:
        return "error"
    return None
