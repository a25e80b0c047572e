"""`agentos keys`: each configured key's label, group, limits, last use and whether it is parked.

Reads the same keys a run would (`--credentials-file` or `AGENTOS_CREDENTIALS`, with the same
`--key-*` defaults) and what earlier runs remembered about them (agentos.governor.parked). Prints
labels and fingerprints only, never a key.

What is shown is true of the keys as the file lists them now: a key's group is the one the file
names, else the organisation the provider named in the last run, else its own label (a label is
a position in the file: what a key was called in an earlier run is not its group now); a group's
configured limits are every key's in it, as a run applies them; a key the provider rejected in
the last run says so; the pace the last run kept for its group, and why, is the last column.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from agentos.governor import parked
from agentos.governor.credentials import KeyConfig, load_keys, make_credentials
from agentos.run.options import SAFE_PATH
from agentos.run.summary import text_table
from agentos.text import plural


def _figure(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _when(epoch: float, now: float) -> str:
    if epoch - now > 86400 * 300:
        return "for the run"
    fmt = "%H:%M UTC" if epoch - now < 86400 else "%Y-%m-%d %H:%M UTC"
    return "until " + time.strftime(fmt, time.gmtime(epoch))


def _group_limits(configs: list[KeyConfig], names: list[str]) -> dict[str, dict[str, float]]:
    """Per group, the strictest configured rpm/tpm/rpd of its keys: a run applies a key's limit
    to its whole group."""
    limits: dict[str, dict[str, float]] = {}
    for config, name in zip(configs, names, strict=True):
        group = limits.setdefault(name, {})
        for what in ("rpm", "tpm", "rpd"):
            value = getattr(config, what)
            if value and (what not in group or value < group[what]):
                group[what] = value
    return limits


def _pace(note: dict[str, Any]) -> str:
    """The pace the last run kept for the key's group, and why: `600/min: the limit the provider
    states`, `42/min after 3 refusals in 10 s`."""
    rpm = note.get("rpm")
    if not isinstance(rpm, (int, float)):
        return "-"
    reason = str(note.get("pace_reason") or note.get("rpm_source") or "")
    if not reason:
        return f"{rpm:g}/min"
    return f"{rpm:g}/min {reason}" if reason.startswith("after ") else f"{rpm:g}/min: {reason}"


def key_rows(configs: list[KeyConfig], now: float | None = None) -> list[tuple[str, ...]]:
    now = time.time() if now is None else now
    remembered = parked.entries()
    rows: list[tuple[str, ...]] = []
    credentials = make_credentials(c.secret for c in configs)
    notes = [remembered.get(c.full_fingerprint, {}) for c in credentials]
    names = [
        config.group
        # a group the provider named (its organisation) is the key's own; an earlier run's
        # default group was the key's label then, and labels are positions in the file
        or (note.get("group") if note.get("group_source") == "provider" else None)
        or credential.label
        for config, credential, note in zip(configs, credentials, notes, strict=True)
    ]
    limits = _group_limits(configs, names)
    for config, credential, note, name in zip(configs, credentials, notes, names, strict=True):
        until = note.get("until")
        if isinstance(until, (int, float)) and until > now:
            state = f"parked {_when(until, now)} ({note.get('reason', 'out of quota')})"
        elif note.get("rejected"):
            state = "rejected by the provider in the last run"
        else:
            state = "ok"
        last = note.get("last_run")
        used = (
            f"{plural(note.get('calls', 0), 'call')}, {plural(note.get('leases', 0), 'item')}, "
            + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last))
            if isinstance(last, (int, float))
            else "never"
        )
        group = limits[name]
        rows.append(
            (
                credential.label,
                f"…{credential.fingerprint}",
                name,
                _figure(group.get("rpm") or note.get("rpm")),
                _figure(group.get("tpm") or note.get("tpm")),
                _figure(group.get("rpd") or note.get("rpd")),
                str(config.slots),
                state,
                used,
                _pace(note),
            )
        )
    return rows


@click.command(name="keys", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--credentials-file",
    type=SAFE_PATH,
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
    whether it is parked (out of quota, until when) or was rejected by the provider, its last
    use, and the pace its group was kept at in the last run and why. Never shows a key."""
    defaults = KeyConfig("", key_group, key_rpm, key_tpm, key_rpd, key_slots)
    configs = load_keys(credentials_file, defaults=defaults, warn=lambda m: None)
    if not configs:
        click.echo("no keys: pass --credentials-file PATH or set AGENTOS_CREDENTIALS")
        return
    headers = (
        "key",
        "fingerprint",
        "group",
        "rpm",
        "tpm",
        "rpd",
        "slots",
        "state",
        "last run",
        "last pace",
    )
    for line in text_table(key_rows(configs), headers, right=frozenset({3, 4, 5, 6})):
        click.echo(line)
    click.echo(f"remembered in {parked.state_dir() / 'keys.json'}")


COMMAND = command
