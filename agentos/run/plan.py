"""From a command's values to a run, decided: `prepare(workflow, params, invocation)`.

    options (the groups) → config (workflow.make_config) → items (workflow.collect_items),
    checked → what earlier passes did (--resume) → the keys → prices, a budget that can be
    counted → how many items at once
    → nothing to do?  "Nothing to process"        → --dry-run?  the table of pending items
      (both: nothing created, nothing started, nothing called; `prepare` returns None)
    → every place the run writes, writable → the backend, set up (a Dask scheduler reached,
      its workers seeing the workspace) → a `Prepared` run: the engine's `RunPlan`, its backend,
      and what the parent keeps for the end (the earlier passes, who to notify, how to resume)

Everything that can be wrong with the command is found here, before anything is created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from agentos.engine.options import MAX_WORKERS, RunnerOptions
from agentos.engine.plan import KeyPlan, RunPlan
from agentos.errors import ConfigError, UsageError
from agentos.governor.credentials import Redactor, take_secret_environment
from agentos.item.ids import duplicate_ids, id_problem
from agentos.item.workflow import Item, Workflow
from agentos.run.about import run_about
from agentos.run.summary import render_dry_run
from agentos.run.writable import check_writable
from agentos.rundir.journal import MANIFEST, default_run_dir, update_manifest, write_manifest
from agentos.text import plural
from agentos.usage.account import RunAccount
from agentos.usage.budget import ItemLimits, RunBudget
from agentos.usage.prices import ModelRef, PriceBook
from agentos.usage.report import USAGE_FILE_ENV

if TYPE_CHECKING:
    from agentos.engine.session import Backend
    from agentos.run.notify import Notifier
    from agentos.run.recorded import Invocation
    from agentos.run.resume import ResumePlan

log = logging.getLogger("agentos")


class Prepared(NamedTuple):
    """A run, decided (see the module docstring)."""

    plan: RunPlan
    backend: Backend
    invocation: Invocation
    resume: ResumePlan | None = None
    notifier: Notifier | None = None

    def lock(self) -> AbstractContextManager[Any]:
        """One run of a workflow per workspace at a time (agentos.run.locks)."""
        plan = self.plan
        if plan.workspace is None:
            return contextlib.nullcontext()
        from agentos.run.locks import WorkspaceLock  # only workflows with a workspace

        return WorkspaceLock(plan.workspace, plan.name, plan.run_path)

    def record(self, run_path: Path) -> None:
        """run.json: what the run is and the options it goes on with. A resume keeps the first
        pass's record and updates its options (the ones it was allowed to change)."""
        plan, invocation = self.plan, self.invocation
        recorded: dict[str, Any] = {}
        if invocation.params:  # not a call from code, without click
            params = dict(invocation.params)
            if plan.workflow.kept_inputs is not None:  # inputs it cannot read again: copies
                params.update(plan.workflow.kept_inputs(plan.config, run_path))
            recorded = {"params": params, "cwd": invocation.cwd}
        try:
            if self.resume is not None and (run_path / MANIFEST).exists():
                if recorded:
                    update_manifest(run_path, recorded)
                return
            write_manifest(
                run_path,
                plan.workflow.resume_identity(plan.config),
                run_about(plan.options, Redactor(plan.keys.credentials)),
                recorded,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot write to the run directory: {run_path / MANIFEST}: {exc.strerror}; "
                "fix its permissions or choose another --run-dir"
            ) from None


@dataclass(eq=False)
class _Draft:
    """What `prepare` has found so far."""

    workflow: Workflow
    options: RunnerOptions
    config: Any
    items: list[Item]
    resume: ResumePlan | None = None


