"""API keys: loading (with their credentials-file attributes), public labels, redaction, leases.

Who may use which key, and when, is the rate governor's (agentos.governor.governor: per-item
leases and per-call grants, groups, budgets, the four kinds of "no"), which builds on this
module. This one has what both sides of a run share: `KeyConfig` (a key and its group= rpm= tpm=
rpd= slots=), `Credential` (label and fingerprints), `Lease` and the `Redactor`;
how a lease ends is a `KeyOutcome` (agentos.item.keys).

The parent does all the lease bookkeeping (it knows which item holds which lease), so a lease
cannot be lost when a worker dies; the governor also reclaims, on its own, leases whose holder
process is gone. Only labels (`key-1`, plus a fingerprint taken from the SHA-256 of the key) ever
appear in output, journals and errors; the `Redactor` replaces any key that an item prints
anyway.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from agentos.errors import ConfigError
from agentos.item.keys import CREDENTIALS_ENV

NOTIFY_ENV = "AGENTOS_NOTIFY"  # notification URLs, which carry tokens (agentos.run.notify)
BASE_COOLDOWN = 30.0
MAX_COOLDOWN = 900.0


@dataclass(frozen=True, eq=False)
class Credential:
    """A key as the run knows it: its label, a fingerprint that names it without it, the secret."""

    label: str
    fingerprint: str
    secret: str = field(repr=False)

    @property
    def public_name(self) -> str:
        return f"{self.label} (…{self.fingerprint})"

    @property
    def full_fingerprint(self) -> str:
        """The key's SHA-256: how state about a key is remembered across runs without the key."""
        return _sha256(self.secret)


@dataclass(frozen=True, eq=False)
class KeyConfig:
    """A key and what the credentials file says about it (all optional): the provider group
    (organisation/project) whose limits it shares, requests/min, tokens/min, requests/day, and
    how many items may use it at once."""

    secret: str = field(repr=False)
    group: str | None = None
    rpm: float | None = None
    tpm: float | None = None
    rpd: float | None = None
    slots: int = 1

    def with_defaults(self, defaults: KeyConfig) -> KeyConfig:
        return KeyConfig(
            self.secret,
            self.group or defaults.group,
            self.rpm or defaults.rpm,
            self.tpm or defaults.tpm,
            self.rpd or defaults.rpd,
            self.slots if self.slots != 1 else defaults.slots,
        )


def _sha256(secret: str) -> str:
    # hashlib is imported here, not at the top: it loads OpenSSL, ~5 ms of every run's start-up,
    # and only runs with keys need it
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()


def make_credentials(secrets: Iterable[str]) -> list[Credential]:
    """Collapse duplicates (first occurrence wins) and label the keys key-1, key-2, ..."""
    unique = list(dict.fromkeys(s for s in secrets if s))
    return [Credential(f"key-{n}", _sha256(s)[-4:], s) for n, s in enumerate(unique, start=1)]


def load_credentials(
    path: Path | None, environ: dict[str, str] | None = None, warn: Callable[[str], None] = print
) -> list[Credential]:
    """Keys from `--credentials-file` (one per line, '#' comments) or else `AGENTOS_CREDENTIALS`
    (comma or newline separated). No keys is allowed; a bad file is a ConfigError (exit 2)."""
    return make_credentials(c.secret for c in load_keys(path, environ, warn))


def load_keys(
    path: Path | None,
    environ: dict[str, str] | None = None,
    warn: Callable[[str], None] = print,
    defaults: KeyConfig | None = None,
) -> list[KeyConfig]:
    """The keys with their attributes (see `parse_key_line`), the command line's `defaults`
    filling in what a line does not say. `AGENTOS_CREDENTIALS` takes the same lines as the
    file, separated by commas or newlines."""
    if path is not None:
        configs = _read_key_file(path, warn)
    else:
        value = (environ if environ is not None else os.environ).get(CREDENTIALS_ENV, "")
        parts = [p.strip() for p in value.replace("\n", ",").split(",")]
        configs = [
            parse_key_line(part, f"entry {number} of {CREDENTIALS_ENV}")
            for number, part in enumerate((p for p in parts if p), start=1)
        ]
    if defaults is not None:
        configs = [c.with_defaults(defaults) for c in configs]
    unique: dict[str, KeyConfig] = {}
    for config in configs:
        unique.setdefault(config.secret, config)  # the first occurrence wins, as for labels
    return list(unique.values())


#: variables that hold secrets agentos reads once and takes out of its environment, so that no
#: process it starts (workers, the key server, resource trackers, Dask workers, items, agents'
#: CLIs) inherits them
SECRET_ENV = (CREDENTIALS_ENV, NOTIFY_ENV)


def take_secret_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The SECRET_ENV variables that are set, removed from `os.environ` (and so from every
    process started from now on). On Linux their values are also wiped from this process's
    initial environment block, which `/proc/<pid>/environ` shows and every forked worker
    inherits as it is: popping `os.environ` alone leaves them readable there."""
    environ = os.environ if environ is None else environ
    taken = {name: environ.pop(name) for name in SECRET_ENV if name in environ}
    if taken and environ is os.environ:
        _wipe_initial_environment([name.encode() for name in taken])
    return taken


def _wipe_initial_environment(names: list[bytes]) -> None:
    """Overwrite `NAME=value` with NAME= and NUL bytes in the environment block the kernel set
    up at exec (between env_start and env_end of /proc/self/stat). glibc's unsetenv, which
    os.environ.pop calls, only drops the pointer to it. Best effort: Linux only."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        env_start = int(fields[47])  # field 50 of proc(5); fields here start at field 3
        with open("/proc/self/environ", "rb") as f:
            block = f.read()
    except (OSError, IndexError, ValueError):
        return
    import ctypes

    offset = 0
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name in names and value:
            ctypes.memset(env_start + offset + len(name) + 1, 0, len(value))
        offset += len(entry) + 1


