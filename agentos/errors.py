"""Errors, in two families.

*Run errors* (`AgentosError` and subclasses) end the whole command. Each carries the exit code the
shell sees and a one-line message that says what to fix. They are raised in
the parent for user mistakes (bad options, bad input files, missing executables) and are never
shown with a traceback. The CLI turns them into exit codes in exactly one place, beside click's
own exceptions (`agentos.commands.cli`).

*Item outcomes* (`ItemError`, `RateLimited`, `CredentialRejected`, `ItemTimeout`,
`Interrupted`) end one attempt of one item. Workflow code raises them inside `execute_item`;
the attempt wrapper turns them into a status (`failed`, `rate_limited`, `timeout`,
`interrupted`) and the runner decides whether the item is retried. They subclass stdlib
exceptions so that code catching `RuntimeError` or `TimeoutError` keeps working.

Nothing here imports the CLI: workers import this module.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class AgentosError(Exception):
    """Base of every error that ends an agentos command. `exit_code` is what the shell sees.

    It answers what click asks of its `ClickException` (`exit_code`, `message`,
    `format_message()`) without being one: workers import this module and do not load click.
    Raised anywhere under a command, it passes through click unchanged, and the CLI prints it
    and exits with its code where it does click's own exceptions."""

    exit_code = EXIT_ITEMS_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def format_message(self) -> str:
        return self.message


class UsageError(AgentosError, ValueError):
    """The command line is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(AgentosError, ValueError):
    """An input the user pointed agentos at is missing or unusable: a folder, a key file,
    an agent executable (exit 2)."""

    exit_code = EXIT_USAGE


class PoolBroken(AgentosError, RuntimeError):
    """The worker pool kept dying; the batch stops instead of looping (exit 1)."""


class KeysExhausted(AgentosError, RuntimeError):
    """Every key is out (of quota, or retired) for longer than --max-key-wait: the run stops
    after the running items (exit 1); a rerun after the reset continues."""


class KeyServerLost(AgentosError, RuntimeError):
    """The key server process died mid-run: no key can be leased or returned any more (exit 1).
    Finished work is kept; a rerun continues."""


# ---- item outcomes: raised inside execute_item, caught by the attempt wrapper ----


class ItemError(RuntimeError):
    """The item failed for a reason the message explains; no traceback is printed.

    `exit_code` and `signal` are what the joblog records (a failed command's status)."""

    def __init__(self, message: str, *, exit_code: int = 1, signal: int = 0) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = signal


class RateLimited(RuntimeError):
    """The provider refused because of a rate limit or quota (HTTP 429, exit 75, ...).

    The key goes into cooldown (`retry_after` seconds when the provider said so) and the item is
    queued again with another key. It does not use up a retry. `kind` says which "no" it was
    (agentos.item.refusals: "rate", "quota", "overloaded"): a quota parks the key's group
    until `retry_after` (or for the run), an overload backs everyone off without blaming the key.
    """

    def __init__(
        self, message: str = "rate limited", retry_after: float | None = None, kind: str = "rate"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind


class CredentialRejected(RuntimeError):
    """The provider rejected the key itself (HTTP 401/403): the key is retired for the rest of
    the run and the item is queued again with another key. It does not use up a retry."""


class ItemTimeout(TimeoutError):
    """The attempt ran past `--timeout`; its process group was killed."""


class Interrupted(BaseException):
    """The run is terminating (second Ctrl+C, SIGTERM after the grace period).

    A BaseException, like KeyboardInterrupt, so that `except Exception` in workflow code does not
    swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