def prepare(
    workflow: Workflow, params: dict[str, Any], invocation: Invocation | None = None
) -> Prepared | None:
    """The run the command asks for (see the module docstring); None when there is nothing to
    run (what there was to say is said)."""
    if invocation is None:
        from agentos.run.recorded import Invocation

        invocation = Invocation({}, f"agentos {workflow.name}")
    # before anything starts a process (an agent's CLI is asked its version while the options
    # are checked): no process of this run inherits the keys or the notification tokens
    secret_env = take_secret_environment()
    params = dict(params)
    notifier = None
    if params.get("notify"):  # a bad URL or no apprise: exit 2 before anything
        from agentos.run.notify import check_urls  # here: most runs notify nobody

        notifier = check_urls(tuple(params["notify"]))
    options = RunnerOptions.from_params(params)
    if options.output.says_more:  # -v: what the agents found (their CLIs' paths), and more
        logging.getLogger("agentos").setLevel(logging.DEBUG)
    config = workflow.make_config(**params)
    draft = _Draft(workflow, options, config, check_items(list(workflow.collect_items(config))))
    _earlier_passes(draft)
    mode = workflow.key_mode(config) if workflow.key_mode is not None else "item"
    keys = KeyPlan.load(options.keys, mode, secret_env)
    reason = workflow.needs_keys(config) if workflow.needs_keys is not None else None
    if reason and not keys.credentials:
        raise ConfigError(f"{reason}: pass --credentials-file PATH or set AGENTOS_CREDENTIALS")
    prices = PriceBook.load(options.budget.prices)
    models: list[ModelRef | None] = (
        workflow.models(config) if workflow.models is not None else [None]
    )
    check_prices(options, prices, models)
    workers = 0
    if options.execution.parallel is not None:
        slots, count = keys.item_slots, len(keys.credentials)
        workers = effective_workers(options.execution.parallel, slots, len(draft.items), count)
    if _nothing_to_run(draft):
        return None
    run_path = options.execution.resume or options.execution.run_dir
    run_path = run_path or default_run_dir(workflow.name)
    if workflow.outputs is not None:
        check_writable(
            workflow.outputs(config), f"agentos {workflow.name} writes its results there"
        )
    check_writable([run_path], "the run keeps its journal, logs and summary there")
    backend = _backend(draft, keys, workers)
    known = [ref for ref in models if ref is not None]
    if known:
        prices.preload(known)  # calls will be priced: load the database before workers fork
    resume = draft.resume
    plan = RunPlan(
        workflow,
        config,
        options,
        draft.items,
        keys,
        workers,
        run_path,
        account=make_account(options, resume),
        prices=prices,
        attempts_before=resume.attempts_before if resume is not None else {},
        requeues_before=resume.requeues_before if resume is not None else {},
    )
    return Prepared(plan, backend, invocation, resume, notifier)


def _earlier_passes(draft: _Draft) -> None:
    """With --resume: the items an earlier pass of the run finished are left out (its run
    directory must be this run's)."""
    run_dir = draft.options.execution.resume
    if run_dir is None:
        return
    from agentos.run.resume import check_same_run, plan_resume, read_earlier

    check_same_run(run_dir, draft.workflow.resume_identity(draft.config))
    earlier = read_earlier(run_dir)
    if earlier.corrupt_lines:
        lines = ", ".join(map(str, earlier.corrupt_lines[:5]))
        log.warning(
            "%s: skipped %s that %s not a record (line %s: a write cut short)",
            run_dir / "journal.jsonl",
            plural(len(earlier.corrupt_lines), "line"),
            "are" if len(earlier.corrupt_lines) != 1 else "is",
            lines,
        )
    draft.resume = plan_resume(draft.items, earlier)
    draft.items = draft.resume.pending


def _nothing_to_run(draft: _Draft) -> bool:
    """Nothing to do, or --dry-run: said, and True."""
    skipped = draft.resume.done_count if draft.resume is not None else 0
    if not draft.items:
        click.echo("Nothing to process" + (f" ({skipped} already done)" if skipped else ""))
        return True
    if draft.options.execution.dry_run:
        click.echo(render_dry_run(draft.items, skipped))
        return True
    return False


def _backend(draft: _Draft, keys: KeyPlan, workers: int) -> Backend:
    """The backend the options name, set up as far as it can be before the run starts."""
    if not workers:
        from agentos.engine.backends.sequential import SequentialBackend

        return SequentialBackend()
    if draft.options.execution.backend != "dask":
        from agentos.engine.backends.loky import LokyBackend

        return LokyBackend()
    from agentos.engine.backends.dask import DaskBackend
    from agentos.engine.backends.dask_cluster import check_shared_folders, prepare_dask

    # a missing extra, an unreachable --scheduler, a key in a forwarded variable: set-up
    # errors, before anything is created (the connection is kept for the run)
    setup = prepare_dask(draft.options, keys.credentials, warn=log.warning)
    workflow = draft.workflow
    workspace = workflow.workspace(draft.config) if workflow.workspace is not None else None
    if setup.client is not None and workspace is not None:
        check_shared_folders(setup.client, [workspace])
    return DaskBackend(setup)