ATTRIBUTES = ("group", "rpm", "tpm", "rpd", "slots")
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: `OPENAI_API_KEY=sk-...` (a line of a .env file, `export` and quotes allowed): the key is the
#: value. Upper case with an underscore, as environment variables are named, so that a key
#: that merely contains '=' (base64 padding) is never taken for one.
_ASSIGNMENT = re.compile(r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)=(.*)")
_HOW = "one key per line, then optional " + " ".join(f"{a}=..." for a in ATTRIBUTES)


def parse_key_line(line: str, where: str) -> KeyConfig:
    """`KEY [group=NAME] [rpm=N] [tpm=N] [rpd=N] [slots=N]`, or `NAME=KEY [...]` as in a .env
    file. Errors name the line and what is wrong in it, never any part of it: any word of it
    may be a key."""
    words = line.split()
    if len(words) > 1 and words[0] == "export":
        words = words[1:]
    if not words:
        raise ConfigError(f"{where} is empty; put {_HOW}")
    first, *attributes = words
    assigned = _ASSIGNMENT.fullmatch(first)
    if assigned is not None:
        secret = assigned.group(2)
        if len(secret) >= 2 and secret[0] == secret[-1] and secret[0] in "'\"":
            secret = secret[1:-1]
        if not secret:
            raise ConfigError(f"{where}: {assigned.group(1)}= has no key after it")
    else:
        secret = first
        name, sep, _ = first.partition("=")
        if sep and name in ATTRIBUTES:
            raise ConfigError(f"{where}: the key comes first, then its attributes ({_HOW})")
        if first.endswith(":"):
            raise ConfigError(
                f"{where}: a label before the key ('name: KEY') is not read; put {_HOW}, "
                "with a '#' line above it to say whose it is"
            )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise ConfigError(f"{where} contains control characters; put one key per line")
    values: dict[str, str] = {}
    for attribute in attributes:
        name, sep, value = attribute.partition("=")
        if not sep or name not in ATTRIBUTES:
            raise ConfigError(
                f"{where}: a word after the key is not one of its attributes; put {_HOW}"
            )
        values[name] = value
    group = values.get("group")
    if group is not None and not _GROUP_NAME.fullmatch(group):
        raise ConfigError(f"{where}: group= takes a name of letters, digits, '_', '.', '-'")
    numbers: dict[str, float] = {}
    for name in ("rpm", "tpm", "rpd", "slots"):
        if name in values:
            try:
                number = float(values[name])
            except ValueError:
                number = -1.0
            if not number > 0 or (name == "slots" and number != int(number)):
                kind = "a whole number" if name == "slots" else "a number"
                raise ConfigError(f"{where}: {name}= must be {kind} above 0")
            numbers[name] = number
    return KeyConfig(
        secret,
        group,
        numbers.get("rpm"),
        numbers.get("tpm"),
        numbers.get("rpd"),
        int(numbers.get("slots", 1)),
    )


def _read_key_file(path: Path, warn: Callable[[str], None]) -> list[KeyConfig]:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(
                f"credentials file {path} is a directory; pass a file with one key per line"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"credentials file {path} does not exist; pass a file with one key per line"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"credentials file {path} is not readable; check its permissions"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from None
    if b"\0" in raw:
        raise ConfigError(
            f"credentials file {path} is binary; it must be text with one key per line"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"credentials file {path} is not UTF-8 text; it must hold one key per line"
        ) from None
    keys: list[KeyConfig] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keys.append(parse_key_line(line, f"line {number} of credentials file {path}"))
    if not keys:
        raise ConfigError(
            f"credentials file {path} holds no keys; put one key per line ('#' starts a comment)"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"credentials file {path} is readable by other users; run: chmod 600 {path}")
    return keys


class Redactor:
    """Replaces every configured key with its label, in bytes (output) and text (errors)."""

    def __init__(
        self, credentials: Iterable[Credential], others: Iterable[tuple[str, str]] = ()
    ) -> None:
        """`others`: more (secret, label) pairs, such as notification URLs."""
        pairs = [(c.secret, f"[{c.label}]") for c in credentials]
        pairs += [(secret, f"[{label}]") for secret, label in others if secret]
        pairs.sort(key=lambda p: -len(p[0]))
        self._text = pairs
        self._bytes = [(s.encode(), label.encode()) for s, label in pairs]
        self.max_length = max((len(s) for s, _ in self._bytes), default=0)

    def __bool__(self) -> bool:
        return bool(self._bytes)

    def __call__(self, data: bytes) -> bytes:
        for secret, label in self._bytes:
            if secret in data:
                data = data.replace(secret, label)
        return data

    def text(self, value: str) -> str:
        for secret, label in self._text:
            if secret in value:
                value = value.replace(secret, label)
        return value


class Lease(NamedTuple):
    """An item's hold on a key for one attempt (governor/leases.py): the parent keeps it, the
    worker claims the key behind it."""

    lease_id: int
    label: str
    item_id: str
