"""The key server: a `multiprocessing` Manager process that serves one `Governor`.

Workers reach it through a proxy handed to them once, by the loky initializer (never as a task
argument: loky issue #407). The server ignores SIGINT and SIGTERM (the parent decides when it ends,
after the workers) and dies with the parent, through the parent-death signal, if the parent is
SIGKILLed. It is spawned, not forked, so none of the parent's threads or locks are copied into it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from multiprocessing import get_context
from multiprocessing.managers import BaseManager

from agentos.governor.credentials import BASE_COOLDOWN, KeyConfig
from agentos.governor.governor import Governor
from agentos.governor.protocol import GovernorHandle
from agentos.item.process_tree import set_parent_death_signal


class KeyServer(BaseManager):
    """A Manager process serving one Governor."""


KeyServer.register("Governor", Governor)


def _init_key_server(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    set_parent_death_signal(signal.SIGKILL, expected_parent=parent_pid)


def start_key_server(
    keys: list[str | KeyConfig],
    base_cooldown: float = BASE_COOLDOWN,
    parked: dict[str, tuple[float, str]] | None = None,
) -> tuple[KeyServer, GovernorHandle]:
    """Start the server and return it with a governor proxy. Call inside `spawn_guard()`."""
    server = KeyServer(ctx=get_context("spawn"))
    server.start(initializer=_init_key_server, initargs=(os.getpid(),))
    proxy = server.Governor(keys, base_cooldown, parked=parked)  # type: ignore[attr-defined]
    return server, proxy