def check_items(items: list[Item]) -> list[Item]:
    """Every id valid and unique, every item numbered and keyed: a clear error before anything
    starts. The same work twice in one input (a repeated line) gets distinct keys: `#2`, `#3`."""
    bad = [(i.id, problem) for i in items if (problem := id_problem(i.id))]
    if bad:
        shown = "; ".join(f"{item_id!r}: {why}" for item_id, why in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ConfigError(f"invalid item ids: {shown}{more}")
    dupes = duplicate_ids(i.id for i in items)
    if dupes:
        sources = {d: [i.source for i in items if i.id == d] for d in dupes[:3]}
        detail = "; ".join(f"{d} from {' and '.join(s)}" for d, s in sources.items())
        raise ConfigError(f"two inputs give the same item id: {detail}; rename one of them")
    checked = []
    seen: dict[str, int] = {}
    for n, item in enumerate(items, start=1):
        key = item.key or item.id
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key = f"{key}#{seen[key]}"
        if item.seq and item.key == key:
            checked.append(item)
        else:
            checked.append(dataclasses.replace(item, seq=item.seq or n, key=key))
    return checked


def effective_workers(requested: int, n_slots: int, n_items: int, n_keys: int | None = None) -> int:
    """Workers for a run: at most MAX_WORKERS, at most the items, and, when each item leases a
    key, at most the keys' slots (`n_slots`, over `n_keys` keys; 0: keys do not cap)."""
    workers = requested
    if workers > MAX_WORKERS:
        log.warning("requested %d workers, capping to %d", requested, MAX_WORKERS)
        workers = MAX_WORKERS
    n_keys = n_slots if n_keys is None else n_keys
    if n_slots and n_slots < workers:
        using = f"using {plural(n_slots, 'worker')}"
        if n_slots == n_keys:
            were = "key is" if n_keys == 1 else "keys are"
            log.info("%s: only %d %s configured (asked for %d)", using, n_keys, were, requested)
        else:
            log.info(
                "%s: the %s allow %s at once (asked for %d; raise slots= or --key-slots for more)",
                using,
                plural(n_keys, "key"),
                plural(n_slots, "item"),
                requested,
            )
        workers = n_slots
    return max(1, min(workers, n_items))


def check_prices(options: RunnerOptions, prices: PriceBook, models: list[ModelRef | None]) -> None:
    """A budget in dollars needs a price for every model the run will call: one that cannot
    be priced is a usage error now, not a budget that silently counts nothing. Models only
    the calls will tell (CLI agents) are checked as their calls come, and stop the run then."""
    budget = options.budget
    if not budget.limited:
        return
    option = "--budget" if budget.budget is not None else "--item-budget"
    for ref in (ref for ref in models if ref is not None):
        if not prices.known(ref.model, ref.provider):
            raise UsageError(
                f"{option} needs prices, and none is known for model {ref.model!r}; give it "
                "with --prices FILE (TOML, USD per million tokens)"
            )
    if None in models:
        log.info(
            "%s counts the model calls that commands report in $%s; a call of a model "
            "without a price stops the run",
            option,
            USAGE_FILE_ENV,
        )


def make_account(options: RunnerOptions, resume: ResumePlan | None) -> RunAccount:
    """The run's usage account and budget, with what its earlier passes spent (--resume)."""
    budget = options.budget
    run_budget = RunBudget(budget.budget, budget.item_budget) if budget.budget else None
    account = RunAccount(run_budget, ItemLimits(budget.item_budget, budget.item_tokens))
    if resume is not None:
        for item, before in resume.done_before:
            account.add_earlier(item.id, before.usage, finished=True)
        for item_id, usage in resume.usage_before.items():
            account.add_earlier(item_id, usage, finished=False)
    return account
