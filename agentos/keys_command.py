"""`agentos keys`: each configured key's label, group, limits, last use and whether it is parked.

Reads the same keys a run would (`--credentials-file` or `AGENTOS_CREDENTIALS`, with the same
`--key-*` defaults) and what earlier runs remembered about them (agentos.governor.parked). Prints
labels and fingerprints only, never a key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from agentos.governor import parked
from agentos.text import plural
from agentos.workflows.options import _PATH
from agentos.workflows.parallel.credentials import KeyConfig, load_keys, make_credentials
from agentos.workflows.summary import _table


def _figure(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _when(epoch: float, now: float) -> str:
    if epoch - now > 86400 * 300:
        return "for the run"
    fmt = "%H:%M UTC" if epoch - now < 86400 else "%Y-%m-%d %H:%M UTC"
    return "until " + time.strftime(fmt, time.gmtime(epoch))


def key_rows(configs: list[KeyConfig], now: float | None = None) -> list[tuple[str, ...]]:
    now = time.time() if now is None else now
    remembered = parked.entries()
    rows: list[tuple[str, ...]] = []
    for config, credential in zip(
        configs, make_credentials(c.secret for c in configs), strict=True
    ):
        note = remembered.get(credential.full_fingerprint, {})
        until = note.get("until")
        if isinstance(until, (int, float)) and until > now:
            state = f"parked {_when(until, now)} ({note.get('reason', 'out of quota')})"
        else:
            state = "ok"
        last = note.get("last_run")
        used = (
            f"{plural(note.get('calls', 0), 'call')}, {plural(note.get('leases', 0), 'item')}, "
            + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last))
            if isinstance(last, (int, float))
            else "never"
        )
        rows.append(
            (
                credential.label,
                f"…{credential.fingerprint}",
                config.group or note.get("group") or credential.label,
                _figure(config.rpm or note.get("rpm")),
                _figure(config.tpm or note.get("tpm")),
                _figure(config.rpd or note.get("rpd")),
                str(config.slots),
                state,
                used,
            )
        )
    return rows


@click.command(name="keys", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--credentials-file",
    type=_PATH,
    default=None,
    metavar="PATH",
    help="API keys, as for a run [default: AGENTOS_CREDENTIALS].",
)
@click.option("--key-group", default=None, metavar="NAME", help="As for a run.")
@click.option("--key-rpm", type=float, default=None, metavar="N", help="As for a run.")
@click.option("--key-tpm", type=float, default=None, metavar="N", help="As for a run.")
@click.option("--key-rpd", type=float, default=None, metavar="N", help="As for a run.")
@click.option(
    "--key-slots", type=click.IntRange(min=1), default=1, metavar="N", help="As for a run."
)
def command(
    credentials_file: Path | None,
    key_group: str | None,
    key_rpm: float | None,
    key_tpm: float | None,
    key_rpd: float | None,
    key_slots: int,
) -> None:
    """Show each key's label, group, limits (configured, else learned by the last run), slots,
    whether it is parked (out of quota, until when) and its last use. Never shows a key."""
    defaults = KeyConfig("", key_group, key_rpm, key_tpm, key_rpd, key_slots)
    configs = load_keys(credentials_file, defaults=defaults, warn=lambda m: None)
    if not configs:
        click.echo("no keys: pass --credentials-file PATH or set AGENTOS_CREDENTIALS")
        return
    headers = ("key", "fingerprint", "group", "rpm", "tpm", "rpd", "slots", "state", "last run")
    for line in _table(key_rows(configs), headers, right=frozenset({3, 4, 5, 6})):
        click.echo(line)
    click.echo(f"remembered in {parked.state_dir() / 'keys.json'}")


COMMAND = command
