"""The options every run shares, in groups, each written once.

A group is a frozen dataclass whose fields are the options: the field's name is the parameter's,
its default the option's, and `option(...)` records everything else the command line needs (its
flags, help, type, and what a `--resume` may do with it). `agentos.run.options` turns the fields
into click options; the engine and the workers read the groups as they are: no option is copied
from one record into another on its way.

    ExecutionOptions   how the run goes: how many items at once, where, how it stops
    AttemptOptions     one attempt of one item: its time, its retries, its limits
    KeyOptions         the keys, their groups and limits, and what a refusal looks like
    BudgetOptions      what the run and each item may spend
    OutputOptions      what the run says, and whom it tells at the end

Imports nothing of click: workers unpickle these groups.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from agentos.engine.fields import Choices, Decimal, PathOf, Size, Whole, option, option_fields
from agentos.errors import UsageError
from agentos.governor.credentials import BASE_COOLDOWN
from agentos.item.keys import DEFAULT_CREDENTIAL_ENV
from agentos.item.process import DEFAULT_RATE_LIMIT_PATTERN
from agentos.item.workflow import OnResume

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---- the groups


#: the most worker processes a run starts, whatever --parallel asks (with a warning)
MAX_WORKERS = 10


@dataclass(frozen=True, eq=False)
class ExecutionOptions:
    """How the run goes: how many items at once, where, how it stops."""

    parallel: int | None = option(
        "--parallel", "-j",
        kind=Whole(1),
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="Run N items at once in worker processes (at most 10). Without it items run "
        "one after another in this process, unprefixed, like a plain tool.",
    )  # fmt: skip
    dry_run: bool = option(
        "--dry-run",
        flag=True,
        default=False,
        on_resume=OnResume.FRESH,
        help="List the pending items and exit: nothing is created, started or called.",
    )
    run_dir: Path | None = option(
        "--run-dir",
        kind=PathOf(),
        metavar="PATH",
        on_resume=OnResume.FRESH,
        help="Where the journal, joblog, logs and summary go "
        "[default: .agentos/runs/<UTC time>-<command>].",
    )
    resume: Path | None = option(
        "--resume",
        kind=PathOf(file=False),
        metavar="RUN_DIR",
        on_resume=OnResume.FRESH,
        help="Continue a previous run in its run directory: skip the items its journal "
        "records as done (matched by what they are, not by position).",
    )
    grace: float = option(
        "--grace",
        kind=Decimal(0),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        on_resume=OnResume.CHANGE,
        help="After the first Ctrl+C/SIGTERM, how long running items may finish before "
        "they are killed.",
    )
    backend: str = option(
        "--backend",
        kind=Choices(("loky", "dask")),
        default="loky",
        show_default=True,
        on_resume=OnResume.CHANGE,
        help="Where items run: loky worker processes on this machine, or a Dask cluster "
        "(needs 'agentos-batch[dask]').",
    )
    scheduler: str | None = option(
        "--scheduler",
        metavar="ADDRESS",
        on_resume=OnResume.CHANGE,
        help="With --backend dask: an existing scheduler (tcp://host:8786). Without it, a "
        "local cluster of --parallel single-threaded workers.",
    )
    forward_env: tuple[str, ...] = option(
        "--env",
        default=(),
        multiple=True,
        metavar="NAME",
        on_resume=OnResume.CHANGE,
        help="With --backend dask: also give items on the workers this variable of this "
        "environment (repeatable; NAME* matches a prefix, e.g. 'ANTHROPIC_*'). AGENTOS_* "
        "settings always go; keys never do. With loky, workers inherit the whole environment "
        "and this changes nothing.",
    )

    def checked(self) -> ExecutionOptions:
        if self.resume is not None and self.run_dir is not None:
            raise UsageError(
                "--resume RUN_DIR continues in that run directory; drop --run-dir "
                "(or drop --resume to start a new run there)"
            )
        for name in self.forward_env:
            if not _ENV_NAME.fullmatch(name.removesuffix("*")):
                raise UsageError(
                    f"--env {name!r}: give a variable name, or a prefix ending in * "
                    "(ANTHROPIC_*); the whole environment is never forwarded"
                )
        if self.scheduler and self.backend != "dask":
            raise UsageError("--scheduler only applies to --backend dask")
        if self.backend == "dask" and self.parallel is None and not self.dry_run:
            raise UsageError(
                "--backend dask runs items on a cluster: give --parallel N as well "
                "(how many items run at once)"
            )
        return self


@dataclass(frozen=True, eq=False)
class AttemptOptions:
    """One attempt of one item: its time, its retries, its limits."""

    timeout: float | None = option(
        "--timeout",
        kind=Decimal(0),
        default=1800.0,
        show_default=True,
        metavar="SECONDS",
        on_resume=OnResume.CHANGE,
        help="Per-attempt time limit; 0 disables it.",
    )
    retries: int = option(
        "--retries",
        kind=Whole(0),
        default=1,
        show_default=True,
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="Extra attempts for a failed or timed-out item.",
    )
    retry_backoff: float = option(
        "--retry-backoff",
        kind=Decimal(0),
        default=2.0,
        show_default=True,
        metavar="SECONDS",
        on_resume=OnResume.CHANGE,
        help="First retry delay; doubles per failure, capped at 60 s.",
    )
    item_memory: int | None = option(
        "--item-memory",
        kind=Size(),
        metavar="SIZE",
        help="Each process an item starts may use at most this much data memory (500M, 2G; "
        "setrlimit RLIMIT_DATA, per process): a runaway item fails instead of making the "
        "machine swap [default: no limit].",
    )
    item_log_size: int | None = option(
        "--item-log-size",
        kind=Size(),
        metavar="SIZE",
        help="Keep at most this much of each item's output in its log (logs/<id>.log); the "
        "rest still reaches the terminal [default: all of it].",
    )

    def checked(self) -> AttemptOptions:
        # 0 disables the time limit
        return self if self.timeout else dataclasses.replace(self, timeout=None)


@dataclass(frozen=True, eq=False)
class KeyOptions:
    """The keys, their groups and limits, and what a refusal looks like."""

    credentials_file: Path | None = option(
        "--credentials-file",
        kind=PathOf(),
        metavar="PATH",
        on_resume=OnResume.CHANGE,
        help="API keys, one per line ('#' comments). Default: the AGENTOS_CREDENTIALS "
        "environment variable (comma-separated), else no keys.",
    )
    credential_env: str = option(
        "--credential-env",
        default=DEFAULT_CREDENTIAL_ENV,
        show_default=True,
        metavar="NAME",
        help="Environment variable that carries the leased key into item subprocesses.",
    )
    key_group: str | None = option(
        "--key-group",
        metavar="NAME",
        on_resume=OnResume.CHANGE,
        help="Keys without group= in the credentials file share this provider group (one "
        "organisation's budget) [default: each key its own group].",
    )
    key_rpm: float | None = option(
        "--key-rpm",
        kind=Decimal(0, open=True),
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="Requests per minute of each key group that states none [default: learned from "
        "the provider's answers].",
    )
    key_tpm: float | None = option(
        "--key-tpm",
        kind=Decimal(0, open=True),
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="Tokens per minute of each key group that states none [default: learned].",
    )
    key_rpd: float | None = option(
        "--key-rpd",
        kind=Decimal(0, open=True),
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="Requests per day of each key group that states none [default: no daily limit].",
    )
    key_slots: int = option(
        "--key-slots",
        kind=Whole(1),
        default=1,
        show_default=True,
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="How many items may use one key at once (CLI agents and agentos run, which hold "
        "a key for the whole attempt).",
    )
    max_key_wait: float = option(
        "--max-key-wait",
        kind=Decimal(0),
        default=900.0,
        show_default=True,
        metavar="SECONDS",
        on_resume=OnResume.CHANGE,
        help="When every key is out of quota for longer than this, stop (exit 1) instead of "
        "waiting; done items are kept.",
    )
    max_rate_limit_waits: int = option(
        "--max-rate-limit-waits",
        kind=Whole(0),
        default=20,
        show_default=True,
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="How often one item may be re-queued because of rate limits.",
    )
    rate_limit_pattern: str = option(
        "--rate-limit-pattern",
        default=DEFAULT_RATE_LIMIT_PATTERN,
        show_default=True,
        metavar="REGEX",
        on_resume=OnResume.CHANGE,
        help="A failing command whose stderr matches this (case-insensitive) was rate "
        "limited. Exit status 75 always means rate limited.",
    )
    rate_limit_cooldown: float = option(
        "--rate-limit-cooldown",
        kind=Decimal(0, open=True),
        default=BASE_COOLDOWN,
        show_default=True,
        metavar="SECONDS",
        on_resume=OnResume.CHANGE,
        help="Cooldown of a rate-limited key when the provider gives no Retry-After; "
        "doubles per repeat, capped at 15 min.",
    )

    def checked(self) -> KeyOptions:
        try:
            re.compile(self.rate_limit_pattern)
        except re.error as exc:
            raise UsageError(
                f"--rate-limit-pattern is not a valid regular expression: {exc}"
            ) from None
        if not _ENV_NAME.fullmatch(self.credential_env):
            raise UsageError(
                f"--credential-env {self.credential_env!r} is not a valid environment variable name"
            )
        return self


@dataclass(frozen=True, eq=False)
class BudgetOptions:
    """What the run and each item may spend."""

    budget: float | None = option(
        "--budget",
        kind=Decimal(0, open=True),
        metavar="USD",
        on_resume=OnResume.CHANGE,
        help="Spend at most this on the run: an item starts only if its estimated cost still "
        "fits; then the run drains and stops (exit 1). With --resume, the run's earlier spend "
        "counts.",
    )
    item_budget: float | None = option(
        "--item-budget",
        kind=Decimal(0, open=True),
        metavar="USD",
        on_resume=OnResume.CHANGE,
        help="Spend at most this per item: an item over it fails at its next model call and "
        "is not retried.",
    )
    item_tokens: int | None = option(
        "--item-tokens",
        kind=Whole(1),
        metavar="N",
        on_resume=OnResume.CHANGE,
        help="At most N tokens (input + output) per item, as --item-budget.",
    )
    prices: Path | None = option(
        "--prices",
        kind=PathOf(folder=False),
        metavar="FILE",
        on_resume=OnResume.CHANGE,
        help="Model prices (TOML, USD per million tokens) that override or add to the "
        "genai-prices database.",
    )

    def checked(self) -> BudgetOptions:
        return self

    @property
    def limited(self) -> bool:
        """A budget in dollars is set, for the run or for each item."""
        return self.budget is not None or self.item_budget is not None


@dataclass(frozen=True, eq=False)
class OutputOptions:
    """What the run says, and whom it tells at the end."""

    notify: tuple[str, ...] = option(
        "--notify",
        default=(),
        multiple=True,
        metavar="URL",
        envvar="AGENTOS_NOTIFY",
        on_resume=OnResume.FRESH,  # the URLs carry tokens: never written down
        help="When the run ends, however it ends, send its summary to this apprise URL "
        "(ntfy://, slack://, mailto://, json://...; repeatable; needs 'agentos-batch[notify]'). "
        "URLs carry tokens: agentos never prints them; AGENTOS_NOTIFY (URLs separated by "
        "spaces) keeps them off the command line, where other users' `ps` sees them.",
    )
    no_color: bool = option(
        "--no-color",
        flag=True,
        default=False,
        on_resume=OnResume.FRESH,
        help="No colours (also: NO_COLOR=1).",
    )
    quiet: int = option(
        "-q", "--quiet",
        counting=True,
        default=0,
        on_resume=OnResume.FRESH,
        help="Only errors and the items' own output.",
    )  # fmt: skip
    verbose: int = option(
        "-v", "--verbose",
        counting=True,
        default=0,
        on_resume=OnResume.FRESH,
        help="Say when each item starts and ends.",
    )  # fmt: skip

    def checked(self) -> OutputOptions:
        return self

    @property
    def says_less(self) -> bool:
        """-q outweighs -v: only errors and the items' own output."""
        return self.verbose - self.quiet < 0

    @property
    def says_more(self) -> bool:
        """-v outweighs -q: each item's start and end, what the agents found."""
        return self.verbose - self.quiet > 0


