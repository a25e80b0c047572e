"""`--notify URL`: one message to each URL when a run ends, however it ends, through apprise.

apprise speaks ntfy, Slack, Matrix, email, desktop notifications and a hundred more through one
URL scheme, so agentos writes no senders of its own. Notification URLs carry tokens (a Slack
webhook, an ntfy password, an SMTP login): like keys, they are never printed or written
anywhere. Messages name a URL by its position and scheme only (`notification 1 of 2 (json://)`).

A notification is a courtesy: one that cannot be sent is a warning line, never a failed run or a
changed exit code, and all of them together may hold the exit for `SEND_TIMEOUT` seconds at most.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from agentos.errors import AgentosError, UsageError
from agentos.text import plural
from agentos.usage.record import Tally, cost_text

SEND_TIMEOUT = 5.0  # seconds for all receivers together: a slow one must not hold the exit
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
_MIN_SECRET = 4  # shorter URL parts ("x", "api") are too common to redact without mangling text


def scheme_of(url: str) -> str:
    """`slack://`, the only part of a notification URL that may be shown ("" when it has none)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme.lower()}://" if sep and _SCHEME.fullmatch(scheme) else ""


def _secrets(url: str) -> list[str]:
    """Every part of `url` that may be a token: the URL, its user, password, host, path segments
    and query values, raw and unquoted. Services put tokens in any of them (`slack://T/B/C`)."""
    parts = {url}
    _, sep, rest = url.partition("://")
    if sep:
        parts.add(rest)
        parts.update(re.split(r"[/?&=#:@,]", rest))
    with_unquoted = parts | {unquote(p) for p in parts}
    return sorted((p for p in with_unquoted if len(p) >= _MIN_SECRET), key=len, reverse=True)


def redact(text: str, urls: Sequence[str]) -> str:
    for url in urls:
        for secret in _secrets(url):
            text = text.replace(secret, "[redacted]")
    return text


@dataclass(frozen=True)
class Notifier:
    """The checked URLs of one run."""

    urls: tuple[str, ...]

    def send(self, title: str, body: str, *, warn: Callable[[str], None]) -> list[bool]:
        """Send to every URL at once, each in a daemon thread, and wait `SEND_TIMEOUT` in all:
        a receiver that has not answered by then is reported and abandoned (its thread dies with
        the process). Returns, per URL, whether it was sent."""
        results: list[str | None] = [None] * len(self.urls)
        done = [threading.Event() for _ in self.urls]
        threads = [
            threading.Thread(
                target=self._send_one,
                args=(n, title, body, results, done[n]),
                name=f"agentos-notify-{n + 1}",
                daemon=True,
            )
            for n in range(len(self.urls))
        ]
        deadline = time.monotonic() + SEND_TIMEOUT
        for thread in threads:
            thread.start()
        for event in done:
            event.wait(max(0.0, deadline - time.monotonic()))
        sent = []
        for n, url in enumerate(self.urls):
            error = results[n] if done[n].is_set() else f"no answer within {SEND_TIMEOUT:g} s"
            if error:
                warn(
                    f"notification {n + 1} of {len(self.urls)} ({scheme_of(url) or '?'}) failed: "
                    f"{redact(error, self.urls)}"
                )
            sent.append(not error)
        return sent

    def _send_one(
        self, n: int, title: str, body: str, results: list[str | None], done: threading.Event
    ) -> None:
        try:
            results[n] = _deliver(self.urls[n], title, body)
        except Exception as exc:  # a sender's bug must not become the run's
            results[n] = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()


def _deliver(url: str, title: str, body: str) -> str | None:
    """None when sent, else why not (apprise only logs its reasons, so they are captured)."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return "apprise no longer understands the URL"
    # apprise's own socket timeouts (4 s each by default, per retry) could outlast ours
    for attr in ("socket_connect_timeout", "socket_read_timeout"):
        if isinstance(getattr(plugin, attr, None), (int, float)):
            setattr(plugin, attr, min(getattr(plugin, attr), SEND_TIMEOUT))
    reasons = _Reasons()
    logger = logging.getLogger("apprise")
    logger.addHandler(reasons)
    try:
        ok = plugin.notify(body=body, title=title)
    finally:
        logger.removeHandler(reasons)
    if ok:
        return None
    return reasons.lines[-1][:300] if reasons.lines else "the receiver did not accept it"


class _Reasons(logging.Handler):
    """apprise's warnings of this thread only: receivers are sent to at once, each in its own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(" ".join(record.getMessage().split()))


def check_urls(urls: Sequence[str]) -> Notifier | None:
    """The URLs apprise understands, or a usage error naming the first one it does not (by
    position and scheme). None without --notify: apprise is only imported when it is used."""
    if not urls:
        return None
    try:
        import apprise
    except ImportError:
        raise UsageError("--notify needs apprise: pip install 'agentos-batch[notify]'") from None
    # apprise logs an unknown URL in full; its records must not reach a handler that prints
    logging.getLogger("apprise").propagate = False
    for n, url in enumerate(urls, start=1):
        if apprise.Apprise.instantiate(url) is None:
            shown = f"{scheme_of(url)}..." if scheme_of(url) else "no scheme"
            raise UsageError(
                f"--notify #{n} ({shown}) is not a notification URL apprise "
                "understands (see https://github.com/caronc/apprise/wiki)"
            )
    return Notifier(tuple(urls))


def outcome(data: dict[str, Any], fatal: Exception | None) -> str:
    """How the run ended, in a few words: the message's title."""
    from agentos.errors import KeysExhausted
    from agentos.usage.budget import BudgetReached

    if isinstance(fatal, BudgetReached):
        return "out of budget"
    if isinstance(fatal, KeysExhausted):
        return "out of quota"
    if fatal is not None:
        return "stopped by an error"
    if data.get("interrupted_by"):
        return f"stopped by {data['interrupted_by']}"
    return "done" if data.get("exit_code") == 0 else "finished with failures"


def message(data: dict[str, Any], summary_line: str, fatal: Exception | None) -> tuple[str, str]:
    """(title, body) from summary.json's data: the summary line, counts, duration, spend when
    known, the run directory, and the error that stopped the run, if one did."""
    title = f"agentos {data['command']}: {outcome(data, fatal)}"
    totals = data.get("totals") or {}
    counts = ", ".join(f"{n} {status}" for status, n in totals.items()) or "no items"
    lines = [
        summary_line,
        "",
        f"counts: {counts}",
        f"duration: {_duration(float(data.get('seconds') or 0))}",
    ]
    usage = data.get("usage") or {}
    if usage.get("calls"):
        lines.append(
            f"spend: {cost_text(Tally.from_json(usage))} ({plural(usage['calls'], 'call')})"
        )
    # absolute, with the host: the message is read on another machine, hours later
    lines.append(f"run dir: {Path(data['run_dir']).resolve()} on {socket.gethostname()}")
    lines.append(f"exit code: {data['exit_code']}")
    if fatal is not None:
        text = fatal.format_message() if isinstance(fatal, AgentosError) else str(fatal)
        lines.append(f"error: {text}")
    return title, "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
