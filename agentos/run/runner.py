"""The shared runner: one place that owns the options and the orchestration of every command.

    build_command(workflow) ─► click command: the workflow's own options + the shared ones
    run_workflow(workflow, params):
        options → config (workflow.make_config) → items (workflow.collect_items) → checks
        → nothing to do?  "Nothing to process", exit 0
        → --dry-run?      table of pending items, exit 0, nothing created or started
        → prices, budgets: a budget whose models have no price is exit 2 here
        → run directory, journal, terminal, keys
        → no --parallel:  sequential.run_sequential (in this process, unprefixed)
          --parallel N:   pool.ParallelRun (loky workers, key server, output listener)
        → summary table + summary.json → exit code (0, 1, 130, 143)

A workflow supplies `collect_items(config)` and `execute_item(item, ctx)`; it never sees any of the
above.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentos.engine.attempt import AttemptSpec
from agentos.engine.batch import Batch, ExecutionSettings
from agentos.engine.controller import ExecutorPlan
from agentos.engine.output.capture import ItemCapture, OutputChannel
from agentos.engine.output.escape import escape_text
from agentos.engine.output.listener import OutputListener
from agentos.engine.output.terminal import Terminal, colour_wanted
from agentos.engine.shutdown import (
    ShutdownState,
    handle_signals,
    mark_run_began,
    spawn_guard,
)
from agentos.errors import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    AgentosError,
    ConfigError,
    KeysExhausted,
    UsageError,
)
from agentos.governor.credentials import (
    Credential,
    KeyConfig,
    Redactor,
    load_keys,
    make_credentials,
    take_secret_environment,
)
from agentos.governor.protocol import GovernorHandle, KeyService, KeyState
from agentos.item.ids import duplicate_ids, id_problem
from agentos.item.process_tree import kill_tagged
from agentos.item.workflow import Item, Workflow
from agentos.run.about import run_about
from agentos.run.locks import WorkspaceLock
from agentos.run.options import RunnerOptions, runner_options, workflow_params
from agentos.run.summary import render_dry_run, render_summary, summary_data, write_summary
from agentos.run.writable import check_writable
from agentos.rundir.journal import (
    MANIFEST,
    Journal,
    RunDir,
    default_run_dir,
    update_manifest,
    write_manifest,
)
from agentos.rundir.state import StateWriter
from agentos.rundir.statuses import Status
from agentos.text import plural
from agentos.usage.account import RunAccount
from agentos.usage.budget import BudgetReached, ItemLimits, RunBudget
from agentos.usage.prices import ModelRef, PriceBook
from agentos.usage.record import money
from agentos.usage.report import USAGE_FILE_ENV, lost_attempt_usage

if TYPE_CHECKING:
    from agentos.governor.governor import Governor
    from agentos.run.notify import Notifier
    from agentos.run.recorded import Invocation
    from agentos.run.resume import ResumePlan

log = logging.getLogger("agentos")


def build_command(workflow: Workflow) -> click.Command:
    @click.command(
        name=workflow.name,
        help=workflow.summary + ("\n\n" + workflow.epilog if workflow.epilog else ""),
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @runner_options
    @click.pass_context
    def command(ctx: click.Context, **params: Any) -> None:
        from agentos.run.recorded import Invocation

        invocation = Invocation.from_click(ctx, params, workflow)
        code = run_workflow(workflow, params, invocation)
        if code != EXIT_OK:
            sys.exit(code)

    command.params[:0] = workflow_params(workflow.options)
    return command


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


MAX_WORKERS = 10  # the hard cap; WorkerPool enforces it too


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


def run_workflow(
    workflow: Workflow, params: dict[str, Any], invocation: Invocation | None = None
) -> int:
    """`params`: every option's value (with --resume, completed from the run directory by
    `Invocation.from_click`); `invocation`: what run.json records of them."""
    params = dict(params)
    if invocation is None:
        from agentos.run.recorded import Invocation

        invocation = Invocation({}, f"agentos {workflow.name}")
    # before anything starts a process (an agent's CLI is asked its version while the options
    # are checked): no process of this run inherits the keys or the notification tokens
    secret_env = take_secret_environment()
    options = RunnerOptions.from_params(params)
    if options.verbose:  # -v: what the agents found (their CLIs' paths and versions), and more
        logging.getLogger("agentos").setLevel(logging.DEBUG)
    notifier = None
    if options.notify:  # a bad URL or no apprise: exit 2 before anything
        from agentos.run.notify import check_urls  # here: most runs notify nobody

        notifier = check_urls(options.notify)
    config = workflow.make_config(**params)
    items = check_items(list(workflow.collect_items(config)))
    resume: ResumePlan | None = None
    if options.resume is not None:
        from agentos.run.resume import check_same_run, plan_resume, read_earlier

        check_same_run(options.resume, workflow.resume_identity(config))
        earlier = read_earlier(options.resume)
        if earlier.corrupt_lines:
            lines = ", ".join(map(str, earlier.corrupt_lines[:5]))
            log.warning(
                "%s: skipped %s that %s not a record (line %s: a write cut short)",
                options.resume / "journal.jsonl",
                plural(len(earlier.corrupt_lines), "line"),
                "are" if len(earlier.corrupt_lines) != 1 else "is",
                lines,
            )
        resume = plan_resume(items, earlier)
        items = resume.pending
    skipped = resume.done_count if resume is not None else 0
    keys = KeyPlan.load(workflow, config, options, secret_env)
    credentials = keys.credentials
    reason = workflow.needs_keys(config) if workflow.needs_keys is not None else None
    if reason and not credentials:
        raise ConfigError(f"{reason}: pass --credentials-file PATH or set AGENTOS_CREDENTIALS")
    prices = PriceBook.load(options.prices)
    models: list[ModelRef | None] = (
        workflow.models(config) if workflow.models is not None else [None]
    )
    check_prices(options, prices, models)
    if options.parallel is not None:
        workers = effective_workers(
            options.parallel, keys.item_slots, len(items), len(keys.credentials)
        )
    else:
        workers = 0
    if not items:
        click.echo("Nothing to process" + (f" ({skipped} already done)" if skipped else ""))
        return EXIT_OK
    if options.dry_run:
        click.echo(render_dry_run(items, skipped))
        return EXIT_OK
    run_path = options.resume or options.run_dir or default_run_dir(workflow.name)
    if workflow.outputs is not None:
        check_writable(
            workflow.outputs(config), f"agentos {workflow.name} writes its results there"
        )
    check_writable([run_path], "the run keeps its journal, logs and summary there")
    if options.backend == "dask":
        from agentos.engine.backends.dask import prepare_dask

        # a missing extra, an unreachable --scheduler, a key in a forwarded variable: set-up
        # errors, before anything is created (the connection is kept for the run)
        dask_setup = prepare_dask(options, credentials, warn=log.warning)
        workspace = workflow.workspace(config) if workflow.workspace is not None else None
        if dask_setup.client is not None and workspace is not None:
            from agentos.engine.backends.dask import check_shared_folders

            check_shared_folders(dask_setup.client, [workspace])
    else:
        dask_setup = None
    account = make_account(options, resume)
    known = [ref for ref in models if ref is not None]
    if known:
        prices.preload(known)  # calls will be priced: load the database before workers fork
    return _execute(
        workflow,
        config,
        options,
        items,
        keys,
        workers,
        run_path,
        resume,
        dask_setup,
        prices=prices,
        account=account,
        notifier=notifier,
        invocation=invocation,
    )


def check_prices(options: RunnerOptions, prices: PriceBook, models: list[ModelRef | None]) -> None:
    """A budget in dollars needs a price for every model the run will call: one that cannot
    be priced is a usage error now, not a budget that silently counts nothing. Models only
    the calls will tell (CLI agents) are checked as their calls come, and stop the run then."""
    if options.budget is None and options.item_budget is None:
        return
    option = "--budget" if options.budget is not None else "--item-budget"
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
    budget = RunBudget(options.budget, options.item_budget) if options.budget else None
    account = RunAccount(budget, ItemLimits(options.item_budget, options.item_tokens))
    if resume is not None:
        for item, before in resume.done_before:
            account.add_earlier(item.id, before.usage, finished=True)
        for item_id, usage in resume.usage_before.items():
            account.add_earlier(item_id, usage, finished=False)
    return account


#: what `agentos keys` shows of a key's last run (never the key)
_REMEMBERED = (
    "label",
    "group",
    "group_source",
    "rpm",
    "rpm_source",
    "pace_reason",
    "tpm",
    "rpd",
    "calls",
    "leases",
)


@dataclass(frozen=True)
class KeyPlan:
    """The run's keys and how they are used: per call (HTTP agents ask the governor for each
    call; --parallel is the number of items in flight, whatever the number of keys) or per
    item (a subprocess reads its key once: each attempt leases one, `slots` items per key)."""

    configs: list[KeyConfig]
    credentials: list[Credential]
    mode: str  # "call" | "item"
    max_wait: float

    @classmethod
    def load(
        cls,
        workflow: Workflow,
        config: Any,
        options: RunnerOptions,
        environ: dict[str, str] | None = None,
    ) -> KeyPlan:
        defaults = KeyConfig(
            "",
            options.key_group,
            options.key_rpm,
            options.key_tpm,
            options.key_rpd,
            options.key_slots,
        )
        configs = load_keys(options.credentials_file, environ, warn=log.warning, defaults=defaults)
        mode = workflow.key_mode(config) if workflow.key_mode is not None else "item"
        credentials = make_credentials(c.secret for c in configs)
        return cls(configs, credentials, mode, options.max_key_wait)

    @property
    def item_slots(self) -> int:
        """How many items the keys allow at once (0: no cap, keys are taken per call)."""
        if self.mode == "call" or not self.configs:
            return 0
        return sum(c.slots for c in self.configs)

    def governor(self, base_cooldown: float) -> Governor:
        from agentos.governor import parked as parked_keys
        from agentos.governor.governor import Governor

        return Governor(self.configs, base_cooldown, parked=parked_keys.load())

    def remember(self, governor: KeyService) -> None:
        """What the run learned about its keys (parked ones, groups, limits, calls), for the next
        run and `agentos keys`; never the keys themselves."""
        from agentos.governor import parked as parked_keys

        with contextlib.suppress(Exception):  # a dead key server has nothing more to say
            by_label = {c.label: c.full_fingerprint for c in self.credentials}
            notes = {
                by_label[row["label"]]: {
                    **{k: row.get(k) for k in _REMEMBERED},
                    "rejected": row.get("state") == KeyState.REVOKED,
                }
                for row in governor.snapshot()
                if row["label"] in by_label
            }
            parked_keys.save(governor.parked_keys(), set(by_label.values()), notes=notes)


def _execute(
    workflow: Workflow,
    config: Any,
    options: RunnerOptions,
    items: list[Item],
    key_plan: KeyPlan,
    workers: int,
    run_path: Path,
    resume: ResumePlan | None,
    dask_setup: Any = None,
    *,
    prices: PriceBook | None = None,
    account: RunAccount | None = None,
    notifier: Notifier | None = None,
    invocation: Invocation | None = None,
) -> int:
    started = time.time()
    account = account if account is not None else RunAccount()
    credentials = key_plan.credentials
    run_id = os.urandom(6).hex()
    settings = ExecutionSettings(
        command_name=workflow.name,
        workers=workers or None,
        grace=options.grace,
        timeout=options.timeout,
        retries=options.retries,
        retry_backoff=options.retry_backoff,
        max_rate_limit_waits=options.max_rate_limit_waits,
        rate_limit_pattern=options.rate_limit_pattern,
        rate_limit_cooldown=options.rate_limit_cooldown,
        credential_env=options.credential_env,
        key_mode=key_plan.mode,
        max_key_wait=key_plan.max_wait,
        quiet=options.quiet,
        verbose=options.verbose,
        colour=colour_wanted(options.no_color),
    )
    spec = AttemptSpec(
        run_dir=str(run_path.resolve()),
        execute_item=workflow.execute_item,
        config=config,
        timeout=options.timeout,
        credential_env=options.credential_env,
        rate_limit_pattern=options.rate_limit_pattern,
        parallel=bool(workers),
        drain_flag=str(run_path.resolve() / ".draining") if workers else "",
        run_id=run_id,
        call_keys=key_plan.mode == "call" and bool(key_plan.configs),
        max_key_wait=key_plan.max_wait,
        prices=prices,
        limits=account.limits if account.limits else None,
        memory_limit=options.item_memory,
    )
    # The handlers go in first and stay until the summary is written: a Ctrl+C while the run
    # directory, the key server or the workers are being set up is a stop request like any
    # other, not a KeyboardInterrupt through half-built state, and a late one cannot cut the
    # summary short.
    shutdown = ShutdownState(options.grace)
    batch: Batch | None = None

    def on_signal(signum: int) -> None:
        if batch is not None:
            batch.signal_received(signum)

    with contextlib.ExitStack() as stack:
        stack.enter_context(handle_signals(shutdown, on_signal=on_signal))
        mark_run_began()
        workspace = workflow.workspace(config) if workflow.workspace is not None else None
        if workspace is not None:
            stack.enter_context(WorkspaceLock(workspace, workflow.name, run_path))
        # the default place (.agentos/runs in the working directory) is reached without links
        default_place = options.resume is None and options.run_dir is None
        run_dir = RunDir(run_path, confined=default_place).open()
        stack.callback(run_dir.close)
        # run.json first: a run stopped a moment after it made its directory can be resumed
        _record_run(workflow, config, options, run_path, resume, credentials, invocation)
        run_dir.check_writable()
        terminal = Terminal(colour=settings.colour, quiet=options.quiet)
        journal = Journal(run_path, workflow.name)
        for name in journal.repaired:
            log.warning("%s ended in a partial line (a write cut short); ended it", name)
        listener: OutputListener | None = None
        keys: GovernorHandle | None = None
        capture = None
        fatal: AgentosError | None = None
        keys_report: list[dict[str, Any]] = []
        with contextlib.ExitStack() as resources:  # closed before the summary is printed
            resources.callback(terminal.close)
            resources.callback(journal.close)
            if workers:
                listener = _listener(terminal, run_dir, credentials, options, prefix=True)
                resources.callback(listener.stop)
                if credentials and options.backend == "loky":
                    from agentos.governor import parked as parked_keys
                    from agentos.governor.service import start_key_server

                    with spawn_guard(trackers="stdlib"):
                        key_server, keys = start_key_server(
                            list(key_plan.configs),
                            options.rate_limit_cooldown,
                            parked=parked_keys.load(),
                        )
                    resources.callback(_stop_key_server, key_server)
            else:
                if credentials:
                    keys = key_plan.governor(options.rate_limit_cooldown)
                # sequential output goes through the listener as well, unprefixed: it is how
                # each item's log is written (a run directory looks the same in both modes) and
                # how printed keys are redacted
                listener = _listener(terminal, run_dir, credentials, options, prefix=False).start()
                resources.callback(listener.stop)
                channel = OutputChannel(listener.address, listener.token)
                resources.callback(channel.close)  # before the listener stops: runs first

                def capture(item: Item, attempt: int) -> ItemCapture:
                    return ItemCapture(channel, item.id, attempt)

            batch = Batch(
                settings,
                items,
                journal,
                terminal,
                credentials,
                keys,
                progress=bool(workers),
                shutdown=shutdown,
                attempts_before=resume.attempts_before if resume is not None else None,
                requeues_before=resume.requeues_before if resume is not None else None,
                account=account,
            )
            batch.progress.set_note("spend", account.progress_note())
            resources.callback(batch.progress.close)
            batch.run_state = StateWriter(run_path, workflow.name, started)
            batch.lost_usage = functools.partial(
                lost_attempt_usage,
                run_path,
                prices=prices or PriceBook(),
                redact=batch.redactor.text,
            )
            batch.write_state(event=True)
            try:
                if workers:
                    if options.verbose:
                        terminal.message(
                            f"{plural(len(items), 'item')}, {plural(workers, 'worker')}, "
                            f"run dir {run_path}"
                        )
                    assert listener is not None
                    plan = ExecutorPlan(batch, spec, workers, listener, run_id)
                    if options.backend == "dask":
                        from agentos.engine.backends.dask import DaskRun

                        DaskRun(
                            plan, dask_setup, list(key_plan.configs), options.rate_limit_cooldown
                        ).run()
                    else:
                        from agentos.engine.backends.loky import ParallelRun

                        ParallelRun(plan, keys).run()
                else:
                    from agentos.engine.backends.sequential import run_sequential

                    try:
                        run_sequential(batch, spec, capture)
                    finally:
                        kill_tagged(run_id)  # anything an item left behind
            except AgentosError as exc:  # the batch cannot go on; still journal and summarise
                fatal = exc
            # before the key server goes; frozen, so that the last state.json shows them too
            keys_report = batch.frozen_keys_report = batch.keys_report()
            if keys is not None and batch.keys_lost is None:
                key_plan.remember(keys)
        resume_command = invocation.resume_command(run_path) if invocation is not None else None
        lost = listener.lost if listener is not None else {}
        if lost:  # a run whose output did not all arrive is no success, whatever its items did
            shown = "; ".join(f"{item}: {why}" for item, why in sorted(lost.items())[:5])
            more = f" (and {len(lost) - 5} more)" if len(lost) > 5 else ""
            log.warning("output was lost: %s%s; see logs/ in %s", shown, more, run_path)
        if isinstance(fatal, BudgetReached):  # before _finish: its notification shows them
            fatal.not_started = batch.scheduler.counts()[Status.NOT_RUN]
            fatal.resume_dir = str(run_path)
            fatal.resume_command = resume_command or ""
        code = _finish(
            workflow,
            batch,
            run_path,
            workers,
            started,
            resume,
            options,
            keys_report,
            failed=fatal is not None or bool(lost),
            notifier=notifier,
            fatal=fatal,
            resume_command=resume_command,
        )
    if fatal is not None:
        raise fatal
    return code


def _record_run(
    workflow: Workflow,
    config: Any,
    options: RunnerOptions,
    run_path: Path,
    resume: ResumePlan | None,
    credentials: list[Credential],
    invocation: Invocation | None,
) -> None:
    """run.json: what the run is and the options it goes on with. A resume keeps the first
    pass's record and updates its options (the ones it was allowed to change)."""
    recorded: dict[str, Any] = {}
    if invocation is not None and invocation.params:  # not a call from code, without click
        params = dict(invocation.params)
        if workflow.kept_inputs is not None:  # inputs it cannot read again: their copies
            params.update(workflow.kept_inputs(config, run_path))
        recorded = {"params": params, "cwd": invocation.cwd}
    try:
        if resume is not None and (run_path / MANIFEST).exists():
            if recorded:
                update_manifest(run_path, recorded)
            return
        write_manifest(
            run_path,
            workflow.resume_identity(config),
            run_about(options, Redactor(credentials)),
            recorded,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot write to the run directory: {run_path / MANIFEST}: {exc.strerror}; "
            "fix its permissions or choose another --run-dir"
        ) from None