_Group = TypeVar("_Group")


def _group(group: type[_Group], params: dict[str, Any]) -> _Group:
    """The `group` of the values `params` holds for it (taken out of `params`)."""
    names = [f.name for f, _ in option_fields(group) if f.name in params]
    values = {name: params.pop(name) for name in names}
    return group(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


GROUPS = (ExecutionOptions, AttemptOptions, KeyOptions, BudgetOptions, OutputOptions)


class RunnerOptions(NamedTuple):
    """Every shared option of a run, by group."""

    # the groups are frozen: one default instance of each serves every record
    execution: ExecutionOptions = ExecutionOptions()
    attempts: AttemptOptions = AttemptOptions()
    keys: KeyOptions = KeyOptions()
    budget: BudgetOptions = BudgetOptions()
    output: OutputOptions = OutputOptions()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RunnerOptions:
        """The groups made of `params` (a command's values by parameter name); their values are
        taken out of `params`, which keeps the workflow's own. A usage error names a bad one."""
        return cls(
            _group(ExecutionOptions, params).checked(),
            _group(AttemptOptions, params).checked(),
            _group(KeyOptions, params).checked(),
            _group(BudgetOptions, params).checked(),
            _group(OutputOptions, params).checked(),
        )

    @staticmethod
    def policies() -> dict[str, OnResume]:
        """What `--resume` does with each shared option, by parameter name."""
        return {f.name: spec.on_resume for group in GROUPS for f, spec in option_fields(group)}

    def record(self) -> dict[str, Any]:
        """The options as run.json describes the run to people: every value by parameter name,
        except the notification URLs (they carry tokens: only how many)."""
        found: dict[str, Any] = {}
        for group in (self.execution, self.attempts, self.keys, self.budget, self.output):
            for f in dataclasses.fields(group):
                value = getattr(group, f.name)
                if f.name == "notify":
                    value = len(value)
                elif isinstance(value, Path):
                    value = str(value)
                elif isinstance(value, tuple):
                    value = list(value)
                found[f.name] = value
        return found
