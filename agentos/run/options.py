"""The shared command-line options, defined once with click and reused by every command.

`runner_options` adds them to a click command; `RunnerOptions.from_params` turns the parsed values
into one checked record. A workflow's own options (`Workflow.options`, plain data) become click
options through `workflow_params`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from agentos.errors import UsageError
from agentos.governor.credentials import BASE_COOLDOWN
from agentos.item.process import DEFAULT_RATE_LIMIT_PATTERN
from agentos.item.workflow import OnResume, Option

F = TypeVar("F", bound=Callable[..., Any])

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RunnerOptions:
    parallel: int | None
    dry_run: bool
    run_dir: Path | None
    resume: Path | None
    grace: float
    no_color: bool
    quiet: bool
    verbose: bool
    credentials_file: Path | None
    credential_env: str
    timeout: float | None
    retries: int
    retry_backoff: float
    max_rate_limit_waits: int
    rate_limit_pattern: str
    rate_limit_cooldown: float
    backend: str = "loky"
    scheduler: str | None = None
    key_group: str | None = None
    key_rpm: float | None = None
    key_tpm: float | None = None
    key_rpd: float | None = None
    key_slots: int = 1
    max_key_wait: float = 900.0
    forward_env: tuple[str, ...] = ()  # --env: names (or PREFIX*) forwarded to Dask workers
    budget: float | None = None  # --budget: USD for the whole run
    item_budget: float | None = None  # --item-budget: USD per item
    item_tokens: int | None = None  # --item-tokens: tokens per item
    prices: Path | None = None  # --prices: the user's price file
    notify: tuple[str, ...] = ()  # --notify: apprise URLs (they carry tokens: never print them)
    item_memory: int | None = None  # --item-memory: bytes of data each item process may use
    item_log_size: int | None = None  # --item-log-size: bytes of each item's log

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RunnerOptions:
        pattern = params.pop("rate_limit_pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(
                f"--rate-limit-pattern is not a valid regular expression: {exc}"
            ) from None
        env_name = params.pop("credential_env")
        if not _ENV_NAME.fullmatch(env_name):
            raise UsageError(
                f"--credential-env {env_name!r} is not a valid environment variable name"
            )
        verbosity = params.pop("verbose") - params.pop("quiet")
        timeout = params.pop("timeout")
        if params.get("resume") is not None and params.get("run_dir") is not None:
            raise UsageError(
                "--resume RUN_DIR continues in that run directory; drop --run-dir "
                "(or drop --resume to start a new run there)"
            )
        backend, scheduler = params.pop("backend"), params.pop("scheduler")
        forward_env = tuple(params.pop("forward_env"))
        for name in forward_env:
            if not _ENV_NAME.fullmatch(name.removesuffix("*")):
                raise UsageError(
                    f"--env {name!r}: give a variable name, or a prefix ending in * "
                    "(ANTHROPIC_*); the whole environment is never forwarded"
                )
        if scheduler and backend != "dask":
            raise UsageError("--scheduler only applies to --backend dask")
        if backend == "dask" and params.get("parallel") is None and not params.get("dry_run"):
            raise UsageError(
                "--backend dask runs items on a cluster: give --parallel N as well "
                "(how many items run at once)"
            )
        return cls(
            parallel=params.pop("parallel"),
            dry_run=params.pop("dry_run"),
            run_dir=params.pop("run_dir"),
            resume=params.pop("resume"),
            grace=params.pop("grace"),
            no_color=params.pop("no_color"),
            quiet=verbosity < 0,
            verbose=verbosity > 0,
            credentials_file=params.pop("credentials_file"),
            credential_env=env_name,
            timeout=timeout if timeout else None,
            retries=params.pop("retries"),
            retry_backoff=params.pop("retry_backoff"),
            max_rate_limit_waits=params.pop("max_rate_limit_waits"),
            rate_limit_pattern=pattern,
            rate_limit_cooldown=params.pop("rate_limit_cooldown"),
            backend=backend,
            scheduler=scheduler,
            key_group=params.pop("key_group"),
            key_rpm=params.pop("key_rpm"),
            key_tpm=params.pop("key_tpm"),
            key_rpd=params.pop("key_rpd"),
            key_slots=params.pop("key_slots"),
            max_key_wait=params.pop("max_key_wait"),
            forward_env=forward_env,
            budget=params.pop("budget"),
            item_budget=params.pop("item_budget"),
            item_tokens=params.pop("item_tokens"),
            prices=params.pop("prices"),
            notify=tuple(params.pop("notify", ())),
            item_memory=params.pop("item_memory", None),
            item_log_size=params.pop("item_log_size", None),
        )


class _SafePath(click.Path):
    """click.Path that refuses a NUL byte with a usage error (the OS would raise ValueError)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\0" in value:
            self.fail("the path contains a NUL byte", param, ctx)
        return super().convert(value, param, ctx)


