"""API keys: loading, public labels, redaction, and the coordinator that leases them.

    parent                              key server (multiprocessing Manager process)
    ------                              ---------------------------------------------
    acquire(item) ─────────────────►    CredentialCoordinator: free / leased / cooling / revoked
      ◄── Lease(id, label)              picks the least recently used free key
    submit(item, lease_id) ──► worker
                               worker: claim(lease_id, pid) ──► the key (never in task arguments,
                                                                never on a command line)
    result ◄── worker
    release(lease_id, outcome) ─────►   ok/failed: free again; rate_limited: cooling until
                                        now + Retry-After (else 30 s · 2^n, max 15 min, jitter);
                                        revoked: never leased again this run
    worker died → reclaim(item) ────►   the lease goes back to the pool

The parent does all the bookkeeping (it knows which item holds which lease), so a lease cannot be
lost when a worker dies; the coordinator also reclaims, on its own, leases whose holder process is
gone. Only labels (`key-1`, plus a fingerprint taken from the SHA-256 of the key) ever appear in
output, journals and errors; the `Redactor` replaces any key that an item prints anyway.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agentos.errors import ConfigError
from agentos.workflows.parallel.process_tree import pid_alive

CREDENTIALS_ENV = "AGENTOS_CREDENTIALS"
BASE_COOLDOWN = 30.0
MAX_COOLDOWN = 900.0

OK = "ok"
FAILED = "failed"
RATE_LIMITED = "rate_limited"
REVOKED = "revoked"
RECLAIMED = "reclaimed"


@dataclass(frozen=True)
class Credential:
    label: str
    fingerprint: str
    secret: str = field(repr=False)

    @property
    def public_name(self) -> str:
        return f"{self.label} (…{self.fingerprint})"


def make_credentials(secrets: Iterable[str]) -> list[Credential]:
    """Collapse duplicates (first occurrence wins) and label the keys key-1, key-2, ..."""
    import hashlib

    unique = list(dict.fromkeys(s for s in secrets if s))
    return [
        Credential(f"key-{n}", hashlib.sha256(s.encode()).hexdigest()[-4:], s)
        for n, s in enumerate(unique, start=1)
    ]


def load_credentials(
    path: Path | None, environ: dict[str, str] | None = None, warn: Callable[[str], None] = print
) -> list[Credential]:
    """Keys from `--credentials-file` (one per line, '#' comments) or else `AGENTOS_CREDENTIALS`
    (comma or newline separated). No keys is allowed; a bad file is a ConfigError (exit 2)."""
    if path is not None:
        return make_credentials(_read_key_file(path, warn))
    value = (environ if environ is not None else os.environ).get(CREDENTIALS_ENV, "")
    parts = [p.strip() for p in value.replace("\n", ",").split(",")]
    return make_credentials(p for p in parts if p)


def _read_key_file(path: Path, warn: Callable[[str], None]) -> list[str]:
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
    keys: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(ch.isspace() or ord(ch) < 32 for ch in line):
            raise ConfigError(
                f"line {number} of credentials file {path} contains spaces or control "
                "characters; put one key per line"
            )
        keys.append(line)
    if not keys:
        raise ConfigError(
            f"credentials file {path} holds no keys; put one key per line ('#' starts a comment)"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"credentials file {path} is readable by other users; run: chmod 600 {path}")
    return keys


class Redactor:
    """Replaces every configured key with its label, in bytes (output) and text (errors)."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        pairs = sorted(((c.secret, f"[{c.label}]") for c in credentials), key=lambda p: -len(p[0]))
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


# ----------------------------------------------------------------------------------------------
# the coordinator (runs in the key server process, or in-process in sequential mode)


@dataclass(frozen=True)
class Lease:
    lease_id: int
    label: str
    item_id: str


@dataclass
class KeyStatus:
    total: int
    free: int
    leased: int
    cooling: int
    revoked: int
    next_free_in: float | None  # seconds until a cooling key comes back; None if none cools


@dataclass
class _KeyState:
    credential: Credential
    leased_by: int | None = None  # lease id
    cooling_until: float = 0.0
    strikes: int = 0
    revoked: bool = False
    last_used: float = 0.0
    leases: int = 0


@dataclass
class _LeaseRecord:
    key: _KeyState
    item_id: str
    holder_pid: int = 0


