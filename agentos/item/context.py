"""`ItemContext`: what `execute_item(item, ctx)` gets — the item, its attempt, the run directory and
the workflow's config, and the means to do the work:

    ctx.run / run_checked      a command in its own process group, the key in its environment
                               (process.py: Command, run_command, CommandResult)
    ctx.call_key / end_call    a key per model call from the governor, paced (keys.py)
    ctx.redact / keep          every key the attempt saw, replaced by its label (keys.py)
    ctx.record_usage,          the attempt's model calls, their cost, the item's caps
      model_call, check_budget   (agentos.usage.meter)
    ctx.log, state_dir, time_left, detail, outputs

Each of those is owned by its own object (`ctx.keys`, `ctx.meter`, the run's `AttemptSetup`);
the context's methods are the one face items use.

Runs inside workers: imports nothing of the CLI.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.beneath import Beneath, write_beneath
from agentos.item.keys import AttemptKeys, CallGrant
from agentos.item.process import (
    Command,
    CommandOptions,
    CommandPolicy,
    CommandResult,
    run_command,
)
from agentos.item.process_tree import RUN_TAG_ENV
from agentos.item.unit import Item
from agentos.usage.meter import CallFigures, Spending, UsageMeter
from agentos.usage.record import Tally, UsageLog
from agentos.usage.report import USAGE_FILE_ENV

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from agentos.item.keys import KeyOutcome
    from agentos.item.refusal_kinds import RefusalKind


@dataclass(frozen=True, eq=False)
class AttemptSetup:
    """What the run gives an attempt besides its item and keys: how its commands run, what it
    may spend, and when it times out."""

    commands: CommandPolicy = field(default_factory=CommandPolicy)
    spending: Spending = field(default_factory=Spending)
    deadline: float | None = None  # time.monotonic() when the attempt times out
    run_tag: str = ""  # exported to subprocesses so that cleanup can find them (process_tree)
    parallel: bool = True


@dataclass(eq=False)
class ItemContext:
    """Per-attempt context. `keys.secret` is the leased key (None without keys); it is also in
    the environment of every `ctx.run` subprocess under `keys.env_name`."""

    item: Item
    attempt: int
    run_dir: Path
    config: Any
    keys: AttemptKeys = field(default_factory=AttemptKeys)
    setup: AttemptSetup = field(default_factory=AttemptSetup)
    #: how the item ended, in a word or two, when "done" says too little ("Draft" rather than
    #: "Approved"): shown beside its status in the summary, recorded in the journal
    detail: str = field(default="", init=False)
    #: what the item produced, as short named strings ({"branch": ..., "commit": ...}): kept
    #: in the journal and summary.json whatever the attempt's end; "summary", when set, is the
    #: one line the summary table shows
    outputs: dict[str, str] = field(default_factory=dict, init=False)
    last_command: CommandResult | None = field(default=None, init=False)
    #: the argv of the latest `run`, set before it starts: an attempt that times out or is
    #: interrupted mid-command still records what it was running (the joblog's Command)
    last_argv: list[str] | None = field(default=None, init=False)
    meter: UsageMeter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.meter = UsageMeter(
            self.run_dir,
            self.item.id,
            self.attempt,
            self.setup.spending,
            key_label=self.keys.label,
            redact=self.keys.redact,
        )

    @property
    def item_id(self) -> str:
        return self.item.id

    @property
    def credential(self) -> str | None:
        """The leased key, None without one."""
        return self.keys.secret

    @property
    def credential_label(self) -> str | None:
        return self.keys.label

    @property
    def state_dir(self) -> Path:
        """`<run-dir>/items/<id>/`: the item's private working state (created on first use)."""
        with Beneath(self.run_dir, create=True) as place:  # no link below it followed
            return place.makedirs(f"items/{self.item.id}")

    def keep(self, path: Path, text: str) -> None:
        """A file of the item's audit trail (a prompt, an answer, a test run) at `path` under
        the run directory: redacted like everything written from an agent's answer, and written
        beneath the run directory without following a link."""
        rel = path.relative_to(self.run_dir)
        write_beneath(self.run_dir, rel, self.redact(text), durable=False)

    def env(
        self,
        extra: dict[str, str] | None = None,
        key_env: str | None = None,
        *,
        with_key: bool = True,
    ) -> dict[str, str]:
        """The environment of the item's commands. `key_env`: the variable the leased key goes
        in instead of `keys.env_name` (a CLI agent's own: ANTHROPIC_API_KEY, GEMINI_API_KEY);
        the key is then in that variable only. `with_key=False`: no key at all (a command that
        calls no model, such as tests of code an agent wrote)."""
        env = dict(os.environ)
        self.keys.place(env, key_env, with_key=with_key)
        if self.setup.run_tag:
            env[RUN_TAG_ENV] = self.setup.run_tag
        env["AGENTOS_ITEM_ID"] = self.item.id
        env["AGENTOS_ATTEMPT"] = str(self.attempt)
        env[USAGE_FILE_ENV] = self.meter.usage_file
        if extra:
            env.update(extra)
        return env

    def log(self, message: str) -> None:
        """A progress line in the item's output (stderr, so it never mixes with a response)."""
        print(message, file=sys.stderr, flush=True)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def time_left(self, default: float = 600.0) -> float:
        """Seconds until this attempt's --timeout (for timeouts of the item's own calls)."""
        if self.setup.deadline is None:
            return default
        return max(0.05, self.setup.deadline - time.monotonic())

    # -- keys per call (HTTP agents)
    @property
    def keys_per_call(self) -> bool:
        return self.keys.per_call

    @property
    def waits(self) -> dict[str, float]:
        """Seconds this attempt's calls waited for a key, by reason (journaled)."""
        return self.keys.waits

    def call_key(self, tokens: float | None = None) -> CallGrant:
        """A key for one model call estimated at `tokens`, after waiting as long as the
        governor says (the wait and its reason go to the journal). An item holding a leased key
        is paced on that key. Raises RateLimited (kind "quota") when no key will serve within
        --max-key-wait: the item goes back to the queue and the run stops."""
        return self.keys.call_key(self.item.id, tokens)

    def end_call(
        self,
        grant: CallGrant,
        outcome: KeyOutcome | RefusalKind,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Tell the governor how the call went (see Governor.end_call). What that changed (a
        key parked or retired) the parent says, once, for the whole run."""
        self.keys.end_call(grant, outcome, info)

    def redact(self, text: str) -> str:
        """`text` with every key this attempt has seen (its lease, its per-call keys) replaced
        by `[label]`. Output is redacted as it streams; files an item writes from an agent's
        answer (an agent may echo its environment) must go through this, or the key ends up
        in a repository and gets pushed."""
        return self.keys.redact(text)

    # -- usage and budgets
    @property
    def usage(self) -> UsageLog:
        """This attempt's model calls (`record_usage`), carried back in its result."""
        return self.meter.usage

    def record_usage(self, model: str | None, **figures: Unpack[CallFigures]) -> float | None:
        """Record one model call: its model (as the provider answered it), its `input_tokens`
        (`cached_tokens` of them read from a prompt cache), its `output_tokens`, and its
        `cost_usd` when the provider states it. Tokens None: the provider did not say (the
        call is counted, its tokens and cost unknown). `provider` (an API URL or a name) helps
        find the price; `key_label` is the key the call used (default: the attempt's lease).
        Returns the call's cost in USD, None when it is unknown. Call `check_budget` before
        the next call."""
        return self.meter.record(model, **figures)

    @contextlib.contextmanager
    def model_call(self, model: str, key_label: str | None = None) -> Iterator[None]:
        """Around one model call made in this process (an HTTP agent's): the call is written
        down before it is sent and as it is answered (`record_usage`), so that what it spent
        still counts if the worker is killed before the attempt can report it (see
        agentos.usage.report.lost_attempt_usage)."""
        with self.meter.model_call(model, key_label):
            yield

    def close_calls(self) -> None:
        self.meter.close_calls()

    def spent(self) -> Tally:
        """The item's usage so far: its earlier attempts' and this one's."""
        return self.meter.spent()

    def check_budget(self) -> None:
        """Before a model call: raise OverBudget (a failure that is not retried) when the
        item has passed --item-budget or --item-tokens."""
        self.meter.check_budget()

    @property
    def usage_file(self) -> str:
        """This attempt's usage file (`$AGENTOS_USAGE_FILE` of its commands): one JSON line per
        model call, appended by a CLI agent or its wrapper (agentos.usage.report)."""
        return self.meter.usage_file

    def scrub_usage_file(self) -> None:
        """At the attempt's end: no key stays in its usage file (see UsageFile.scrub)."""
        self.meter.scrub_usage_file()

    def collect_usage_file(self) -> None:
        """Record the calls appended to the usage file since the last look; a malformed line is
        skipped and said in the item's output."""
        self.meter.collect_usage_file()

    # -- subprocesses
    def run(self, argv: list[str], **options: Unpack[CommandOptions]) -> CommandResult:
        """Run `argv` in its own session (agentos.item.process; `options`: see `Command`). Never
        raises for a non-zero exit (see `run_checked`); raises OSError when the program cannot
        start. The attempt's own --timeout applies as well as a command's `timeout`."""
        command = Command(list(argv), **options)
        # a command is a call (or many) to a model: an item over its caps makes no more
        self.check_budget()
        self.last_argv = list(argv)
        env = self.env(command.env, command.key_env, with_key=command.with_key)
        try:
            result = run_command(command, env, self.setup.commands)
        finally:
            # what it reported is spent, whether it succeeded or not
            with contextlib.suppress(Exception):
                self.meter.collect_usage_file()
        self.last_command = result
        return result

    def run_checked(self, argv: list[str], **options: Unpack[CommandOptions]) -> CommandResult:
        """`run`, then: rate-limit signs → RateLimited; other non-zero exit → ItemError."""
        result = self.run(argv, **options)
        result.raise_for_status()
        return result

    @staticmethod
    def describe_argv(argv: list[str]) -> str:
        return shlex.join(argv)