_PATH = _SafePath(path_type=Path)


class _Bounded:
    """A number option whose error says what it expects: `expected a whole number (at least
    1), got 'abc'` rather than click's `'abc' is not a valid integer range`."""

    noun = "a number"
    min: Any
    min_open: bool

    def bound(self) -> str:
        if self.min is None:
            return ""
        return f"more than {self.min:g}" if self.min_open else f"at least {self.min:g}"

    def expected(self) -> str:
        bound = self.bound()
        return f"{self.noun} ({bound})" if bound else self.noun

    def _describe_range(self) -> str:  # click's range in --help: [default: 60.0; at least 0]
        return self.bound()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = super().convert(value, param, ctx)  # type: ignore[misc]
        except click.BadParameter:
            number = None
        if number is None or number != number:  # not a number at all, or out of range; NaN
            got = value if _numeric(value) else repr(value)
            self.fail(f"expected {self.expected()}, got {got}", param, ctx)  # type: ignore[attr-defined]
        return number


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class WholeNumber(_Bounded, click.IntRange):
    noun = "a whole number"


class Number(_Bounded, click.FloatRange):
    noun = "a number"


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class _Size(click.ParamType):
    """A size in bytes: 1048576, 512K, 200M, 2G (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(value), re.IGNORECASE)
        if match is None or float(match.group(1)) <= 0:
            self.fail(f"{value!r} is not a size; give it as 500M, 2G or a number of bytes")
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


_SIZE = _Size()

_SHARED: list[Callable[[F], F]] = [
    click.option(
        "--parallel",
        "-j",
        type=WholeNumber(min=1),
        default=None,
        metavar="N",
        help="Run N items at once in worker processes (at most 10). Without it items run "
        "one after another in this process, unprefixed, like a plain tool.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="List the pending items and exit: nothing is created, started or called.",
    ),
    click.option(
        "--run-dir",
        type=_PATH,
        default=None,
        metavar="PATH",
        help="Where the journal, joblog, logs and summary go "
        "[default: .agentos/runs/<UTC time>-<command>].",
    ),
    click.option(
        "--resume",
        type=_SafePath(path_type=Path, file_okay=False),
        default=None,
        metavar="RUN_DIR",
        help="Continue a previous run in its run directory: skip the items its journal "
        "records as done (matched by what they are, not by position).",
    ),
    click.option(
        "--grace",
        type=Number(min=0),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help="After the first Ctrl+C/SIGTERM, how long running items may finish before "
        "they are killed.",
    ),
    click.option(
        "--timeout",
        type=Number(min=0),
        default=1800.0,
        show_default=True,
        metavar="SECONDS",
        help="Per-attempt time limit; 0 disables it.",
    ),
    click.option(
        "--retries",
        type=WholeNumber(min=0),
        default=1,
        show_default=True,
        metavar="N",
        help="Extra attempts for a failed or timed-out item.",
    ),
    click.option(
        "--retry-backoff",
        type=Number(min=0),
        default=2.0,
        show_default=True,
        metavar="SECONDS",
        help="First retry delay; doubles per failure, capped at 60 s.",
    ),
    click.option(
        "--credentials-file",
        type=_PATH,
        default=None,
        metavar="PATH",
        help="API keys, one per line ('#' comments). Default: the AGENTOS_CREDENTIALS "
        "environment variable (comma-separated), else no keys.",
    ),
    click.option(
        "--credential-env",
        default="AGENTOS_API_KEY",
        show_default=True,
        metavar="NAME",
        help="Environment variable that carries the leased key into item subprocesses.",
    ),
    click.option(
        "--max-rate-limit-waits",
        type=WholeNumber(min=0),
        default=20,
        show_default=True,
        metavar="N",
        help="How often one item may be re-queued because of rate limits.",
    ),
    click.option(
        "--rate-limit-pattern",
        default=DEFAULT_RATE_LIMIT_PATTERN,
        show_default=True,
        metavar="REGEX",
        help="A failing command whose stderr matches this (case-insensitive) was rate "
        "limited. Exit status 75 always means rate limited.",
    ),
    click.option(
        "--rate-limit-cooldown",
        type=Number(min=0, min_open=True),
        default=BASE_COOLDOWN,
        show_default=True,
        metavar="SECONDS",
        help="Cooldown of a rate-limited key when the provider gives no Retry-After; "
        "doubles per repeat, capped at 15 min.",
    ),
    click.option(
        "--backend",
        type=click.Choice(["loky", "dask"]),
        default="loky",
        show_default=True,
        help="Where items run: loky worker processes on this machine, or a Dask cluster "
        "(needs 'agentos-batch[dask]').",
    ),
    click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="With --backend dask: an existing scheduler (tcp://host:8786). Without it, a "
        "local cluster of --parallel single-threaded workers.",
    ),
    click.option(
        "--env",
        "forward_env",
        multiple=True,
        metavar="NAME",
        help="With --backend dask: also give items on the workers this variable of this "
        "environment (repeatable; NAME* matches a prefix, e.g. 'ANTHROPIC_*'). AGENTOS_* "
        "settings always go; keys never do. With loky, workers inherit the whole environment "
        "and this changes nothing.",
    ),
    click.option(
        "--key-group",
        default=None,
        metavar="NAME",
        help="Keys without group= in the credentials file share this provider group (one "
        "organisation's budget) [default: each key its own group].",
    ),
    click.option(
        "--key-rpm",
        type=Number(min=0, min_open=True),
        default=None,
        metavar="N",
        help="Requests per minute of each key group that states none [default: learned from "
        "the provider's answers].",
    ),
    click.option(
        "--key-tpm",
        type=Number(min=0, min_open=True),
        default=None,
        metavar="N",
        help="Tokens per minute of each key group that states none [default: learned].",
    ),
    click.option(
        "--key-rpd",
        type=Number(min=0, min_open=True),
        default=None,
        metavar="N",
        help="Requests per day of each key group that states none [default: no daily limit].",
    ),
    click.option(
        "--key-slots",
        type=WholeNumber(min=1),
        default=1,
        show_default=True,
        metavar="N",
        help="How many items may use one key at once (CLI agents and agentos run, which hold "
        "a key for the whole attempt).",
    ),
    click.option(
        "--max-key-wait",
        type=Number(min=0),
        default=900.0,
        show_default=True,
        metavar="SECONDS",
        help="When every key is out of quota for longer than this, stop (exit 1) instead of "
        "waiting; done items are kept.",
    ),
    click.option(
        "--budget",
        type=Number(min=0, min_open=True),
        default=None,
        metavar="USD",
        help="Spend at most this on the run: an item starts only if its estimated cost still "
        "fits; then the run drains and stops (exit 1). With --resume, the run's earlier spend "
        "counts.",
    ),
    click.option(
        "--item-budget",
        type=Number(min=0, min_open=True),
        default=None,
        metavar="USD",
        help="Spend at most this per item: an item over it fails at its next model call and "
        "is not retried.",
    ),
    click.option(
        "--item-tokens",
        type=WholeNumber(min=1),
        default=None,
        metavar="N",
        help="At most N tokens (input + output) per item, as --item-budget.",
    ),
    click.option(
        "--prices",
        type=_SafePath(path_type=Path, dir_okay=False),
        default=None,
        metavar="FILE",
        help="Model prices (TOML, USD per million tokens) that override or add to the "
        "genai-prices database.",
    ),
    click.option(
        "--notify",
        multiple=True,
        metavar="URL",
        envvar="AGENTOS_NOTIFY",
        help="When the run ends, however it ends, send its summary to this apprise URL "
        "(ntfy://, slack://, mailto://, json://...; repeatable; needs 'agentos-batch[notify]'). "
        "URLs carry tokens: agentos never prints them; AGENTOS_NOTIFY (URLs separated by "
        "spaces) keeps them off the command line, where other users' `ps` sees them.",
    ),
    click.option(
        "--item-memory",
        type=_SIZE,
        default=None,
        metavar="SIZE",
        help="Each process an item starts may use at most this much data memory (500M, 2G; "
        "setrlimit RLIMIT_DATA, per process): a runaway item fails instead of making the "
        "machine swap [default: no limit].",
    ),
    click.option(
        "--item-log-size",
        type=_SIZE,
        default=None,
        metavar="SIZE",
        help="Keep at most this much of each item's output in its log (logs/<id>.log); the "
        "rest still reaches the terminal [default: all of it].",
    ),
    click.option("--no-color", is_flag=True, help="No colours (also: NO_COLOR=1)."),
    click.option("-q", "--quiet", count=True, help="Only errors and the items' own output."),
    click.option("-v", "--verbose", count=True, help="Say when each item starts and ends."),
]


#: what `--resume` does with each shared option (see OnResume); an option not named here is
#: KEEP: the run is what it was started with, unless an option is declared safe to change
SHARED_ON_RESUME: dict[str, OnResume] = {
    **dict.fromkeys(
        (
            "parallel",
            "grace",
            "timeout",
            "retries",
            "retry_backoff",
            "credentials_file",
            "max_rate_limit_waits",
            "rate_limit_pattern",
            "rate_limit_cooldown",
            "backend",
            "scheduler",
            "forward_env",
            "key_group",
            "key_rpm",
            "key_tpm",
            "key_rpd",
            "key_slots",
            "max_key_wait",
            "budget",
            "item_budget",
            "item_tokens",
            "prices",
        ),
        OnResume.CHANGE,
    ),
    # about this invocation only; --notify's URLs carry tokens and are never written down
    **dict.fromkeys(
        ("dry_run", "run_dir", "resume", "no_color", "quiet", "verbose", "notify"),
        OnResume.FRESH,
    ),
}


def runner_options(f: F) -> F:
    for decorator in reversed(_SHARED):
        f = decorator(f)
    return f


class _AgentSpec(click.ParamType):
    """An agent spec (`mock`, `claude:sonnet`, `cmd:./myagent.sh`): a `cmd:` agent given by a
    relative path is made absolute here, where the user typed it, so that it is found whatever
    directory the agent later runs in (the repository) and whichever directory a resume is
    started from."""

    name = "spec"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().startswith("cmd:"):
            from agentos.agents.command import absolute_spec

            return absolute_spec(value)
        return value


_KINDS: dict[str, Any] = {
    "str": str,
    "int": WholeNumber(),
    "float": Number(),
    "path": _PATH,
    "agent": _AgentSpec(),
}


def workflow_params(options: tuple[Option, ...]) -> list[click.Parameter]:
    params: list[click.Parameter] = []
    for opt in options:
        if opt.kind == "argv":
            params.append(
                click.Argument(
                    [opt.dest],
                    nargs=-1,
                    type=click.UNPROCESSED,
                    metavar=opt.metavar or "COMMAND [ARG]...",
                )
            )
        elif opt.kind == "flag":
            params.append(click.Option([*opt.flags, opt.dest], is_flag=True, help=opt.help))
        else:
            kind = click.Choice(opt.choices) if opt.kind == "choice" else _KINDS[opt.kind]
            params.append(
                click.Option(
                    [*opt.flags, opt.dest],
                    type=kind,
                    default=opt.default,
                    show_default=opt.default is not None and opt.default != (),
                    metavar=opt.metavar,
                    help=opt.help,
                    multiple=opt.multiple,
                    envvar=opt.envvar,
                    show_envvar=opt.envvar is not None,
                )
            )
    return params
