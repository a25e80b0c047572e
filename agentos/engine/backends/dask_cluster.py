"""A Dask run, checked and connected before its run directory exists: `prepare_dask`.

The `distributed` package (an optional extra), the scheduler (one bounded connection, kept for
the run so that the run does not connect twice), the environment forwarded to items on workers,
and, for a workflow that writes into a workspace, that every worker sees it at the same path.
A user mistake here leaves nothing behind: no run directory, no summary of items that never had
a chance.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.engine.backends.dask_worker import sees_markers
from agentos.errors import ConfigError, UsageError
from agentos.governor.credentials import CREDENTIALS_ENV, NOTIFY_ENV, Credential
from agentos.item.process_tree import RUN_TAG_ENV
from agentos.text import plural

if TYPE_CHECKING:
    from agentos.engine.options import RunnerOptions

CONNECT_TIMEOUT = 5.0  # seconds: an unreachable --scheduler is an error, not a hang

#: forwarded to items on workers whatever --env says: the settings agentos's own agents read
DEFAULT_FORWARD = ("AGENTOS_*",)
#: never forwarded, even when named: keys arrive only leased, and the rest agentos sets per attempt
NEVER_FORWARD = frozenset(
    {
        CREDENTIALS_ENV,
        NOTIFY_ENV,
        "AGENTOS_API_KEY",
        RUN_TAG_ENV,
        "AGENTOS_ITEM_ID",
        "AGENTOS_ATTEMPT",
        "AGENTOS_RESULT_FD",
        "AGENTOS_USAGE_FILE",
    }
)


def require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--backend dask needs the distributed package; install it with: "
            "pip install 'agentos-batch[dask]'"
        ) from None
    return distributed


def forwarded_environment(
    names: Iterable[str],
    environ: Mapping[str, str],
    credentials: list[Credential],
    credential_env: str,
    warn: Callable[[str], None],
) -> dict[str, str]:
    """The client variables items on the workers get: DEFAULT_FORWARD and each `--env` NAME or
    PREFIX*, minus NEVER_FORWARD. A value that holds a configured key is refused (UsageError):
    it would put the key in every item's environment, beside the lease."""
    never = NEVER_FORWARD | {credential_env}
    # variable -> (why it is forwarded, what to do instead), for the error message
    chosen: dict[str, tuple[str, str]] = {}
    for pattern in DEFAULT_FORWARD:
        for name in fnmatch.filter(environ, pattern):
            chosen[name] = (f"{name} (AGENTOS_* settings go to the workers)", "unset it")
    for pattern in names:
        if pattern.endswith("*"):
            matched = [n for n in fnmatch.filter(environ, pattern) if n not in never]
            if not matched:
                warn(f"--env {pattern}: no variable here matches; nothing forwarded for it")
            for name in matched:
                chosen[name] = (f"--env {pattern} ({name})", "do not forward it")
        elif pattern in never:
            raise UsageError(
                f"--env {pattern}: agentos never forwards {pattern}; keys reach items only "
                f"leased, through the key coordinator (as ${credential_env}), and the run's own "
                "variables are set on the workers"
            )
        elif pattern not in environ:
            warn(f"--env {pattern} is not set here; nothing forwarded for it")
        else:
            chosen[pattern] = (f"--env {pattern}", "do not forward it")
    forwarded = {name: environ[name] for name in chosen if name not in never}
    for name, value in forwarded.items():
        for credential in credentials:
            if credential.secret and credential.secret in value:
                why, remedy = chosen[name]
                raise UsageError(
                    f"{why} holds a configured API key ({credential.label}); keys reach items "
                    f"only leased, through the key coordinator (as ${credential_env}): {remedy}"
                )
    return forwarded


def connect_scheduler(address: str) -> Any:
    """A client of `--scheduler`, or one line that says what to fix (exit 2)."""
    distributed = require_distributed()
    try:
        return distributed.Client(address, timeout=f"{CONNECT_TIMEOUT:g}s")
    except ValueError as exc:  # not an address at all: no port, an unknown scheme
        raise UsageError(
            f"--scheduler {address!r} is not a Dask scheduler address ({exc}); "
            "give it as tcp://host:8786"
        ) from None
    except OSError:
        raise ConfigError(
            f"cannot reach the Dask scheduler {address} (no answer within "
            f"{CONNECT_TIMEOUT:g} s); start it or check --scheduler"
        ) from None


@dataclass
class DaskSetup:
    """What `prepare_dask` checked and made before the run directory existed, for DaskRun."""

    scheduler: str | None
    client: Any = None  # connected to `scheduler`; None for a local cluster, made by DaskRun
    env: dict[str, str] = field(default_factory=dict)


def prepare_dask(
    options: RunnerOptions, credentials: list[Credential], warn: Callable[[str], None]
) -> DaskSetup:
    """The checks of a Dask run that need no run directory: a user mistake here must leave
    nothing behind (no run directory, no summary of items that never had a chance)."""
    require_distributed()
    scheduler = options.execution.scheduler
    if not scheduler:
        try:  # Security.temporary() makes the local cluster's certificate with it
            import cryptography  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--backend dask secures its local cluster with TLS, which needs the "
                "cryptography package; install it with: pip install 'agentos-batch[dask]'"
            ) from None
    elif credentials and not scheduler.startswith("tls://"):
        warn(
            f"--scheduler {scheduler} is not a tls:// address: the keys travel to the "
            "key actor on a worker unencrypted, and anyone who can reach the scheduler can run "
            "code on its workers; see the README's Security section"
        )
    env = forwarded_environment(
        options.execution.forward_env, os.environ, credentials, options.keys.credential_env, warn
    )
    client = connect_scheduler(scheduler) if scheduler else None
    return DaskSetup(scheduler, client, env)


def check_shared_folders(client: Any, folders: list[Path]) -> None:
    """Every worker of `--scheduler` must see `folders` (the workspace an item writes into: an
    LLD, a git worktree) at the same path as this machine, or its items would write elsewhere or
    fail one by one: a marker file written here must be read there. A ConfigError (exit 2)
    names the workers that do not, before any item runs."""
    token = os.urandom(8).hex()
    markers: list[Path] = []
    try:
        for folder in folders:
            own = folder / ".agentos"
            own.mkdir(exist_ok=True)
            if own.is_symlink():
                raise ConfigError(f"{own} is a symlink; agentos will not write through it")
            marker = own / f".shared-check-{token}"
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token)
            markers.append(marker)
        try:
            seen: dict[str, list[bool]] = client.run(sees_markers, [str(m) for m in markers], token)
        except Exception as exc:
            raise ConfigError(
                f"cannot ask the Dask workers whether they see {folders[0]}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    finally:
        for marker in markers:
            with contextlib.suppress(OSError):
                marker.unlink()
    blind = sorted(worker for worker, found in seen.items() if not all(found))
    if blind:
        raise ConfigError(
            f"{plural(len(blind), 'Dask worker')} ({', '.join(blind[:3])}) "
            f"cannot see {', '.join(map(str, folders))} at that path: items there would work on "
            "another copy or fail; mount it at the same path on every worker (a shared "
            "filesystem), or run with --backend loky"
        )