def _stop_key_server(server: Any) -> None:
    with contextlib.suppress(Exception):
        server.shutdown()


def _listener(
    terminal: Terminal,
    run_dir: RunDir,
    credentials: list[Credential],
    options: RunnerOptions,
    *,
    prefix: bool,
) -> OutputListener:
    # notification URLs carry tokens: replaced like keys, should an item come by one
    redactor = Redactor(credentials, [(url, "notify-url") for url in options.notify])
    listener = OutputListener(
        terminal,
        run_dir.logs,
        prefix=prefix,
        redactor=redactor if redactor else None,
        log_limit=options.item_log_size,
    )
    listener.set_max_secret_length(redactor.max_length)
    return listener  # started by the executor: parallel mode forks its workers first


def _finish(
    workflow: Workflow,
    batch: Batch,
    run_path: Path,
    workers: int,
    started: float,
    resume: ResumePlan | None,
    options: RunnerOptions,
    keys_report: list[dict[str, Any]],
    *,
    failed: bool,
    notifier: Notifier | None = None,
    fatal: AgentosError | None = None,
    resume_command: str | None = None,
) -> int:
    code = batch.exit_code()
    if failed and code == EXIT_OK:
        code = EXIT_ITEMS_FAILED
    shutdown = batch.shutdown
    data = summary_data(
        batch.scheduler.states,
        command=workflow.name,
        run_dir=run_path,
        mode="parallel" if workers else "sequential",
        workers=workers or 1,
        started=started,
        ended=time.time(),
        exit_code=code,
        interrupted_by=shutdown.signal_name() if shutdown.first_signal else None,
        skipped=resume.done_count if resume is not None else 0,
        keys=keys_report,
        earlier=_earlier_rows(resume),
        usage=batch.account.report(keys_report),
        item_usage=batch.account.item_json,
        resume_command=resume_command,
    )
    write_summary(run_path, data)
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
    if not options.quiet:
        # bytes of an item that were not UTF-8 show as the terminal shows them in its output
        shown = rendered.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        print(shown, file=sys.stderr, flush=True)
    if notifier is not None:
        # after summary.json, so a receiver that looks at the run directory finds it; still
        # under the signal handlers, so a Ctrl+C now cannot cut the sending into a traceback
        from agentos.run.notify import message as notify_message

        title, body = notify_message(data, rendered.splitlines()[-1], fatal)
        notifier.send(title, body, warn=log.warning)
    return code


def _earlier_rows(resume: ResumePlan | None) -> list[dict[str, Any]] | None:
    if resume is None:
        return None
    from agentos.run.resume import summary_rows_from_earlier  # only resumed runs load it

    return summary_rows_from_earlier(resume.done_before)


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


def configure_logging(verbose: bool = False) -> None:
    """`agentos: warning: ...` lines on stderr for the parent's own notices (looked up at each
    record, so click's test runner, which swaps sys.stderr, sees them)."""
    logger = logging.getLogger("agentos")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.propagate = False


class _EchoHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        # a notice may name a file of a cloned repository, or quote an item
        click.echo(f"agentos: {level}{escape_text(record.getMessage())}", err=True)