class CredentialCoordinator:
    """Exclusive leases over a set of keys with rate-limit cooldowns. Thread-safe: the Manager
    serves each client connection from its own thread."""

    def __init__(
        self,
        secrets: list[str],
        base_cooldown: float = BASE_COOLDOWN,
        max_cooldown: float = MAX_COOLDOWN,
        seed: int | None = None,
    ) -> None:
        self._keys = [_KeyState(c) for c in make_credentials(secrets)]
        self._secrets = [k.credential.secret for k in self._keys]
        self._leases: dict[int, _LeaseRecord] = {}
        self._next_id = 1
        self._cond = threading.Condition()
        self._base = base_cooldown
        self._max = max_cooldown
        import random

        self._random = random.Random(seed)

    def add_secrets(self, secrets: list[str]) -> list[str]:
        """Add keys after construction (the Dask backend hands them to its actor this way, in a
        direct call rather than in task arguments). Returns all labels."""
        with self._cond:
            self._secrets = list(dict.fromkeys([*self._secrets, *secrets]))
            known = {k.credential.secret for k in self._keys}
            self._keys += [
                _KeyState(c) for c in make_credentials(self._secrets) if c.secret not in known
            ]
            self._cond.notify_all()
            return [k.credential.label for k in self._keys]

    # -- leasing
    def acquire(self, item_id: str, timeout: float = 0.0, holder_pid: int = 0) -> Lease | None:
        """A lease on a free key, waiting up to `timeout` seconds; None when none came free
        (every key leased, cooling or revoked)."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                key = self._pick()
                if key is None and self._reclaim_dead_holders():
                    key = self._pick()
                if key is not None:
                    lease_id = self._next_id
                    self._next_id += 1
                    key.leased_by = lease_id
                    key.last_used = time.monotonic()
                    key.leases += 1
                    self._leases[lease_id] = _LeaseRecord(key, item_id, holder_pid)
                    return Lease(lease_id, key.credential.label, item_id)
                left = deadline - time.monotonic()
                if left <= 0 or all(k.revoked for k in self._keys):
                    return None
                wake = self._next_cooldown_end()
                wait = left if wake is None else min(left, max(0.01, wake - time.monotonic()))
                self._cond.wait(wait)

    def lease_label(self, label: str, item_id: str) -> Lease | None:
        """Mark the key `label` leased to `item_id` now, whatever its state: how a coordinator
        started afresh learns which keys running items already hold (Dask actor restart)."""
        with self._cond:
            for key in self._keys:
                if key.credential.label == label:
                    lease_id = self._next_id
                    self._next_id += 1
                    key.leased_by = lease_id
                    self._leases[lease_id] = _LeaseRecord(key, item_id)
                    return Lease(lease_id, label, item_id)
            return None

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        """The key behind a lease, for the process that will use it."""
        with self._cond:
            record = self._leases.get(lease_id)
            if record is None:
                raise KeyError(f"lease {lease_id} is not active (reclaimed or released)")
            record.holder_pid = holder_pid
            return record.key.credential.secret, record.key.credential.label

    def release(self, lease_id: int, outcome: str = OK, retry_after: float | None = None) -> float:
        """End a lease. Returns the cooldown applied (0 unless rate limited)."""
        with self._cond:
            record = self._leases.pop(lease_id, None)
            if record is None:
                return 0.0
            key = record.key
            key.leased_by = None
            cooldown = 0.0
            if outcome == RATE_LIMITED:
                key.strikes += 1
                cooldown = self._cooldown(key.strikes, retry_after)
                key.cooling_until = time.monotonic() + cooldown
            elif outcome == REVOKED:
                key.revoked = True
            elif outcome == OK:
                key.strikes = 0
            self._cond.notify_all()
            return cooldown

    def reclaim(
        self, item_ids: list[str] | None = None, holder_pid: int | None = None
    ) -> list[str]:
        """Release the leases of these items / this holder. Returns the labels freed."""
        with self._cond:
            freed = []
            for lease_id, record in list(self._leases.items()):
                if (item_ids is not None and record.item_id in item_ids) or (
                    holder_pid is not None and record.holder_pid == holder_pid
                ):
                    freed.append(record.key.credential.label)
                    record.key.leased_by = None
                    del self._leases[lease_id]
            if freed:
                self._cond.notify_all()
            return freed

    # -- inspection
    def status(self) -> KeyStatus:
        with self._cond:
            now = time.monotonic()
            leased = sum(1 for k in self._keys if k.leased_by is not None)
            revoked = sum(1 for k in self._keys if k.revoked)
            cooling = sum(
                1
                for k in self._keys
                if k.leased_by is None and not k.revoked and k.cooling_until > now
            )
            wake = self._next_cooldown_end()
            return KeyStatus(
                total=len(self._keys),
                free=len(self._keys) - leased - revoked - cooling,
                leased=leased,
                cooling=cooling,
                revoked=revoked,
                next_free_in=None if wake is None else max(0.0, wake - now),
            )

    def snapshot(self) -> list[dict[str, object]]:
        """Every key as label, fingerprint, state (free/leased/cooling/revoked) and lease count:
        what the summary reports, and how a test proves no lease was lost."""
        with self._cond:
            now = time.monotonic()
            rows: list[dict[str, object]] = []
            for k in self._keys:
                state = (
                    "revoked"
                    if k.revoked
                    else "leased"
                    if k.leased_by is not None
                    else "cooling"
                    if k.cooling_until > now
                    else "free"
                )
                rows.append(
                    {
                        "label": k.credential.label,
                        "fingerprint": k.credential.fingerprint,
                        "state": state,
                        "leases": k.leases,
                    }
                )
            return rows

    def labels(self) -> list[str]:
        return [k.credential.label for k in self._keys]

    def ping(self) -> bool:
        return True

    # -- internals (hold the lock)
    def _pick(self) -> _KeyState | None:
        now = time.monotonic()
        free = [
            k
            for k in self._keys
            if k.leased_by is None and not k.revoked and k.cooling_until <= now
        ]
        return min(free, key=lambda k: k.last_used) if free else None

    def _next_cooldown_end(self) -> float | None:
        now = time.monotonic()
        ends = [
            k.cooling_until
            for k in self._keys
            if not k.revoked and k.leased_by is None and k.cooling_until > now
        ]
        return min(ends) if ends else None

    def _cooldown(self, strikes: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self._max)  # the provider's word is the minimum wait
        exponential = min(self._base * 2 ** (strikes - 1), self._max)
        return exponential * self._random.uniform(0.9, 1.1)

    def _reclaim_dead_holders(self) -> bool:
        dead = [
            lease_id
            for lease_id, r in self._leases.items()
            if r.holder_pid and not pid_alive(r.holder_pid)
        ]
        for lease_id in dead:
            self._leases.pop(lease_id).key.leased_by = None
        return bool(dead)
